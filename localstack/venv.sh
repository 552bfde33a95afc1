#!/usr/bin/env bash
# Makes sure the emulator's Python virtualenv exists (localstack/.venv, git-ignored) with moto's
# server installed, and prints the path of its python. Idempotent and safe to run concurrently.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
moto_version="5.2.5"
stamp="$venv/.moto-$moto_version"
if [[ ! -f "$stamp" ]]; then
  # One installer at a time: tests started in parallel may all arrive here.
  exec 9>"$here/.venv.lock"
  flock 9
  if [[ ! -f "$stamp" ]]; then
    echo "localstack: installing moto[server]==$moto_version into $venv (first use)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" >&2
    touch "$stamp"
  fi
fi
echo "$venv/bin/python"
