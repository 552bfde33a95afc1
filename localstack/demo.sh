#!/usr/bin/env bash
# The demo: starts the local emulator, seeds the demo environment, and runs cutover against
# profiles/demo.toml — validate, status, a shift to green, a rollback, staged rollouts watched by
# the observed split of the clients' requests. Everything stays on
# 127.0.0.1; no AWS account is used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. localstack/env.sh
# The demo's environment, seeded — or reset to all traffic on blue when an earlier demo left it
# elsewhere. Sourcing env.sh alone never does this (./localstack/seed.sh does).
./target/debug/examples/seed
cutover=./target/debug/cutover

# The demo's clients, run by the kit's proxy until the demo ends (at most 20 minutes): resolvers
# following the weighted record, clients of the front ALB following its weights; the load
# balancers count their requests. `status` and every rollout compare them with the weights.
./target/debug/examples/seed traffic 1200 &
clients=$!
trap 'kill $clients 2>/dev/null || true; ./target/debug/examples/seed traffic stop >/dev/null 2>&1 || true' EXIT

# Bold commands on a terminal only, and never with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ cutover %s%s\n' "$bold" "$*" "$plain"; "$cutover" -p demo "$@"; }
printf '\n%s$ cutover discover --cluster demo%s\n' "$bold" "$plain"; "$cutover" discover --cluster demo
step validate
step status
step set green=25 --dry-run
step set green=25 --yes
step status -o json
step rollback --to blue --yes

# A staged rollout: gates read before the first shift and every poll; each stage bakes 3s once
# the clients' observed split is the intended one ([observe]). The safety net rides along.
step rollout
step status
step rollback --to blue --yes

# The same rollout, with green's 5xx alarm going off during the first stage: rolled back, exit 3.
( sleep 3; ./target/debug/examples/seed alarm demo-green-5xx ALARM >/dev/null ) &
step rollout || echo "(exit $?: the alarm fired, traffic is back on blue)"
./target/debug/examples/seed alarm demo-green-5xx OK >/dev/null
step status
printf '\ndemo done: the emulator keeps running on %s (stop it with ./localstack/down.sh)\n' "$AWS_ENDPOINT_URL"
