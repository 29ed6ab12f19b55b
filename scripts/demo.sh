#!/usr/bin/env bash
# Install the live agent (no torch) and, where the system's package manager allows, fluidsynth and a
# General MIDI soundfont; then run the demo on the shipped default model with no keyboard attached:
# a scripted player, Antiphon answering, the session written to demo/ (session.mid, .musicxml, .png, .wav).
# Extra arguments go to `antiphon demo` (e.g. --seed 3, --phrases 5, --out DIR, --no-wav).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if ! command -v fluidsynth >/dev/null 2>&1 || ! ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing fluidsynth and a General MIDI soundfont (apt) to render session.wav"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null \
            || echo "note: apt could not install fluidsynth; the demo writes no session.wav" >&2
    else
        echo "note: to hear the session as session.wav, install fluidsynth and a GM soundfont" \
             "(apt install fluidsynth fluid-soundfont-gm; brew install fluid-synth)" >&2
    fi
fi
venv="${ANTIPHON_VENV:-.venv}"
exec "$venv/bin/antiphon" demo "$@"
