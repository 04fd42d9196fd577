#!/usr/bin/env bash
# Idempotent set-up for training and evaluating the turn models (models/bargein, models/eot): the
# Debian packages in scripts/apt-train-packages.txt (voices of other engines, real speech), SVOX Pico
# in .venv (rendering runs there, beside Piper and Whisper), and .venv-train with the `train` extra
# (torch 2.13.0, which pip takes from the file on disk). Run scripts/setup.sh first. The test command
# never runs this: CI only runs inference on committed models.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo "$@"; fi; }

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-train-packages.txt
if ((${#missing[@]})); then
  echo "setup-train: installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

[[ -x .venv/bin/python ]] || { echo "setup-train: run scripts/setup.sh first" >&2; exit 1; }
.venv/bin/python -c 'import py_nanotts' 2>/dev/null || .venv/bin/pip install -q "py-nanotts>=0.1.1" >&2

if [[ ! -x .venv-train/bin/python ]]; then
  python3 -m venv .venv-train
  .venv-train/bin/pip install -q --upgrade pip >&2
fi
stamp=".venv-train/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  echo "setup-train: installing the train extra into .venv-train" >&2
  .venv-train/bin/pip install -q -e ".[train]" soxr soundfile tqdm pyopen-wakeword >&2
  rm -f .venv-train/.installed-*
  touch "$stamp"
fi
echo "setup-train: ready (.venv renders voices, .venv-train trains)" >&2
