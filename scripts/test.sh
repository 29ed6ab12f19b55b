#!/usr/bin/env bash
# Install everything (scripts/install.sh --full) and run the whole test suite,
# the real-MIDI tier included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --full
venv="${ANTIPHON_VENV:-.venv}"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
