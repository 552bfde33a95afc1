#!/usr/bin/env bash
# Runs the CodePipeline action's build commands against the local emulator: a whole rollout of
# profiles/demo-scheduled.toml to green, with the exported variables printed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. localstack/env.sh >/dev/null
export CUTOVER_PROFILE=demo-scheduled CUTOVER_TO=green
cutover state init
cutover rollback --to blue --yes >/dev/null

echo "--- build phase"
. examples/codepipeline/cutover-stage.sh
echo "exported: CUTOVER_OUTCOME=$CUTOVER_OUTCOME CUTOVER_EXIT_CODE=$CUTOVER_EXIT_CODE CUTOVER_STAGE=$CUTOVER_STAGE CUTOVER_LIVE=$CUTOVER_LIVE"
test "$CUTOVER_EXIT_CODE" -eq 0 && echo "build: SUCCEEDED"
