"""A real synth plays the agent: fluidsynth on JACK, `antiphon play --out` its MIDI input, recorded with jack_rec.

Checks the whole chain a user routes (agent -> MIDI port -> synth -> audio)
produces sound: the recording is not silent. Skipped where fluidsynth,
jack_rec or the General MIDI soundfont is missing.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def jack_ports(env, part: str) -> list[str]:
    out = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10).stdout
    return [line.strip() for line in out.splitlines() if part in line]


def wait_ports(env, part: str, n: int, timeout_s: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ports = jack_ports(env, part)
        if len(ports) >= n:
            return ports
        time.sleep(0.2)
    raise AssertionError(f"JACK ports matching {part!r} did not appear: {jack_ports(env, '')}")


def test_fluidsynth_plays_the_agent_and_the_recording_is_not_silent(bench, jack_env, model_dir, tmp_path):
    missing = [b for b in ("fluidsynth", "jack_rec") if shutil.which(b) is None]
    if missing or not SOUNDFONT.exists():
        pytest.skip(f"needs fluidsynth, jack_rec and fluid-soundfont-gm (missing: {missing or SOUNDFONT})")
    # its shell reads stdin: keep a pipe open, or it exits at once
    synth = subprocess.Popen(["fluidsynth", "-a", "jack", "-m", "jack", "-q", "-g", "1.0",
                              "-o", "audio.jack.id=fsynth", "-o", "midi.jack.id=fsynth", str(SOUNDFONT)],
                             env=jack_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    keyboard = bench.Child("player", "FSKeyboard", jack_env)  # silent: play listens to it
    play = None
    try:
        audio = [p for p in wait_ports(jack_env, "fsynth:", 3) if "midi" not in p.lower()][:2]  # left, right
        midi_in = [p for p in jack_ports(jack_env, "fsynth") if "midi" in p.lower()][0]
        play = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", "--in", "FSKeyboard",
                                 "--out", midi_in, "--mode", "solo", "--model", str(model_dir),
                                 "--set", "sampling.seed=9", "--set", "sampling.pitch_min=48",
                                 "--set", "sampling.pitch_max=84", "--set", "timing.bpm=300.0",
                                 "--set", "sampling.rest_bias=-5.0"],
                                env={**jack_env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert "listening on" in play.stdout.readline()  # sending straight to the synth's MIDI input
        wav = tmp_path / "agent.wav"
        subprocess.run(["jack_rec", "-f", str(wav), "-d", "3", "-b", "16", *audio], env=jack_env,
                       check=True, timeout=30, capture_output=True)
        play.send_signal(signal.SIGTERM)
        out, err = play.communicate(timeout=30)
        assert play.returncode == 0, err
        assert "0 left open" in out
    finally:
        if play is not None and play.poll() is None:
            play.kill()
        synth.stdin.close()
        synth.terminate()
        synth.wait(timeout=10)
        keyboard.say("0 0")
        keyboard.result()
        keyboard.say("quit")
    with wave.open(str(wav)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        assert w.getnframes() > w.getframerate()  # at least a second recorded
    rms = float(np.sqrt(np.mean(frames.astype(np.float64) ** 2)))
    assert rms > 30.0, f"the recording is silent (RMS {rms:.1f} of 32767)"
