"""A flood from the player over real JACK, as a new user tried it.

Found by hand: accompany mode, ~18,000 note messages with 5 pitches never
released, then SIGTERM: the process aborted ("terminate called without an
active exception", exit 134) with an agent note left on at a separate
reader; in call mode the agent never answered again after such a flood.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]
HELD = (40, 45, 50, 55, 59)


def flood(out, n: int) -> int:
    """HELD pressed and never released, then n note messages as fast as JACK takes them (~9,000/s)."""
    import mido

    for p in HELD:
        out.send(mido.Message("note_on", note=p, velocity=80))
    for k in range(n):
        pitch = 60 + (k // 2) % 24
        out.send(mido.Message("note_on", note=pitch, velocity=80) if k % 2 == 0 else mido.Message("note_off", note=pitch))
        if k % 20 == 19:
            time.sleep(0.001)
    return n + len(HELD)


@pytest.mark.parametrize("mode", ["accompany", "call"])
def test_after_a_flood_with_held_notes_the_agent_answers_and_sigterm_ends_cleanly(bench, jack_env, model_dir, mode):
    import mido

    p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", "--virtual-in", "FloodIn",
                          "--virtual", "FloodOut", "--mode", mode, "--model", str(model_dir),
                          "--set", "sampling.seed=3", "--set", "jam.silence_ms=200.0",
                          "--set", "jam.held_note_timeout_s=1.0"],
                         env={**jack_env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out = None
    try:
        assert "listening on 'FloodIn'" in p.stdout.readline()
        reader = bench.Child("reader", "FloodOut", jack_env)
        jack = mido.Backend(bench.JACK_BACKEND, load=True)  # this process's mido may already use another
        out = jack.open_output("Flooder", virtual=True)
        ports = subprocess.run(["jack_lsp"], env=jack_env, capture_output=True, text=True).stdout.split("\n")
        src = next(x for x in ports if x.endswith(":Flooder"))
        dst = next(x for x in ports if x.endswith(":FloodIn"))
        subprocess.run(["jack_connect", src, dst], env=jack_env, check=True, timeout=10)
        time.sleep(0.2)
        flood(out, 18_000)
        time.sleep(3.0)  # the held notes time out (1 s), the backlog drains
        reader.say("mark 0")
        after_flood = reader.result()
        for pitch in (60, 64, 67, 72):  # a phrase: it must still be heard and answered
            out.send(mido.Message("note_on", note=pitch, velocity=90))
            time.sleep(0.15)
            out.send(mido.Message("note_off", note=pitch))
        time.sleep(2.0)
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=30)
        reader.say("stop 0")
        got = reader.result()
    finally:
        if p.poll() is None:
            p.kill()
        if out is not None:
            out.close()
    assert p.returncode == 0, stderr[-2000:]
    assert "terminate called" not in stderr
    assert not bench.sounding(got), f"stuck at the reader: {sorted(bench.sounding(got))}"
    answer = [b for _, b in got[after_flood:] if b[0] & 0xF0 == 0x90 and b[2] > 0]
    assert answer, f"no agent note after the flood: {stdout[-500:]}"
