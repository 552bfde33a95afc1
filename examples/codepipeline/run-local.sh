#!/usr/bin/env bash
# Runs the CodePipeline action's build commands against the local emulator: a whole rollout of
# profiles/demo-scheduled.toml to green, with the exported variables printed at the end, and the
# build's verdict — exit 0 when the rollout completed, else the rollout's exit code.
# `--alarm` fires green's 5xx alarm during the first stage: the rollout rolls back (exit 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. localstack/env.sh >/dev/null
./target/debug/examples/seed >/dev/null   # the demo environment, seeded (or reset)
export CUTOVER_PROFILE=demo-scheduled CUTOVER_TO=green
cutover state init
cutover rollback --to blue --yes >/dev/null
./target/debug/examples/seed alarm demo-green-5xx OK >/dev/null
if [ "${1:-}" = "--alarm" ]; then
  ( sleep 2; ./target/debug/examples/seed alarm demo-green-5xx ALARM >/dev/null ) &
fi

echo "--- build phase"
. examples/codepipeline/cutover-stage.sh
./target/debug/examples/seed alarm demo-green-5xx OK >/dev/null
echo "exported: CUTOVER_OUTCOME=$CUTOVER_OUTCOME CUTOVER_EXIT_CODE=$CUTOVER_EXIT_CODE CUTOVER_STAGE=$CUTOVER_STAGE CUTOVER_LIVE=$CUTOVER_LIVE CUTOVER_ROLLOUT_ID=$CUTOVER_ROLLOUT_ID"
echo "exported: CUTOVER_REASON=$CUTOVER_REASON"
# The buildspec's last command: the reason on the last line, the rollout's exit code.
cutover_stage_verdict || exit $?
