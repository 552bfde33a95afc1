#!/usr/bin/env bash
# Runs the benchmarks against a local emulator of their own (127.0.0.1:4577 unless
# CUTOVER_BENCH_PORT is set): rollback vs the AWS CLI, and many routes vs one.
#   bench/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
port="${CUTOVER_BENCH_PORT:-4577}"
python="$(./localstack/venv.sh)"
# The AWS CLI (v1, from PyPI) is the baseline of the rollback benchmark.
[[ -x "$(dirname "$python")/aws" ]] || "$(dirname "$python")/pip" install --quiet awscli
cargo build --quiet --release --bin cutover
CUTOVER_EMULATOR_PORT="$port" ./localstack/up.sh >/dev/null
trap 'CUTOVER_EMULATOR_PORT="$port" ./localstack/down.sh >/dev/null' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE
"$python" bench/rollback.py "${1:-15}"
"$python" bench/scale.py "${1:-9}"
"$python" bench/gate_latency.py "${1:-9}"
