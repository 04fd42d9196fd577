#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine (Python >= 3.11): the Debian packages listed in
# scripts/apt-packages.txt, a virtualenv in .venv with the project and its optional extras installed
# (editable), and with --test the test tools too. Quick when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# The optional backends and edges (the demo and the tests use them all); --test adds the test tools.
extras="[webrtc,whisper,piper,deepgram]"
[[ "${1:-}" == "--test" ]] && extras="[webrtc,whisper,piper,deepgram,test]"

as_root() { if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo "$@"; fi; }

# -- Debian packages ----------------------------------------------------------------------------
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-packages.txt
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# -- Python -------------------------------------------------------------------------------------
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is needed ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >&2
fi
# Reinstall only when the project's requirements changed since the last install. Dependencies come
# from scripts/requirements.lock (exact versions and sha256 hashes; scripts/lock.sh regenerates it),
# then the gateway itself without dependencies.
stamp=".venv/.installed-$(cat pyproject.toml scripts/requirements.lock | sha1sum | cut -c1-12)${extras}"
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing the locked dependencies and the gateway${extras} into .venv" >&2
  .venv/bin/pip install -q --require-hashes -r scripts/requirements.lock >&2
  .venv/bin/pip install -q --no-deps -e ".${extras}" >&2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
