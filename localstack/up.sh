#!/usr/bin/env bash
# Starts the local AWS emulator on 127.0.0.1:${CUTOVER_EMULATOR_PORT:-4566}.
#
# Default: moto server (installed into localstack/.venv on first use) on the port 10000 above,
# behind the kit's proxy (localstack/proxy.rs, built with cargo) on the port itself: the proxy
# gives Route53 changes AWS's semantics, which moto lacks, evaluates Route53 health checks every
# 10 s, and runs the demo's simulated clients. CUTOVER_PROXY_ARGS passes more options to it (e.g.
# "--latency 30ms..50ms --log calls.jsonl", "--metrics 60s..75s --evaluate-alarms"). With a running Docker engine and
# LOCALSTACK_AUTH_TOKEN set, LocalStack via docker compose instead (ELBv2 and EKS need its Pro
# image). Does nothing when something already answers on the port. `down.sh` stops it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${CUTOVER_EMULATOR_PORT:-4566}"
run="$here/.run/${CUTOVER_EMULATOR_PORT:-4566}"
mkdir -p "$run"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }

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
  moto_port=$((port + 10000))
  # The kit's proxy; on a first run this compiles most of the dependencies, its progress shown.
  (cd "$here/.." && cargo build --example proxy)
  echo "emulator: starting moto server on 127.0.0.1:$moto_port behind the kit's proxy on 127.0.0.1:$port (logs: $run/)"
  nohup "$python" "$here/moto_server.py" --port "$moto_port" >"$run/moto.log" 2>&1 &
  echo $! > "$run/moto.pid"
  # shellcheck disable=SC2086
  nohup "$here/../target/debug/examples/proxy" --port "$port" --upstream "http://127.0.0.1:$moto_port" \
    --health-checks 10s ${CUTOVER_PROXY_ARGS:-} >"$run/proxy.log" 2>&1 &
  echo $! > "$run/proxy.pid"
  echo moto > "$run/kind"
fi

for _ in $(seq 1 120); do
  # Behind the proxy, moto must answer too before the emulator is ready.
  if listening && { [[ -z "${moto_port:-}" ]] || listening "$moto_port"; }; then
    echo "emulator: ready on http://127.0.0.1:$port"
    exit 0
  fi
  sleep 0.25
done
echo "emulator: did not start within 30s; see $run/moto.log" >&2
exit 1
