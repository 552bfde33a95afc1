# Sourced by the demo and the recipes' run-local.sh: points the AWS chain at the local emulator
# (test credentials, never a real account), starts the emulator, builds cutover and the seed,
# seeds the demo environment, and puts target/debug on PATH. Run from the repository root.
# shellcheck shell=bash
export AWS_ENDPOINT_URL="http://127.0.0.1:${CUTOVER_EMULATOR_PORT:-4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-west-2
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
./localstack/up.sh
# The first run compiles everything (a few minutes on 2 cores): cargo shows its progress.
if [ ! -x target/debug/cutover ]; then echo "building cutover and the seed (first run: a few minutes)…" >&2; fi
cargo build --quiet --bin cutover --example seed
./target/debug/examples/seed
export PATH="$PWD/target/debug:$PATH"
