"""A flood from the player over real JACK, as a new user tried it.

Found by hand: accompany mode, ~18,000 note messages with 5 pitches never
released, then SIGTERM: the process aborted ("terminate called without an
active exception", exit 134) with an agent note left on at a separate
reader; in call mode the agent never answered again after such a flood.
"""
from __future__ import annotations

import queue
import re
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


ENDED = re.compile(r"^(phrase \d+: heard (\d+) notes over [\d.]+ beats; answered|accompany: played \d+ notes)")


def next_ended(lines: queue.Queue, seen: list[str], timeout_s: float = 60.0) -> re.Match:
    """The next line play reports when an answer (or an accompaniment) has ended: its phrase is over."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no answer ended in {timeout_s:g} s: {''.join(seen)[-500:]}") from None
        assert line is not None, f"play ended: {''.join(seen)[-500:]}"
        seen.append(line)
        m = ENDED.match(line)
        if m:
            return m


def connected(env: dict, src: str, dst: str) -> bool:
    """Whether jack_lsp -c lists src connected to dst."""
    listing = subprocess.run(["jack_lsp", "-c"], env=env, capture_output=True, text=True, timeout=10).stdout
    port = None
    for line in listing.splitlines():
        if not line.startswith((" ", "\t")):
            port = line.strip()
        elif port == src and line.strip() == dst:
            return True
    return False


@pytest.mark.parametrize("mode", ["accompany", "call"])
def test_after_a_flood_with_held_notes_the_agent_answers_and_sigterm_ends_cleanly(bench, jack_env, model_dir, mode,
                                                                                  tmp_path):
    import mido

    from helpers import lines_of, wait_for

    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err_out:
        p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", "--virtual-in", "FloodIn",
                              "--virtual", "FloodOut", "--mode", mode, "--model", str(model_dir),
                              "--set", "sampling.seed=3", "--set", "jam.silence_ms=200.0",
                              "--set", "jam.held_note_timeout_s=1.0"],
                             env={**jack_env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                             stderr=err_out, text=True)
    out, seen = None, []
    try:
        lines = lines_of(p.stdout)
        first = lines.get(timeout=60)
        assert first and "listening on 'FloodIn'" in first, err_file.read_text()[-2000:]
        reader = bench.Child("reader", "FloodOut", jack_env)
        jack = mido.Backend(bench.JACK_BACKEND, load=True)  # this process's mido may already use another
        out = jack.open_output("Flooder", virtual=True)
        ports = subprocess.run(["jack_lsp"], env=jack_env, capture_output=True, text=True).stdout.split("\n")
        src = next(x for x in ports if x.endswith(":Flooder"))
        dst = next(x for x in ports if x.endswith(":FloodIn"))
        subprocess.run(["jack_connect", src, dst], env=jack_env, check=True, timeout=10)
        assert wait_for(lambda: connected(jack_env, src, dst), 10.0)
        flood(out, 18_000)
        # the held notes time out (1 s), the backlog drains, the flood's phrase ends and its answer (or
        # accompaniment) with it: play reports it
        next_ended(lines, seen)
        reader.say("mark 0")
        after_flood = reader.result()
        for pitch in (60, 64, 67, 72):  # a phrase: it must still be heard and answered
            out.send(mido.Message("note_on", note=pitch, velocity=90))
            time.sleep(0.15)  # the player's timing
            if pitch == 72 and mode == "accompany":
                # playing along: the last note is held until the agent's first note reaches the reader
                # (nothing of the agent's sounds after the flood's answer, so its next note message is
                # a note-on); each new note of the player's would have it resample what it had queued
                assert wait_for(lambda: (reader.say("mark 0"), reader.result())[1] > after_flood, 30.0), \
                    f"no agent note while the player held a note after the flood: {''.join(seen)[-500:]}"
            out.send(mido.Message("note_off", note=pitch))
        # its answer ends (in call mode the line names the 4 notes heard; one cut short is the flood's)
        while mode == "call" and next_ended(lines, seen).group(2) != "4":
            pass
        if mode == "accompany":
            next_ended(lines, seen)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, err_file.read_text()[-2000:]
        while (line := lines.get(timeout=30)) is not None:
            seen.append(line)
        reader.say("stop 0")
        got = reader.result()
    finally:
        if p.poll() is None:
            p.kill()
        if out is not None:
            out.close()
    stdout, stderr = "".join(seen), err_file.read_text()
    assert "terminate called" not in stderr
    assert "0 left open" in stdout, stdout[-500:]
    assert not bench.sounding(got), f"stuck at the reader: {sorted(bench.sounding(got))}"
    answer = [b for _, b in got[after_flood:] if b[0] & 0xF0 == 0x90 and b[2] > 0]
    assert answer, f"no agent note after the flood: {stdout[-500:]}"
