#!/usr/bin/env bash
# Simulates the schedule against the local emulator: starts a rollout of
# profiles/demo-scheduled.toml to green, then calls advance.sh every 2 seconds until the rollout
# has completed. Each call moves at most one stage, and only after the stage's 4 s bake.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. localstack/env.sh >/dev/null
./target/debug/examples/seed >/dev/null   # the demo environment, seeded (or reset)
export CUTOVER_PROFILE=demo-scheduled
cutover state init
cutover rollback --to blue --yes >/dev/null

./examples/scheduler/advance.sh --to green       # the first call starts a new rollout
for _ in $(seq 1 30); do
  sleep 2
  ./examples/scheduler/advance.sh | tee /tmp/cutover-advance.last
  grep -q "completed\|nothing-to-do" /tmp/cutover-advance.last && break
done
cutover status
cutover history --limit 10
