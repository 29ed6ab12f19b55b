#!/usr/bin/env bash
# Install the live agent (no torch) and run the demo on the shipped default model,
# with no keyboard attached: a scripted player, Antiphon answering. Extra arguments go to `antiphon demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
venv="${ANTIPHON_VENV:-.venv}"
exec "$venv/bin/antiphon" demo "$@"
