# Sourced: points this shell at the local emulator (the AWS chain, with test credentials — never a
# real account), starts the emulator when nothing answers on its port, builds cutover and the kit,
# and puts target/debug on PATH. Run from the repository root.
#
# It never changes what the emulator holds: a second shell sourced in the middle of a rollout sees
# that rollout. Seeding — which RESETS the demo environment (weights, alarms, health checks) — is
# its own command, ./localstack/seed.sh; the demo runs it itself.
# shellcheck shell=bash
export AWS_ENDPOINT_URL="http://127.0.0.1:${CUTOVER_EMULATOR_PORT:-4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-west-2
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
./localstack/up.sh
# The first run compiles everything — about 11 minutes on 2 cores, most of it the AWS SDK crates —
# and cargo shows its progress on stderr; later runs take a second.
if [ ! -x target/debug/cutover ]; then
  echo "building cutover and the seed (first run: about 11 minutes on 2 cores, mostly the AWS SDK crates)…" >&2
fi
cargo build --bin cutover --example seed
export PATH="$PWD/target/debug:$PATH"
