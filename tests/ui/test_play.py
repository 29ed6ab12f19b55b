"""`antiphon play` and `antiphon demo` as a user runs them: signals, errors, missing models."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("play_model"), hidden=32, embedding=16)


def antiphon(*args, **kw):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=ENV,
                          timeout=120, **kw)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_play_stops_cleanly_on_a_signal_with_no_note_left_open(model_dir, sig):
    p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "loopback", "--mode", "solo",
                          "--model", str(model_dir), "--set", "sampling.seed=1", "--set", "timing.bpm=300.0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    first = p.stdout.readline()
    assert "listening on" in first and "mode solo" in first
    time.sleep(1.0)  # let it play a few notes
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "0 left open" in out and "stopped:" in out


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
