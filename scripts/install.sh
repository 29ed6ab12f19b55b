#!/usr/bin/env bash
# Set up Antiphon in a virtual environment (default .venv; ANTIPHON_VENV overrides).
#   scripts/install.sh           the live agent only: light, no torch
#   scripts/install.sh --full    + training/export tools (torch CPU 2.13.0 first) and test tools,
#                                + JACK and fluidsynth from Debian for the real-MIDI test tier,
#                                  and tmux for the REPL's terminal test
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ANTIPHON_VENV:-.venv}"
full=0
[ "${1:-}" = "--full" ] && full=1

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if [ "$full" = 1 ]; then
    # A bare `torch` would pull a multi-GB CUDA build: pin the CPU wheel first;
    # the [train] extra's range admits it, so nothing else is fetched.
    "${pip[@]}" "torch==2.13.0"
    "${pip[@]}" -e ".[train,dev]"
    if ! command -v jackd >/dev/null 2>&1 || ! command -v fluidsynth >/dev/null 2>&1 \
            || ! command -v tmux >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                jackd2 fluidsynth fluid-soundfont-gm tmux >/dev/null
        else
            echo "note: jackd2/fluidsynth/tmux not installed; the real-MIDI and terminal tests will be skipped" >&2
        fi
    fi
else
    # --no-compile: Python compiles what it imports on first use; byte-compiling every installed
    # module up front (music21 is large) made this install ~1.7x slower (BENCHMARKS.md, demo)
    "${pip[@]}" --no-compile -e .
fi
echo "installed into $venv ($("$venv/bin/python" -c 'import agent; print("antiphon", agent.__version__)'))"
