#!/usr/bin/env bash
# Starts the local AWS emulator on 127.0.0.1:${CUTOVER_EMULATOR_PORT:-4566}.
#
# Default: moto server (installed into localstack/.venv on first use). With a running Docker
# engine and LOCALSTACK_AUTH_TOKEN set, LocalStack via docker compose instead (ELBv2 and EKS need
# its Pro image). Does nothing when something already answers on the port. `down.sh` stops it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${CUTOVER_EMULATOR_PORT:-4566}"
run="$here/.run/${CUTOVER_EMULATOR_PORT:-4566}"
mkdir -p "$run"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if listening; then
  echo "emulator: already listening on 127.0.0.1:$port"
  exit 0
fi

if [[ -n "${LOCALSTACK_AUTH_TOKEN:-}" ]] && docker info >/dev/null 2>&1; then
  echo "emulator: starting LocalStack (docker compose) on 127.0.0.1:$port"
  LOCALSTACK_PORT="$port" docker compose -f "$here/docker-compose.yml" up -d
  echo docker > "$run/kind"
else
  python="$("$here/venv.sh")"
  echo "emulator: starting moto server on 127.0.0.1:$port (log: $run/moto.log)"
  nohup "$python" "$here/moto_server.py" --port "$port" >"$run/moto.log" 2>&1 &
  echo $! > "$run/moto.pid"
  echo moto > "$run/kind"
fi

for _ in $(seq 1 120); do
  if listening; then
    echo "emulator: ready on http://127.0.0.1:$port"
    exit 0
  fi
  sleep 0.25
done
echo "emulator: did not start within 30s; see $run/moto.log" >&2
exit 1
