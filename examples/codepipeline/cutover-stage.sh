# Sourced by buildspec.yml (and by run-local.sh): one unattended rollout. Sets CUTOVER_OUTCOME,
# CUTOVER_EXIT_CODE, CUTOVER_STAGE and CUTOVER_LIVE, and leaves the result in cutover-result.json.
# shellcheck shell=bash

cutover -p "${CUTOVER_PROFILE:?set CUTOVER_PROFILE}" -o json --log-format json rollout \
  ${CUTOVER_TO:+--to "$CUTOVER_TO"} > cutover-result.json
CUTOVER_EXIT_CODE=$?
read -r CUTOVER_OUTCOME CUTOVER_STAGE < <(python3 -c '
import json, sys
doc = json.load(open("cutover-result.json"))
if "error" in doc:
    print("error", 0)
else:
    print(doc["outcome"], doc["stage"])
')
CUTOVER_LIVE=$(cutover -p "$CUTOVER_PROFILE" -o json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["live"] or "split")')
export CUTOVER_EXIT_CODE CUTOVER_OUTCOME CUTOVER_STAGE CUTOVER_LIVE
