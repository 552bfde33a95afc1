# Sourced by buildspec.yml (and by run-local.sh): one unattended rollout. Sets CUTOVER_OUTCOME,
# CUTOVER_EXIT_CODE, CUTOVER_STAGE, CUTOVER_LIVE, CUTOVER_REASON (why it ended so: a gate's
# failure, a hold, an error — one line, empty when it completed) and CUTOVER_ROLLOUT_ID (the id
# `status` and `history` show), and leaves the result in cutover-result.json. Defines
# `cutover_stage_verdict`, the build's last command: it prints the verdict with the reason on the
# last line and returns the rollout's own exit code (3, 7, …) — `test … -eq 0` would make every
# failure exit 1.
# Safe under `set -e`: the rollout's exit code is kept, not fatal, so the variables are always set.
# shellcheck shell=bash

if cutover -p "${CUTOVER_PROFILE:?set CUTOVER_PROFILE}" -o json --log-format json rollout \
  ${CUTOVER_TO:+--to "$CUTOVER_TO"} > cutover-result.json; then
  CUTOVER_EXIT_CODE=0
else
  CUTOVER_EXIT_CODE=$?
fi
# The result's fields as shell assignments, each value quoted by Python's shlex.
eval "$(python3 -c '
import json, shlex
try:
    doc = json.load(open("cutover-result.json"))
except ValueError:
    doc = {"error": {"message": "no result (cutover-result.json is not JSON): see the log above"}}
if "error" in doc:
    outcome, stage, reason = "error", 0, doc["error"].get("message") or ""
else:
    outcome, stage, reason = doc["outcome"], doc["stage"], doc.get("reason") or ""
# One line, bounded: an exported variable is read in a console, not a log.
reason = " ".join(str(reason).split())[:1000]
for name, value in [("CUTOVER_OUTCOME", outcome), ("CUTOVER_STAGE", stage),
                    ("CUTOVER_REASON", reason), ("CUTOVER_ROLLOUT_ID", doc.get("rollout_id") or "")]:
    print(f"{name}={shlex.quote(str(value))}")
')"
CUTOVER_LIVE=$(cutover -p "$CUTOVER_PROFILE" -o json status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("live") or "split")' || echo unknown)
export CUTOVER_EXIT_CODE CUTOVER_OUTCOME CUTOVER_STAGE CUTOVER_LIVE CUTOVER_REASON CUTOVER_ROLLOUT_ID

# The build's verdict: what happened, then why on the last line (what the console shows first);
# returns the rollout's exit code.
cutover_stage_verdict() {
  echo "cutover: ${CUTOVER_OUTCOME} at stage ${CUTOVER_STAGE} (exit ${CUTOVER_EXIT_CODE}), live side ${CUTOVER_LIVE}, rollout ${CUTOVER_ROLLOUT_ID:-none}"
  if [ "$CUTOVER_EXIT_CODE" -eq 0 ]; then
    echo "build: SUCCEEDED (the rollout ${CUTOVER_OUTCOME})"
  else
    echo "build: FAILED (exit ${CUTOVER_EXIT_CODE}): ${CUTOVER_REASON:-the rollout ended ${CUTOVER_OUTCOME}}"
  fi
  return "$CUTOVER_EXIT_CODE"
}
