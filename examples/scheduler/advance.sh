#!/usr/bin/env bash
# What a schedule runs every N minutes (EventBridge Scheduler → CodeBuild or ECS task, or cron):
# `cutover advance` moves the rollout at most one stage per call, only once the stage has baked,
# and never past a gate failure that happened between two calls. Its exit code says what to do.
set -uo pipefail
profile="${CUTOVER_PROFILE:?set CUTOVER_PROFILE}"
out=$(cutover -p "$profile" -o json advance "$@")
code=$?
action=$(printf '%s' "$out" | python3 -c 'import json,sys
d = json.load(sys.stdin)
print(d.get("action") or "error: " + d.get("error", {}).get("message", "?"))' 2>/dev/null || echo unknown)
case "$code" in
  0) echo "advance: $action" ;;
  3) echo "advance: ROLLED BACK — a gate failed; traffic is on the stable side ($action)" ;;
  5) echo "advance: another run holds the rollout; next call will try again" ;;
  6) echo "advance: DRIFT — the live weights are not what the rollout recorded; a human must look" ;;
  7) echo "advance: held — gates inconclusive past max_hold, the rollout is paused" ;;
  *) echo "advance: error (exit $code): $action" ;;
esac
exit "$code"
