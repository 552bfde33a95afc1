#!/usr/bin/env bash
# Seeds the local emulator with the demo environment profiles/demo.toml describes — or, when it is
# already there, RESETS it: all traffic on blue, alarms OK, the safety net's health check off. Never
# run it while a rollout you care about runs. `. localstack/env.sh` does not seed; the demo does.
#
#   ./localstack/seed.sh                              # seed, or reset, the demo environment
#   ./localstack/seed.sh alarm demo-green-5xx ALARM   # flip one demo alarm
#   ./localstack/seed.sh traffic 600                  # the demo's clients, for 600 s
#
# It only ever talks to an emulator on 127.0.0.1 (the seed refuses any other endpoint).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. localstack/env.sh >/dev/null
exec ./target/debug/examples/seed "$@"
