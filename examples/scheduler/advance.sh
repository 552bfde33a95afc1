#!/usr/bin/env bash
# What a schedule runs every N minutes (EventBridge Scheduler → CodeBuild or ECS task, or cron):
# `cutover advance` moves the rollout at most one stage per call, only once the stage has baked,
# and never past a gate failure that happened between two calls. Each call logs one timestamped
# line — what the call did and cutover's own words — and exits with cutover's exit code.
set -uo pipefail
profile="${CUTOVER_PROFILE:?set CUTOVER_PROFILE}"
out=$(cutover -p "$profile" -o json advance "$@")
code=$?
read -r action message < <(printf '%s' "$out" | python3 -c 'import json,sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {}
if "error" in d:
    print("error", d["error"].get("message", "?").replace("\n", " "))
else:
    print(d.get("action", "unknown"), d.get("message", "").replace("\n", " "))' 2>/dev/null || echo "unknown (no result)")
case "$code" in
  0) what="$action" ;;
  3) what="ROLLED BACK: a gate failed; traffic is on the stable side" ;;
  5) what="another run holds the rollout; the next call tries again" ;;
  6) what="DRIFT: the live weights are not what the rollout recorded; a human must look" ;;
  7) what="held: gates inconclusive past max_hold, the rollout is paused" ;;
  *) what="error (exit $code)" ;;
esac
printf '%s advance %s: %s — %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$profile" "$what" "${message:-}"
exit "$code"
