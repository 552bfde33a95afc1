#!/usr/bin/env bash
# Stops the emulator that up.sh started (and only that one).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${CUTOVER_EMULATOR_PORT:-4566}"
run="$here/.run/${CUTOVER_EMULATOR_PORT:-4566}"
kind="$(cat "$run/kind" 2>/dev/null || true)"
case "$kind" in
  docker)
    docker compose -f "$here/docker-compose.yml" down
    ;;
  moto)
    for pid in "$run/proxy.pid" "$run/moto.pid"; do
      if [[ -f "$pid" ]]; then
        kill "$(cat "$pid")" 2>/dev/null || true
      fi
    done
    ;;
  *)
    echo "emulator: nothing started by up.sh"
    ;;
esac
rm -f "$run/kind" "$run/moto.pid" "$run/proxy.pid"
echo "emulator: stopped (port $port)"
