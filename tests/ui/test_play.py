"""`antiphon play` and `antiphon demo` as a user runs them: signals, errors, missing models."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time

import pytest
from helpers import lines_of


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("play_model"), hidden=32, embedding=16)


def antiphon(*args, **kw):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=ENV,
                          timeout=120, **kw)


# `python -m agent` with a synth listening on the agent's loopback port (the bus is per process): each note
# message it hears is a line on stderr, one write each, so the test sees the notes as they are played
LISTENING = """
import runpy, sys
from agent.midi.ports import Loopback, LoopbackInput
LoopbackInput(Loopback.default, "Antiphon", lambda m, t: m.type in ("note_on", "note_off", "control_change")
              and sys.stderr.write(f"heard {m.hex()}\\n"))
sys.argv[0] = "agent"
runpy.run_module("agent", run_name="__main__")
"""
NOTES_BEFORE_THE_SIGNAL = 8


def sounding(heard: list[bytes]) -> set[tuple[int, int]]:
    """(channel, pitch) still sounding after these messages, as a synth hears them (CC120/123 end a channel)."""
    from agent.bench.realtime import sounding as at_reader

    return at_reader([(0.0, b) for b in heard])


def note_ons(heard: list[bytes]) -> int:
    return sum(b[0] & 0xF0 == 0x90 and b[2] > 0 for b in heard)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_play_stops_cleanly_on_a_signal_with_no_note_left_open(model_dir, sig):
    p = subprocess.Popen([sys.executable, "-c", LISTENING, "play", "--backend", "loopback", "--mode", "solo",
                          "--model", str(model_dir), "--set", "sampling.seed=1", "--set", "timing.bpm=300.0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    heard: list[bytes] = []
    errors: list[str] = []

    def take(line: str) -> None:
        if line.startswith("heard "):
            heard.append(bytes.fromhex(line.split(" ", 1)[1]))
        else:
            errors.append(line)

    try:
        lines = lines_of(p.stderr)
        first = p.stdout.readline()
        assert "listening on" in first and "mode solo" in first, first
        # the agent plays: NOTES_BEFORE_THE_SIGNAL notes reach the synth, and one sounds as the signal comes
        deadline = time.monotonic() + 60
        while note_ons(heard) < NOTES_BEFORE_THE_SIGNAL or not sounding(heard):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{note_ons(heard)} notes heard in 60 s, not {NOTES_BEFORE_THE_SIGNAL}: "
                                     f"{''.join(errors)}") from None
            assert line is not None, f"play ended before the signal: {''.join(errors)}"
            take(line)
        p.send_signal(sig)
        assert p.wait(timeout=30) == 0, "".join(errors)
        while (line := lines.get(timeout=30)) is not None:
            take(line)
        out = p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
    assert "0 left open" in out and "stopped:" in out
    assert note_ons(heard) >= NOTES_BEFORE_THE_SIGNAL
    assert not sounding(heard), f"left sounding at the synth: {sorted(sounding(heard))}"


def test_play_names_a_missing_model_file(tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    r = antiphon("play", "--backend", "loopback", "--model", str(tmp_path))
    assert r.returncode == 2 and "model.onnx" in r.stderr and "Traceback" not in r.stderr


def test_play_without_jack_says_so():
    r = antiphon("play", "--backend", "jack", "--model", "/nonexistent/model")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_ports_lists_the_backend():
    r = antiphon("ports", "--backend", "loopback")
    assert r.returncode == 0 and r.stdout.startswith("backend: loopback")


def test_demo_without_a_model_names_the_missing_file(tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    r = antiphon("demo", "--model", str(tmp_path))
    assert r.returncode == 2 and f"{tmp_path} has no model.onnx" in r.stderr


def test_play_phrase_releases_each_note_after_it_starts():
    # a short note late in a phrase: its note-off must not fall before its own note-on
    from agent.music.tempomap import FakeClock
    from scripted import play_phrase

    clock, sent = FakeClock(0.0), []
    play_phrase(lambda m: sent.append((clock.now(), m)), [(60, 0, 1), (62, 7.5, 0.25)], 1.0, 0.5, clock)
    assert [(m.type, m.note, m.velocity > 0) for _, m in sent] == [
        ("note_on", 60, True), ("note_off", 60, False), ("note_on", 62, True), ("note_off", 62, False)]
    assert sent[-1][0] == pytest.approx(1.0 + (7.5 + 0.25 * 0.95) * 0.5)


def test_a_second_ctrl_c_while_stopping_does_not_cut_the_stop_short():
    # an impatient musician presses Ctrl-C again while the engine is closing its notes
    import threading

    from agent.ui.commands.play import run_until_stopped

    class SlowToStop:
        def __init__(self):
            self.stopped, self.error, self.finished = threading.Event(), None, False

        def stop(self):
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, mid-stop
            time.sleep(0.05)  # Python runs the handler between these bytecodes
            self.finished = True  # the note-offs went out
            self.stopped.set()
            return []

        def stats(self):
            return {"phrases": 0, "answers": 0, "sent": 0, "dropped_late": 0, "open_notes": 0}

    eng = SlowToStop()
    eng.stopped.set()  # already failed/finished: straight to the stop
    assert run_until_stopped(eng) == 0 and eng.finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again after
