#!/usr/bin/env bash
# Runs the benchmarks against a local emulator of their own (127.0.0.1:4577 unless
# CUTOVER_BENCH_PORT is set), and a second kit proxy in front of the same moto server on the
# next port that gives every call an AWS-like round trip (30..50 ms; a Route53 change PENDING
# until its GetChange) and logs each call.
#   bench/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
port="${CUTOVER_BENCH_PORT:-4577}"
slow_port=$((port + 1))
python="$(./localstack/venv.sh)"
# The AWS CLI (v1, from PyPI) is the baseline of the rollback benchmark.
[[ -x "$(dirname "$python")/aws" ]] || "$(dirname "$python")/pip" install --quiet awscli
cargo build --quiet --release --bin cutover
cargo build --quiet --example proxy
CUTOVER_EMULATOR_PORT="$port" ./localstack/up.sh >/dev/null
run="$(mktemp -d)"
./target/debug/examples/proxy --port "$slow_port" --upstream "http://127.0.0.1:$((port + 10000))" \
  --latency 30ms..50ms --route53-insync-after 1ms --log "$run/calls.jsonl" >"$run/proxy.log" 2>&1 &
slow_pid=$!
trap 'kill $slow_pid 2>/dev/null; CUTOVER_EMULATOR_PORT="$port" ./localstack/down.sh >/dev/null' EXIT
for _ in $(seq 1 40); do (exec 3<>"/dev/tcp/127.0.0.1/$slow_port") 2>/dev/null && break; sleep 0.25; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2 AWS_EC2_METADATA_DISABLED=true
export CUTOVER_BENCH_SLOW="http://127.0.0.1:$slow_port" CUTOVER_BENCH_CALL_LOG="$run/calls.jsonl"
unset AWS_PROFILE
case "${CUTOVER_BENCH_ONLY:-all}" in
  floor) "$python" bench/floor.py "${1:-9}" ;;
  *)
    "$python" bench/floor.py "${1:-9}"
    "$python" bench/rollback.py "${1:-15}"
    "$python" bench/gate_latency.py "${1:-9}"
    ;;
esac
