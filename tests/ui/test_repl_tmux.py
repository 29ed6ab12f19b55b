"""The REPL as a person uses it: `antiphon repl` in a real terminal (tmux), typed into with send-keys,
read back with capture-pane, on the loopback backend with a scripted player.

What it checks, from the session's trace (every message the engine scheduled, with the temperature its
sample used, and every message that reached the output port):
- `temp 0.5` changes the temperature the sampler uses for the next notes while notes keep flowing;
- `temp -3` prints an error and changes nothing;
- `at bar tempo 120` lands on the bar line: the agent's notes are on the 100 bpm grid before it and on
  the 120 bpm grid after it;
- `cc learn temp` followed by a controller moved (the player's mod wheel) maps it;
- `load` of a model with another vocabulary is refused and the session goes on;
- `quit` leaves no open note.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (apt-get install tmux)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("tmux_model"), hidden=32, embedding=16)


class Tmux:
    def __init__(self, name: str, env: dict) -> None:
        self.name, self.env = name, env

    def tmux(self, *args) -> str:
        return subprocess.run(["tmux", *args], env=self.env, capture_output=True, text=True, timeout=20).stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", self.name, "-x", "220", "-y", "50", command)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen()}")

    def status(self, timeout_s: float = 30.0) -> tuple[str, int]:
        """Type `status` and read its answer back: (the mode line's state, the messages sent so far)."""
        count = lambda: self.tmux("capture-pane", "-p", "-t", self.name, "-S", "-").count("messages sent")
        before = count()
        self.type("status")
        end = time.monotonic() + timeout_s
        while count() <= before:
            assert time.monotonic() < end, f"`status` never answered:\n{self.screen()}"
            time.sleep(0.1)
        whole = self.tmux("capture-pane", "-p", "-t", self.name, "-S", "-")
        state = re.findall(r"^mode \w+ \(([^)]*)\)", whole, re.M)[-1]
        return state, int(re.findall(r"(\d+) messages sent", whole)[-1])

    def wait_sent(self, more_than: int, timeout_s: float = 60.0) -> int:
        """Ask `status` until the engine has sent more than `more_than` messages; returns how many."""
        end = time.monotonic() + timeout_s
        while (sent := self.status()[1]) <= more_than:
            assert time.monotonic() < end, f"no more than {more_than} messages sent in {timeout_s:g} s"
            time.sleep(0.2)
        return sent

    def kill(self) -> None:
        self.tmux("kill-session", "-t", self.name)


def on_grid(times, spt, tol=1e-6):
    return all(abs((t - times[0]) / spt - round((t - times[0]) / spt)) < tol for t in times)


def test_the_repl_in_a_real_terminal(model_dir, tmp_path):
    other = tmp_path / "other_vocab"
    shutil.copytree(model_dir, other)
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["resolution"] = 24
    (other / "vocab.json").write_text(json.dumps(vocab))
    trace = tmp_path / "trace.json"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "TMUX": "", "PYTHONUNBUFFERED": "1",
           "TMUX_TMPDIR": str(tmp_path)}
    command = (f"cd {ROOT} && {sys.executable} -m agent repl --model {model_dir} --mode solo --phrases 0 "
               f"--trace {trace} --set timing.bpm=100.0 --set sampling.seed=3 --set sampling.rest_bias=-4.0; sleep 30")
    t = Tmux(f"antiphon-test-{os.getpid()}", env)
    t.start(command)
    try:
        t.wait_for("antiphon>")
        t.wait_for("solo: playing solo")  # the toolbar: notes are flowing
        t.type("temp 0.5")
        t.wait_for("sampling.temperature = 0.5")
        # notes on the old tempo at the new temperature, before the bar line is asked for: 100 more messages
        # sent once the change is shown (a few due within the 0.3 s after it, which the grid check leaves out).
        # The tiny model at rest_bias -4 plays clusters of ~40 messages on one tick, so a count of 16 could
        # be met by the first cluster alone and the bar line come before any note of the window below
        t.wait_sent(t.status()[1] + 100)
        t.type("temp -3")
        t.wait_for("error: temp -3: sampling.temperature = -3.0 is below the minimum 0.01 (allowed: 0.01 to 10.0)")
        t.type("at bar tempo 120")
        t.wait_for("at the next bar")
        t.wait_for("120 bpm (set)", 10.0)
        # notes on the new tempo: 30 more messages are sent after the change is shown (a few due within
        # the 0.3 s after the bar line, which the grid check leaves out; the rest after it)
        t.wait_sent(t.status()[1] + 100)
        t.type("cc learn temp")
        t.wait_for("learnt: CC1 -> sampling.temperature [0.1 2]", 10.0)
        t.type(f"load {other}")
        t.wait_for("refused: its vocabulary differs from the playing model's: resolution 24 (playing: 12)")
        t.type("status")
        t.wait_for("cc: CC1 -> sampling.temperature")  # the session went on
        t.type("quit")
        screen = t.wait_for("trace written to", 20.0)
    finally:
        t.kill()
    assert "0 left open" in screen
    assert (tmp_path / "data" / "antiphon" / "history").read_text().count("+temp") == 2
    tr = json.loads(trace.read_text())
    changes = {k: ts for ts, k, v in tr["changes"] if k == "sampling.temperature" and v == 0.5}
    t_temp = changes["sampling.temperature"]
    notes = [(ts, due, bytes.fromhex(h), temp) for ts, due, h, temp in tr["scheduled"]]
    ons = [n for n in notes if n[2][0] & 0xF0 == 0x90 and n[2][2] > 0]
    before = [n for n in ons if n[0] < t_temp]
    t_learnt = min([ts for ts, k, v in tr["changes"] if k == "sampling.temperature" and v != 0.5] + [1e12])
    after = [n for n in ons if t_temp + 0.01 < n[0] < t_learnt]
    assert before and all(n[3] == 1.0 for n in before)
    assert len(after) >= 3 and all(n[3] == 0.5 for n in after)  # the next notes, and they kept coming
    # temp -3 changed nothing: the only temperature changes are 0.5 and the learnt controller's
    assert [v for _, k, v in tr["changes"] if k == "sampling.temperature"][0] == 0.5
    # at bar tempo 120: the bar line, and the grids either side of it
    (line_s, label, applied_s), = [d for d in tr["pending_done"] if d[1] == "tempo 120"]
    dues = sorted(due for _, due, b, _ in notes if b[0] & 0xF0 in (0x80, 0x90) and due > t_temp + 0.3)
    old = [d for d in dues if d < line_s - 0.3]
    new = [d for d in dues if line_s + 0.3 < d]
    spt_old, spt_new = 60 / 100 / 12, 60 / 120 / 12
    assert len(old) > 3 and len(new) > 3
    assert on_grid(old, spt_old, 1e-4) and on_grid(new, spt_new, 1e-4)
    # really the new tempo: the agent's rests keep to the eighth grid (jam.grid_strength), and an eighth at
    # 120 bpm (0.25 s) is a whole number of 100-bpm ticks (5 x 0.05 s), so compare with the old *eighth* (0.3 s)
    assert not on_grid(new, 6 * spt_old, 1e-4)
    # quit: every note the output port received was closed
    open_ = set()
    for _, h in tr["received"]:
        b = bytes.fromhex(h)
        if b[0] & 0xF0 == 0x90 and b[2] > 0:
            open_.add((b[0] & 0x0F, b[1]))
        elif b[0] & 0xF0 in (0x80, 0x90):
            open_.discard((b[0] & 0x0F, b[1]))
    assert not open_ and tr["received"]


def start_session(tmp_path, name, args, model_dir):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "TMUX": "", "PYTHONUNBUFFERED": "1",
           "TMUX_TMPDIR": str(tmp_path)}
    t = Tmux(f"antiphon-{name}-{os.getpid()}", env)
    t.start(f"cd {ROOT} && {sys.executable} -m agent {args} --model {model_dir}; sleep 30")
    return t


def test_play_opens_the_repl_on_a_terminal_ctrl_c_silences_and_quit_stops(model_dir, tmp_path):
    t = start_session(tmp_path, "play", "play --backend loopback --mode solo", model_dir)
    try:
        t.wait_for("antiphon>")
        t.wait_for("solo: playing solo")
        t.tmux("send-keys", "-t", t.name, "C-c")
        t.wait_for("silenced: the agent's notes are off")
        t.wait_for("solo: silent")
        # the engine, read after the panic ran, says so too (that it stays so while time passes, solo not
        # starting again by itself, is test_live's and test_jam's: there the engine's steps are counted)
        state, sent = t.status()
        assert state == "silent", state
        t.type("mode solo")
        t.wait_for("solo: playing solo")
        t.wait_sent(sent + 4)  # and notes flow again
        t.type("quit")
        screen = t.wait_for("left open", 20.0)
    finally:
        t.kill()
    assert "0 left open" in screen


def test_play_headless_has_no_prompt(model_dir, tmp_path):
    t = start_session(tmp_path, "headless", "play --backend loopback --mode solo --headless", model_dir)
    try:
        t.wait_for("Ctrl-C to stop.")
        t.tmux("send-keys", "-t", t.name, "C-c")
        screen = t.wait_for("left open", 20.0)
    finally:
        t.kill()
    assert "antiphon>" not in screen and "0 left open" in screen


def test_engine_messages_print_above_the_line_being_typed(model_dir, tmp_path):
    t = start_session(tmp_path, "msgs", "repl --set jam.response_bars=1.0", model_dir)
    try:
        t.wait_for("antiphon>")
        t.tmux("send-keys", "-t", t.name, "-l", "temp 0.8")  # typed, not entered, while the player plays
        screen = t.wait_for("phrase 1: heard", 30.0)
        lines = [x for x in screen.splitlines() if x.strip()]
        heard = max(i for i, x in enumerate(lines) if "phrase 1: heard" in x)
        prompt = max(i for i, x in enumerate(lines) if x.startswith("antiphon>"))
        assert prompt > heard and lines[prompt].rstrip() == "antiphon> temp 0.8"
        t.tmux("send-keys", "-t", t.name, "Enter")
        t.wait_for("sampling.temperature = 0.8")
        t.type("quit")
        t.wait_for("0 left open", 20.0)
    finally:
        t.kill()
