"""The engine on loopback ports with real threads and a real (tiny, random) model.

No timing is asserted here (that is the benchmark's job): these check that a
phrase is heard and answered, every note is closed on every exit path, the
echo of our own output is not taken for the player, and panic works.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import mido
import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.music.tempomap import RealClock
from agent.session.scripted import corpus_phrases
from scripted import play_phrase
from agent.config import load_config
from agent.live.engine import Engine
from agent.session.recorder import Recorder
from agent.ui.commands.play import start_recording
from agent.midi.ports import PortLost, Ports
from fakes import ListedPorts, Loopback
from helpers import wait_for

FAST = ["timing.bpm=240.0", "jam.silence_ms=150.0"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("engine_model"), hidden=32, embedding=16)


@pytest.fixture(scope="module")
def chorale_phrase():
    return corpus_phrases("bach/bwv66.6", 4, 1)[0]


def open_at(msgs) -> set[int]:
    """The pitches a receiver still hears sounding after msgs."""
    open_ = set()
    for _, m in msgs:
        if m.type == "note_on" and m.velocity > 0:
            open_.add(m.note)
        elif m.type in ("note_on", "note_off"):
            open_.discard(m.note)
    return open_


def paired(msgs) -> bool:
    """Every note-on in msgs was closed."""
    return not open_at(msgs)


def make(pred, mode="call", extra=()):
    cfg = load_config(overrides=FAST + [f'jam.mode="{mode}"', *extra])
    loop = Loopback()
    rec = Recorder(cfg.timing.bpm)
    eng = Engine(cfg, pred, ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None, recorder=rec).start()
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append((t, m)))
    return eng, rec, loop, heard


def test_a_chorale_phrase_is_heard_and_answered_with_every_note_closed(model_dir, chorale_phrase):
    from agent.model.predictor import Predictor

    eng, rec, loop, heard = make(Predictor.load(model_dir, seed=3))
    kbd = Ports("loopback", loop=loop).open_output("keyboard")
    play_phrase(kbd.send, chorale_phrase, time.perf_counter() + 0.05, 0.25, RealClock())
    assert wait_for(lambda: eng.jam.responses)
    closed = eng.stop()
    resp = eng.jam.responses[0]
    assert resp["heard_notes"] == len(chorale_phrase) and not resp["barged"]
    assert eng.listener.notes_in == 2 * len(chorale_phrase)  # no input event lost
    assert closed == [] and paired(heard) and eng.scheduler.unclosed == 0
    assert any(m.type == "note_on" for _, m in heard) == (resp["notes"] > 0)
    # the recorder (attached by the engine) kept both parts and the phrase's marker
    assert [n.pitch for n in rec.notes("human")] == [p for p, _, _ in chorale_phrase]
    assert len(rec.notes("agent")) == sum(m.type == "note_on" and m.velocity > 0 for _, m in heard)
    assert [kind for _, kind, _ in rec.snapshot()[2]][:1] == ["phrase"]


def test_stop_mid_note_closes_it(model_dir):
    eng, rec, loop, heard = make(ScriptedPredictor(load_config().vocab(), "NOTE_ON(60) NOTE_ON(64) SHIFT(48) "
                                                   "NOTE_OFF(60) NOTE_OFF(64)"), mode="solo")
    assert wait_for(lambda: eng.scheduler.open_notes)
    closed = eng.stop()
    assert sorted(closed) == [60, 64] and paired(heard)


def test_an_exception_in_the_model_stops_the_engine_and_closes_notes(tmp_path):
    pred = ScriptedPredictor(load_config().vocab(), "NOTE_ON(60) SHIFT(24) NOTE_OFF(60) NOTE_ON(62) SHIFT(24)",
                             fail_after=4)
    eng, rec, loop, heard = make(pred, mode="solo")
    start_recording(eng, tmp_path / "take.mid")
    assert eng.wait(10.0) and isinstance(eng.error, RuntimeError)
    eng.stop()
    assert paired(heard) and eng.scheduler.unclosed == 0
    # the recording's final files are written whatever ended the session, the last note closed in them
    assert [p.name for p in eng.recorded] == ["take.mid", "take.musicxml", "take.png"]
    agent = mido.MidiFile(tmp_path / "take.mid").tracks[2]
    assert [(m.type, m.note) for m in agent if m.type in ("note_on", "note_off")] == [
        ("note_on", 60), ("note_off", 60)]  # 62 was still queued when the model failed: never sent


def test_a_lost_output_port_is_reported_and_reconnected_while_the_engine_plays_on():
    lines = []
    cfg = load_config(overrides=FAST + ['jam.mode="solo"', "midi.port_check_s=0.05"])
    loop = Loopback()
    heard = []
    Ports("loopback", loop=loop).open_input("Synth", lambda m, t: heard.append((t, m)))
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab(), "NOTE_ON(60) SHIFT(6) NOTE_OFF(60)"),
                 ports=Ports("loopback", loop=loop), input_name="keyboard", output_name="Synth",
                 report=lines.append).start()
    try:
        assert wait_for(lambda: len(heard) >= 4)
        loop.break_bus("Synth")  # the synth goes away
        assert wait_for(lambda: any("is gone" in line for line in lines))
        lost_at = len(heard)
        back = []
        loop.restore_bus("Synth")  # ... and comes back: a new port of the same name
        Ports("loopback", loop=loop).open_input("Synth", lambda m, t: back.append((t, m)))
        assert wait_for(lambda: any("is back" in line for line in lines))
        assert wait_for(lambda: sum(m.type == "note_on" for _, m in back) >= 2)  # playing on it again
        assert not eng.stopped.is_set() and eng.error is None
        assert back[0][1].type == "control_change" and back[0][1].control == 123  # all-notes-off first
    finally:
        eng.stop()
    # the note sounding when the port went is counted as not closed; everything after pairs up
    assert len(open_at(heard[:lost_at])) == eng.scheduler.unclosed and paired(back)


def test_a_port_connected_later_is_watched_even_if_the_session_began_on_virtual_ports():
    lines = []
    cfg = load_config(overrides=FAST + ['jam.mode="solo"', "midi.port_check_s=0.05"])
    loop = Loopback()
    heard = []
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab(), "NOTE_ON(60) SHIFT(6) NOTE_OFF(60)"),
                 ports=Ports("loopback", loop=loop), input_name="AntiphonIn", virtual_input=True,
                 virtual_name="Antiphon", report=lines.append).start()
    try:
        Ports("loopback", loop=loop).open_input("Synth", lambda m, t: heard.append((t, m)))
        assert eng.connect_output("Synth") == "Synth"  # `connect out Synth` in the REPL
        assert wait_for(lambda: len(heard) >= 2)
        loop.break_bus("Synth")
        assert wait_for(lambda: any("is gone" in line for line in lines))
        loop.restore_bus("Synth")
        back = []
        Ports("loopback", loop=loop).open_input("Synth", lambda m, t: back.append((t, m)))
        assert wait_for(lambda: any("is back" in line for line in lines))
        assert wait_for(lambda: any(m.type == "note_on" for _, m in back))
        assert not eng.stopped.is_set() and eng.error is None
    finally:
        eng.stop()


def test_recording_starts_and_stops_while_playing_and_never_overwrites(tmp_path):
    from agent.errors import AntiphonError

    eng, rec, loop, heard = make(ScriptedPredictor(load_config().vocab(), "NOTE_ON(60) SHIFT(6) NOTE_OFF(60)"),
                                 mode="solo")
    eng.stop_recording()  # the recorder make() attached: none from here on
    (tmp_path / "jam.mid").write_bytes(b"an earlier take")
    path = start_recording(eng, tmp_path / "jam.mid")
    assert path == tmp_path / "jam-1.mid" and eng.recorder is not None
    with pytest.raises(AntiphonError, match="already recording"):
        start_recording(eng, tmp_path / "other.mid")
    assert wait_for(lambda: len(heard) >= 6)
    files = eng.stop_recording()
    assert [f.name for f in files] == ["jam-1.mid", "jam-1.musicxml", "jam-1.png"] and eng.recorder is None
    assert (tmp_path / "jam.mid").read_bytes() == b"an earlier take"
    played = [m for m in mido.MidiFile(path).tracks[2] if m.type == "note_on"]
    assert played and {m.note for m in played} == {60}
    assert not eng.stopped.is_set()  # the session goes on
    eng.stop()


def test_a_daw_thru_that_remaps_channel_and_velocity_does_not_make_the_agent_its_own_player(model_dir,
                                                                                            chorale_phrase):
    """Issue 21 item 10: a thru (a DAW track monitoring the agent's port into the keyboard's) that moves
    every note to channel 5 and puts it through a velocity curve; the answer must not be withdrawn."""
    from agent.model.predictor import Predictor

    eng, rec, loop, heard = make(Predictor.load(model_dir, seed=5), extra=["jam.response_bars=1.0"])
    ports = Ports("loopback", loop=loop)
    back = ports.open_output("keyboard")

    def thru(m, t):
        if m.type == "note_on" and m.velocity:
            back.send(m.copy(channel=4, velocity=min(127, 20 + m.velocity * 3 // 4)))
        elif m.type in ("note_on", "note_off"):
            back.send(mido.Message("note_on", channel=4, note=m.note, velocity=0))
    ports.open_input("Antiphon", thru)
    play_phrase(back.send, chorale_phrase[:4], time.perf_counter() + 0.05, 0.25, RealClock())
    assert wait_for(lambda: eng.jam.responses and eng.jam.gen is None)
    time.sleep(0.3)
    eng.stop()
    resp = eng.jam.responses[0]
    sent = sum(1 for _, m in heard if m.type in ("note_on", "note_off"))
    assert resp["notes"] > 0 and eng.jam.phrases == 1 and not resp["barged"]
    assert eng.listener.echo.echoes == sent and eng.listener.notes_in == 8  # the player's 4 notes, on and off


@pytest.mark.parametrize("mode", ["solo", "call"])
def test_a_model_loaded_while_playing_takes_over_in_solo_too(model_dir, mode, chorale_phrase):
    """Issue 21 item 6: a solo never falls silent, so the swap waited for a silence for ever,
    rescheduling itself every 50 ms on a new Timer thread, and every later `load` was refused."""
    import threading

    from agent.model.predictor import Predictor

    eng, rec, loop, heard = make(Predictor.load(model_dir, seed=5), mode=mode)
    try:
        if mode == "call":
            kbd = Ports("loopback", loop=loop).open_output("keyboard")
            play_phrase(kbd.send, chorale_phrase[:4], time.perf_counter() + 0.05, 0.25, RealClock())
        assert wait_for(lambda: sum(m.type == "note_on" for _, m in heard) >= 2, 5.0)
        new = Predictor.load(model_dir, seed=6)
        eng.loading = "other"
        eng.swap_predictor(new, "other")
        assert wait_for(lambda: eng.loading is None, 5.0), [t.name for t in threading.enumerate()]
        assert eng.predictor is new and eng.jam.predictor is new and eng.model_name == "other"
        assert len(new.history) > 10  # it was primed from the context before it took over
        assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        if mode == "solo":
            ons = sum(m.type == "note_on" for _, m in heard)
            assert wait_for(lambda: sum(m.type == "note_on" for _, m in heard) > ons + 2, 5.0)  # it plays on
    finally:
        eng.stop()
    assert paired(heard) and eng.error is None


def test_panic_closes_notes_and_silences_all_channels():
    eng, rec, loop, heard = make(ScriptedPredictor(load_config().vocab(), "NOTE_ON(60) SHIFT(48) NOTE_OFF(60)"),
                                 mode="solo")
    assert wait_for(lambda: eng.scheduler.open_notes)
    eng.panic()
    assert wait_for(lambda: sum(m.type == "control_change" for _, m in heard) == 32)
    eng.stop()
    assert paired(heard)


def test_our_own_output_looped_back_is_not_taken_for_the_player(model_dir, chorale_phrase):
    from agent.model.predictor import Predictor

    eng, rec, loop, heard = make(Predictor.load(model_dir, seed=5), extra=["jam.response_bars=1.0"])
    ports = Ports("loopback", loop=loop)
    back = ports.open_output("keyboard")
    ports.open_input("Antiphon", lambda m, t: back.send(m) if m.type in ("note_on", "note_off") else None)
    play_phrase(back.send, chorale_phrase[:4], time.perf_counter() + 0.05, 0.25, RealClock())
    assert wait_for(lambda: eng.jam.responses and eng.jam.gen is None)
    time.sleep(0.3)
    eng.stop()
    resp = eng.jam.responses[0]
    assert eng.jam.phrases == 1 and not resp["barged"]  # the echo neither barged in nor started a phrase
    assert eng.listener.echo.echoes == sum(1 for _, m in heard if m.type in ("note_on", "note_off"))


def test_live_temperature_cc_reaches_the_controls():
    pred = ScriptedPredictor(load_config().vocab())
    eng, rec, loop, heard = make(pred, extra=["jam.temperature_cc=21"])
    kbd = Ports("loopback", loop=loop).open_output("keyboard")
    kbd.send(mido.Message("control_change", control=21, value=0))
    assert wait_for(lambda: eng.controls.sampling.temperature == pytest.approx(0.1))
    eng.stop()


def test_a_lost_input_port_is_reported_and_reconnected_by_name():
    cfg = load_config(overrides=FAST + ["midi.port_check_s=0.05"])
    loop = Loopback()
    lines = []
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lines.append).start()
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append((t, m)))
    try:
        kbd = Ports("loopback", loop=loop).open_output("keyboard")
        kbd.send(mido.Message("note_on", note=50, velocity=80))  # held when the keyboard is unplugged
        assert wait_for(lambda: eng.jam.player_onset)
        loop.break_bus("keyboard")
        assert wait_for(lambda: any("is gone" in line for line in lines))
        assert wait_for(lambda: not eng.jam.player_onset)  # its held key was let go in the context
        loop.restore_bus("keyboard")
        assert wait_for(lambda: any("is back" in line for line in lines))
        kbd = Ports("loopback", loop=loop).open_output("keyboard")
        n = eng.jam.answers
        play_phrase(kbd.send, [(60, 0.0, 0.5), (64, 0.5, 0.5)], time.perf_counter() + 0.05, 0.25, RealClock())
        assert wait_for(lambda: eng.jam.answers > n)  # heard on the reconnected port and answered
        assert not eng.stopped.is_set() and eng.error is None
    finally:
        eng.stop()
    assert paired(heard)


def test_midi_clock_in_sets_the_tempo_and_start_restarts_the_grid():
    eng, rec, loop, heard = make(ScriptedPredictor(load_config().vocab()), extra=['timing.source="clock"'])
    t = time.perf_counter()
    eng._on_transport("start", t)
    assert eng.tempo.beat(t) == 0.0
    eng._on_midi_tempo(150.0, t)
    assert eng.tempo.bpm == 150.0
    eng.controls.set("timing.bpm", 90.0)  # the REPL's way
    assert eng.tempo.bpm == 90.0
    eng.stop()


def test_controls_refuse_what_cannot_change_while_playing():
    from agent.live.controls import LiveControls
    from agent.errors import AntiphonError

    c = LiveControls(load_config())
    with pytest.raises(AntiphonError, match="cannot change while playing"):
        c.set("model.path", "elsewhere")
    c.set("sampling.key", "D minor")  # text values parse like --set
    c.set("jam.silence_ms", "250")
    assert c.sampling.key == "D minor" and c.get("jam.silence_ms") == 250.0


def test_a_tee_still_sends_to_the_others_when_one_output_fails():
    from agent.midi.tee import Tee

    loop = Loopback()
    ports = Ports("loopback", loop=loop)
    got = []
    ports.open_input("synth", lambda m, t: got.append(m))
    loop.break_bus("gone")
    tee = Tee(ports.open_output("gone"), ports.open_output("synth"))
    with pytest.raises(PortLost):
        tee.send(mido.Message("note_off", note=60))
    assert [m.note for m in got] == [60]  # the note-off reached the synth: no stuck note there


def test_a_failed_start_undoes_everything_it_started():
    class NoInput(Ports):
        def open_input(self, *a, **kw):
            raise PortLost("no keyboard")

    before = sys.getswitchinterval()
    eng = Engine(load_config(overrides=FAST), ScriptedPredictor(load_config().vocab()),
                 ports=NoInput("loopback", loop=Loopback()), report=lambda line: None)
    with pytest.raises(PortLost):
        eng.start()
    assert sys.getswitchinterval() == before and eng.output is None
    assert not eng.scheduler._thread.is_alive()


def test_an_input_that_is_not_there_is_named_against_the_ports_others_have_not_our_own():
    """Issue 21 item 13: `--in NOSUCHPORT` listed the agent's own output among the inputs it "has"
    (a virtual output is listed as an input), and connecting to it would feed the agent itself."""
    from agent.errors import PortError

    cfg = load_config(overrides=FAST)
    loop = Loopback()
    ports = ListedPorts(loop)
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=ports, input_name="NOSUCHPORT",
                 virtual_name="Antiphon", report=lambda line: None)
    with pytest.raises(PortError) as err:
        eng.start()
    assert "NOSUCHPORT" in str(err.value) and "Midi Through" in str(err.value)
    assert "Antiphon" not in str(err.value)
    ports.open_output("Midi Through")  # now a keyboard is there
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=ports, input_name="Midi",
                 virtual_name="Antiphon", report=lambda line: None).start()
    try:
        with pytest.raises(PortError) as err:
            eng.connect_input("Antiphon")  # our own output is not an input to listen on
        assert "Antiphon 130:0" not in str(err.value) and eng.input.name == "Midi Through Port-0"
    finally:
        eng.stop()
