"""Lost devices on a real JACK server: ports removed and recreated by another process, and the JACK
client that owns them restarted. `antiphon play` says so, plays on, and reconnects by name."""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]

# a keyboard or a synth in its own process (its own JACK client), driven line by line on stdin
DEVICE = r'''
import sys, time, mido
from agent.midi.ports import Ports
kind, name = sys.argv[1], sys.argv[2]
port, got = None, []
def open_():
    global port
    if kind == "keys":
        port = mido.open_output(name, virtual=True)
    else:
        port = Ports("auto").open_input(name, lambda m, t: got.append(m.type), virtual=True)
print("ready", flush=True)
open_()
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "close":
        port.close(); port = None
    elif cmd[0] == "open":
        open_()
    elif cmd[0] == "phrase":
        for p in (60, 64, 67, 72):
            port.send(mido.Message("note_on", note=p, velocity=90)); time.sleep(0.12)
            port.send(mido.Message("note_off", note=p)); time.sleep(0.03)
    elif cmd[0] == "count":
        pass
    elif cmd[0] == "quit":
        break
    print(got.count("note_on"), flush=True)
'''


class Device:
    def __init__(self, kind: str, name: str, env: dict) -> None:
        self.p = subprocess.Popen([sys.executable, "-c", DEVICE, kind, name], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # the port is registered

    def do(self, cmd: str) -> int:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return int(self.p.stdout.readline())

    def kill(self) -> None:
        self.p.kill()
        self.p.wait(timeout=10)


class Play:
    """`antiphon play` with its stdout read on a thread, so a test can wait for a line."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", *args],
                                  env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.p.stdout], daemon=True).start()

    def wait_line(self, text: str, timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {timeout_s} s; saw {self.seen[-8:]}")

    def stop(self) -> tuple[int, str]:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.returncode, self.p.stderr.read()


def test_the_keyboard_port_removed_and_recreated_and_its_client_restarted(bench, jack_env, model_dir):
    keys = Device("keys", "TestKeys", jack_env)
    play = Play(["--in", "TestKeys", "--virtual", "AgentOut", "--mode", "call", "--model", str(model_dir),
                 "--set", "midi.port_check_s=0.2", "--set", "jam.silence_ms=200.0"], jack_env)
    reader = None
    try:
        play.wait_line("listening on")
        reader = bench.Child("reader", "AgentOut", jack_env)
        keys.do("phrase")
        play.wait_line("phrase 1:")
        keys.do("close")  # the port is removed by its owner
        play.wait_line("is gone")
        keys.do("open")  # and recreated
        play.wait_line("is back")
        keys.do("phrase")
        play.wait_line("phrase 2:")
        keys.kill()  # the JACK client that owns the port goes away
        play.wait_line("is gone")
        keys = Device("keys", "TestKeys", jack_env)  # and starts again
        play.wait_line("is back")
        keys.do("phrase")
        play.wait_line("phrase 3:")
    finally:
        rc, err = play.stop()
        keys.kill()
    reader.say("stop 0")
    got = reader.result()
    assert rc == 0, err[-2000:]
    assert not bench.sounding(got)
    assert sum(1 for _, b in got if b[0] & 0xF0 == 0x90 and b[2] > 0) > 0


def test_the_synth_port_goes_away_and_comes_back(bench, jack_env, model_dir):
    synth = Device("synth", "TestSynth", jack_env)
    play = Play(["--virtual-in", "AgentIn", "--out", "TestSynth", "--mode", "solo", "--model", str(model_dir),
                 "--set", "midi.port_check_s=0.2", "--set", "timing.bpm=240.0"], jack_env)
    try:
        play.wait_line("listening on")
        deadline = time.monotonic() + 20
        while synth.do("count") < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert synth.do("count") >= 4
        synth.kill()  # the synth (its JACK client) goes away
        play.wait_line("is gone")
        synth = Device("synth", "TestSynth", jack_env)  # and comes back
        play.wait_line("is back")
        deadline = time.monotonic() + 20
        while synth.do("count") < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert synth.do("count") >= 4  # the agent plays on the new port
        assert play.p.poll() is None  # it never stopped
    finally:
        rc, err = play.stop()
        synth.kill()
    assert rc == 0, err[-2000:]
