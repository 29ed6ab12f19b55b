"""State out (issue 23 item 4): a python-osc server here receives what the engine says it is doing,
and the state CC arrives on the agent's output, while a real chorale phrase is heard and answered."""
from __future__ import annotations

import threading
import time

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from scripted import ScriptedPredictor, play_phrase  # noqa: E402

from agent.config import load_config
from agent.live.engine import Engine
from agent.live.state_out import STATES, StateOut, jam_state
from agent.midi.ports import Loopback, Ports
from agent.music.tempomap import RealClock
from agent.session.scripted import corpus_phrases
from helpers import wait_for


@pytest.fixture
def received():
    got: list[tuple[str, tuple]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: got.append((address, args)))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], got
    server.shutdown()
    server.server_close()


def test_a_phrase_answered_is_told_as_states_an_answers_start_and_end_tempo_key_and_cc(received):
    port, got = received
    cfg = load_config(overrides=["timing.bpm=240.0", "jam.silence_ms=150.0", 'jam.mode="call"', 'sampling.key="D minor"',
                                 f'osc.send_to="127.0.0.1:{port}"', "osc.state_cc=20", "osc.state_channel=16"])
    loop = Loopback()
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None).start()
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append(m))
    try:
        assert [type(s).__name__ for s in eng.synced] == ["StateOut"]
        kbd = Ports("loopback", loop=loop).open_output("keyboard")
        play_phrase(kbd.send, corpus_phrases("bach/bwv66.6", 4, 1)[0], time.perf_counter() + 0.05, 0.25, RealClock())
        assert wait_for(lambda: eng.jam.responses)
        assert wait_for(lambda: [a for a, _ in got].count("/antiphon/state") >= 3)
    finally:
        eng.stop()
    states = [args[0] for a, args in got if a == "/antiphon/state"]
    assert states[:3] == ["listening", "answering", "listening"]
    starts = [args for a, args in got if a == "/antiphon/state/answer/start"]
    ends = [args for a, args in got if a == "/antiphon/state/answer/end"]
    rec = eng.jam.responses[0]
    assert len(starts) == 1 and len(ends) == 1
    assert starts[0][0] == pytest.approx(eng.tempo.beat(rec["first_note_t"]), abs=1e-3)  # float32 beats
    assert ends[0][0] == pytest.approx(eng.tempo.beat(rec["end_t"]), abs=1e-3)
    assert ends[0][2:] == (rec["notes"], "done") and rec["notes"] > 0
    assert [args[0] for a, args in got if a == "/antiphon/state/key"] == ["D minor"]
    tempo = [args for a, args in got if a == "/antiphon/state/tempo"]
    assert tempo[0][2] == "player" and tempo[0][0] == pytest.approx(240.0, abs=0.05)
    ccs = [m.value for m in heard if m.type == "control_change" and m.control == 20 and m.channel == 15]
    assert ccs[:3] == [STATES.index("listening"), STATES.index("answering"), STATES.index("listening")]


class FakeJam:
    def __init__(self, held=None, kind=None):
        self.held = held
        self.gen = None if kind is None else type("Gen", (), {"kind": kind, "first_note_t": None})()


@pytest.mark.parametrize("jam,state", [(FakeJam(), "listening"), (FakeJam(held="play"), "silent"),
                                       (FakeJam(held="mode", kind="call"), "silent"),
                                       (FakeJam(kind="call"), "answering"), (FakeJam(kind="accompany"), "accompanying"),
                                       (FakeJam(kind="solo"), "solo"), (None, "silent")])
def test_the_state_of_the_jam(jam, state):
    assert jam_state(jam) == state


def test_nothing_is_sent_while_nothing_changes(received):
    port, got = received
    cfg = load_config(overrides=[f'osc.send_to="127.0.0.1:{port}"'])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=Loopback()), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None)  # not started: polled by hand
    out = StateOut(eng, cfg.osc)
    out.poll()
    first = out.sent
    out.poll()
    assert first == 3 and out.sent == 3  # state, tempo, key once; then nothing
