# Sourced by buildspec.yml (and by run-local.sh): one unattended rollout. Sets CUTOVER_OUTCOME,
# CUTOVER_EXIT_CODE, CUTOVER_STAGE and CUTOVER_LIVE, and leaves the result in cutover-result.json.
# Safe under `set -e`: the rollout's exit code is kept, not fatal, so the variables are always set.
# shellcheck shell=bash

if cutover -p "${CUTOVER_PROFILE:?set CUTOVER_PROFILE}" -o json --log-format json rollout \
  ${CUTOVER_TO:+--to "$CUTOVER_TO"} > cutover-result.json; then
  CUTOVER_EXIT_CODE=0
else
  CUTOVER_EXIT_CODE=$?
fi
read -r CUTOVER_OUTCOME CUTOVER_STAGE < <(python3 -c '
import json
try:
    doc = json.load(open("cutover-result.json"))
except ValueError:
    doc = {"error": {}}
if "error" in doc:
    print("error", 0)
else:
    print(doc["outcome"], doc["stage"])
')
CUTOVER_LIVE=$(cutover -p "$CUTOVER_PROFILE" -o json status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("live") or "split")' || echo unknown)
export CUTOVER_EXIT_CODE CUTOVER_OUTCOME CUTOVER_STAGE CUTOVER_LIVE
