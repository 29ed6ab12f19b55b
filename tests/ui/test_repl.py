"""The REPL's unit tier: every command's parser and error, driven through prompt_toolkit's pipe input.

A real Engine on loopback ports with the scripted predictor plays underneath
(so commands act on live threads); each bad value must print one line naming
the value and leave every setting as it was.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import mido
import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from scripted import ScriptedPredictor  # noqa: E402

from agent.config import load_config
from agent.live.engine import Engine
from agent.midi.ports import Loopback, Ports
from agent.ui.repl.app import Repl, ReplCompleter, history_path, toolbar_text
from agent.ui.repl.commands import Commands
from helpers import wait_for


@pytest.fixture
def engine():
    cfg = load_config(overrides=['jam.mode="call"', "timing.bpm=300.0"])
    loop = Loopback()
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None).start()
    eng.loop = loop
    yield eng
    eng.stop()


def drive(engine, *lines, history=False):
    """Type lines into a real prompt_toolkit session (pipe input); returns what the REPL printed."""
    out: list[str] = []
    with create_pipe_input() as inp:
        repl = Repl(engine, input=inp, output=DummyOutput(), history=history, say=out.append)
        for line in lines:
            inp.send_text(line + "\n" if not line.startswith("\x03") else line)
        inp.send_text("quit\n")
        repl.run()
    return out


GOOD = [
    ("temp 0.9", {"sampling.temperature": 0.9}),
    ("top-p 0.95", {"sampling.top_p": 0.95}),
    ("top-k 40", {"sampling.top_k": 40}),
    ("adaptive on", {"sampling.adaptive": True}),
    ("mode accompany", {"jam.mode": "accompany"}),
    ("tempo 96", {"timing.bpm": 96.0, "timing.source": "fixed"}),
    ("tempo fixed", {"timing.source": "fixed"}),
    ("tempo clock", {"timing.source": "clock"}),
    ("key D minor", {"sampling.key": "D minor"}),
    ("key none", {"sampling.key": "none"}),
    ("length 4 bars", {"jam.response_bars": 4.0}),
    ("length same", {"jam.response_bars": 0.0}),
    ("silence 1.5 beats", {"jam.silence_beats": 1.5}),
    ("silence 600 ms", {"jam.silence_ms": 600.0, "jam.silence_beats": 0.0}),
    ("range 48 84", {"sampling.pitch_min": 48, "sampling.pitch_max": 84}),
    ("channel 2", {"midi.channel": 2}),
    ("velocity 0.8", {"midi.velocity_scale": 0.8}),
    ("set jam.lookahead_ms 150", {"jam.lookahead_ms": 150.0}),
    ("set sampling.repeat_penalty 1.5", {"sampling.repeat_penalty": 1.5}),
]


@pytest.mark.parametrize("line,want", GOOD, ids=[g[0] for g in GOOD])
def test_each_setting_command_changes_its_setting(engine, line, want):
    out = drive(engine, line)
    for key, value in want.items():
        assert engine.controls.get(key) == value, out
    assert not any(o.startswith("error") for o in out), out


BAD = [
    ("temp -3", "-3.0", "0.01 to 10.0"),
    ("temp hot", "'hot'", "0.01 to 10.0"),
    ("temp", "give one value", ""),
    ("top-p 1.5", "1.5", "0.0001 to 1.0"),
    ("top-k 2.5", "'2.5'", "0 to 100000"),
    ("adaptive maybe", "adaptive on", ""),
    ("mode jazz", "'jazz'", "call, accompany, solo, off"),
    ("tempo 0", "0.0", "20.0 to 400.0"),
    ("key H major", "'H major'", ""),
    ("length 0 bars", "0 bars", ""),
    ("length four", "'four'", ""),
    ("silence 2 fortnights", "silence 1.5 beats", ""),
    ("silence -1 ms", "-1.0", "10.0 to 60000.0"),
    ("range 84 48", "84 48", "0 to 127"),
    ("range 48", "lowest and highest", ""),
    ("channel 17", "17", "1 to 16"),
    ("velocity -1", "-1.0", ""),
    ("set model.path elsewhere", "cannot change while playing", ""),
    ("set jam.nothing 1", "unknown setting", ""),
    ("set sampling.temperature", "set section.key value", ""),
    ("cc temp 200", "200", "0 to 127"),
    ("cc adaptive 74", "not a number", ""),
    ("cc temp 74 [0.2 99]", "99", "0.01 to 10.0"),
    ("cc learn", "which setting", ""),
    ("cc off", "which controller", ""),
    ("connect sideways x", "connect in NAME", ""),
    ("load", "load MODEL", ""),
    ("load /nonexistent/model", "does not exist", ""),
    ("record pause", "record start", ""),
    ("save", "save FILE", ""),
    ("source /nonexistent/setlist", "cannot read", ""),
    ("help nothing", "unknown command", ""),
    ("frobnicate 3", "unknown command 'frobnicate'", ""),
    ("at noon temp 1", "at bar COMMAND", ""),
    ("at bar quit", "`at bar` works with settings", ""),
    # issue 21 item 13: extra words were dropped silently, a doubled `at` read as an unknown command
    ("status 128", "takes no arguments", "status"),
    ("ports -5", "takes no arguments", "ports"),
    ("panic reset", "takes no arguments", "panic"),
    ("reset now", "takes no arguments", "reset"),
    ("help temp mode", "one command", "help"),
    ("at bar at bar temp 2", "one `at` a line", "at bar COMMAND"),
    ("save /nonexistent/dir/x.toml", "no folder", "/nonexistent/dir"),
    ("connect in NOSUCHPORT", "no MIDI input port matching 'NOSUCHPORT'", ""),
    ("connect out NOSUCHPORT", "no MIDI output port matching 'NOSUCHPORT'", ""),
]


@pytest.mark.parametrize("line,names,rng", BAD, ids=[b[0] for b in BAD])
def test_a_bad_command_prints_one_error_line_and_changes_nothing(engine, line, names, rng):
    before, ports = engine.controls.cfg, engine.loop.names()
    out = drive(engine, line)
    errors = [o for o in out if o.startswith("error:")]
    assert len(errors) == 1 and "\n" not in errors[0], out
    assert names in errors[0] and rng in errors[0], errors[0]
    assert engine.controls.cfg == before and not engine.controls.ccmap.maps and engine.controls.ccmap.learning is None
    assert not engine.controls.pending.items()
    assert engine.loop.names() == ports and not Path("/nonexistent").exists()  # no port, no folder made
    assert not engine.stopped.is_set() and engine.input.name == "keyboard" and engine.output.name == "Antiphon"


def test_a_change_pending_again_on_the_same_line_replaces_the_one_there(engine):
    """Issue 21 item 13: after `source` of a long file `status` listed the same pending change
    several times; a later change of the same settings on the same line supersedes the earlier."""
    drive(engine, "tempo 30")  # a bar is 8 s: every line below falls on the same one
    out = drive(engine, "at bar temp 0.5", "at bar temp 0.5", "at bar temp 0.7", "at bar key D minor",
                "at bar panic", "at bar panic", "status")
    pending = [line for line in out[-1].splitlines() if line.startswith("pending")]
    assert len(pending) == 3 and "temp 0.7" in pending[0] + pending[1] + pending[2], pending
    assert not any("temp 0.5" in line for line in pending)


def test_connect_out_moves_the_agent_to_another_port_closing_its_notes_on_the_old_one(engine):
    heard = {"Antiphon": [], "Other": []}
    for name, got in heard.items():
        Ports("loopback", loop=engine.loop).open_input(name, lambda m, t, got=got: got.append(m))
    drive(engine, "mode solo")
    assert wait_for(lambda: engine.scheduler.open_notes)
    out = drive(engine, "connect out Other")
    assert out[-1] == "playing on 'Other'" and engine.output.name == "Other"
    assert wait_for(lambda: sum(m.type == "note_on" for m in heard["Other"]) > 2)
    ons = {m.note for m in heard["Antiphon"] if m.type == "note_on" and m.velocity}
    offs = {m.note for m in heard["Antiphon"] if m.type == "note_off" or m.velocity == 0}
    assert ons and ons <= offs  # every note started on the old port was closed there


def test_at_bar_waits_for_the_bar_line_then_anchors_the_tempo_there(engine):
    out = drive(engine, "at bar tempo 120", "status")
    assert "at the next bar" in out[0]
    assert any("pending" in line and "tempo 120" in line for o in out for line in o.splitlines())
    assert wait_for(lambda: engine.tempo.bpm == 120.0, 5.0)
    (line_s, label, applied_s), = engine.controls.pending.done
    assert label == "tempo 120"
    # the grid was re-anchored on the bar line: there, the beat count is a whole number of bars
    assert engine.tempo._anchor_s == line_s
    bars = engine.tempo._anchor_beat / 4
    assert abs(bars - round(bars)) < 1e-6 and not engine.controls.pending.items()


def test_at_beat_applies_a_mode_change_on_the_beat_line_not_before(engine):
    drive(engine, "tempo 60")  # a beat a second: the line is far enough to look at before it comes
    out = drive(engine, "at beat mode solo")
    assert "at the next beat" in out[0]
    assert wait_for(lambda: engine.controls.cfg.jam.mode == "solo", 5.0)
    (line_s, label, applied_s), = engine.controls.pending.done
    beat = engine.tempo.beat(line_s)
    assert abs(beat - round(beat)) < 1e-6 and applied_s >= line_s  # a mode lands on the line, never early


def test_cc_mapping_and_learn_act_on_incoming_controllers(engine):
    out = drive(engine, "cc temp 74 [0.2 1.5]", "cc")
    assert out[-1] == "CC74 -> sampling.temperature [0.2 1.5]"
    kbd = Ports("loopback", loop=engine.loop).open_output("keyboard")
    kbd.send(mido.Message("control_change", control=74, value=127))
    assert wait_for(lambda: engine.controls.cfg.sampling.temperature == 1.5)
    out = drive(engine, "cc learn top-p", "cc")
    assert "learning: the next CC moved maps to sampling.top_p" in out[-1]
    kbd.send(mido.Message("control_change", control=11, value=0))  # the next CC moved is learnt
    assert wait_for(lambda: 11 in engine.controls.ccmap.maps)
    assert engine.controls.cfg.sampling.top_p == pytest.approx(0.0001) and engine.controls.ccmap.learning is None
    assert engine.controls.ccmap.maps[74].key == "sampling.temperature"  # the other mapping stays
    drive(engine, "cc off 11")
    assert 11 not in engine.controls.ccmap.maps


def test_mode_off_stays_silent_until_a_mode_is_given(engine):
    drive(engine, "mode solo")
    assert wait_for(lambda: engine.scheduler.sent > 4)
    drive(engine, "mode off")
    assert wait_for(lambda: engine.jam.held == "mode")
    time.sleep(0.1)  # whatever was in flight has gone out
    sent = engine.scheduler.sent
    time.sleep(0.5)
    assert engine.scheduler.sent == sent and not engine.scheduler.open_notes
    drive(engine, "mode solo")  # the same mode as before: still ends the silence
    assert wait_for(lambda: engine.scheduler.sent > sent)


def test_ctrl_c_silences_and_the_session_goes_on(engine):
    drive(engine, "mode solo")
    assert wait_for(lambda: engine.scheduler.sent > 4)
    out = drive(engine, "\x03", "temp 0.7")
    assert any(o.startswith("silenced") for o in out)
    assert wait_for(lambda: engine.jam.held == "play") and engine.controls.cfg.sampling.temperature == 0.7


def test_save_writes_a_config_that_reads_back_and_source_runs_a_set_list(engine, tmp_path):
    setlist = tmp_path / "set.txt"
    setlist.write_text("# opening\ntemp 0.6\nkey A minor\ntemp -1\nrange 40 80\n")
    out = drive(engine, f"source {setlist}", f"save {tmp_path / 'live.toml'}")
    assert engine.controls.cfg.sampling.pitch_min == 40  # an error in the middle does not stop the list
    assert sum(o.startswith("error:") for o in out) == 1
    back = load_config(tmp_path / "live.toml")
    assert (back.sampling.temperature, back.sampling.key, back.sampling.pitch_max) == (0.6, "A minor", 80)


def test_history_is_kept_in_the_users_data_folder(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history_path() == tmp_path / "antiphon" / "history"
    drive(engine, "temp 0.8", history=None)
    assert "+temp 0.8" in (tmp_path / "antiphon" / "history").read_text()


def complete(commands, text):
    return [c.text for c in ReplCompleter(commands).get_completions(Document(text), None)]


def test_completion_of_commands_arguments_ports_and_models(engine):
    c = Commands(engine, say=lambda line: None)
    assert "temp" in complete(c, "te") and "tempo" in complete(c, "te")
    assert complete(c, "mode ") == ["call", "accompany", "solo", "off"]
    assert "D minor" in complete(c, "key D") and "D major" in complete(c, "at bar key D")
    assert "jam.lookahead_ms" in complete(c, "set jam.look")
    assert "temp" in complete(c, "cc learn te")
    assert complete(c, "connect out ") == []  # no port list until `ports` or `connect` looked
    c.run("ports")
    assert "Antiphon" in complete(c, "connect out ")
    assert "default" in complete(c, "load ")


def test_help_lists_every_command(engine):
    from agent.ui.repl.parse import HELP

    out = drive(engine, "help")
    assert all(usage in out[0] for usage, _ in HELP.values())


def test_the_toolbar_shows_mode_state_temperature_tempo_key_and_figures(engine):
    engine.measure()
    drive(engine, "mode solo")
    assert wait_for(lambda: engine.scheduler.sent > 4)
    text = toolbar_text(engine)
    for part in ("solo: playing solo", "temp 1", "300 bpm (followed, confidence 0.00)", "key auto", "step p99", "sched p99", "late 0",
                 "held"):
        assert part in text, text


def test_connect_in_listens_on_the_new_port_only(engine):
    Ports("loopback", loop=engine.loop).open_output("pads")  # the pads are plugged in
    out = drive(engine, "connect in pads")
    assert out[-1] == "listening on 'pads'" and engine.input.name == "pads"
    ports = Ports("loopback", loop=engine.loop)
    received = engine.listener.received
    ports.open_output("keyboard").send(mido.Message("note_on", note=60, velocity=90))
    ports.open_output("pads").send(mido.Message("note_on", note=62, velocity=90))
    assert wait_for(lambda: engine.listener.received == received + 1)
    time.sleep(0.1)
    assert engine.listener.received == received + 1 and engine.jam.phrase is not None


def test_reset_clears_the_model_state(engine):
    pred = engine.predictor
    kbd = Ports("loopback", loop=engine.loop).open_output("keyboard")
    kbd.send(mido.Message("note_on", note=60, velocity=90))
    assert wait_for(lambda: len(pred.fed) >= 2)  # VEL, NOTE_ON
    out = drive(engine, "reset")
    assert out[-1] == "model state cleared"
    assert wait_for(lambda: pred.fed == [pred.vocab.START])


def test_record_start_and_stop_while_playing_write_the_takes_and_never_overwrite(engine, tmp_path):
    (tmp_path / "take.mid").write_bytes(b"an earlier take")
    out = drive(engine, f"record start {tmp_path / 'take'}", "mode solo", "record")
    assert f"recording to {tmp_path / 'take-1.mid'}" in out[0]
    assert any(f"recording to {tmp_path / 'take-1.mid'}" == o for o in out)  # `record` says where
    assert wait_for(lambda: engine.scheduler.sent > 6)
    out = drive(engine, "record stop", "record stop")
    assert out[0].startswith("wrote ") and "take-1.mid" in out[0] and "take-1.png" in out[0]
    assert out[1] == "not recording"
    assert (tmp_path / "take.mid").read_bytes() == b"an earlier take"
    agent = [m for m in mido.MidiFile(tmp_path / "take-1.mid").tracks[2] if m.type == "note_on" and m.velocity]
    assert agent  # the solo's notes are in the take
    assert not engine.stopped.is_set()  # the music goes on


def test_a_redraw_waits_for_a_send_due_within_a_few_ms_and_not_for_one_far_off(engine):
    with create_pipe_input() as inp:
        repl = Repl(engine, input=inp, output=DummyOutput(), history=False, say=lambda line: None)
        due = time.perf_counter() + 0.003
        engine.scheduler.schedule(due, mido.Message("control_change", control=7, value=100))
        repl._clear_of_the_next_note(None)
        assert time.perf_counter() >= due  # the send went first
        far = time.perf_counter() + 1.0
        engine.scheduler.schedule(far, mido.Message("control_change", control=7, value=100))
        repl._clear_of_the_next_note(None)
        assert time.perf_counter() < far


def test_the_toolbar_reads_the_last_answers_onset_without_walking_the_jams_answers(engine):
    """Issue 21 item 7: the toolbar walked `jam.responses` on the REPL thread while the engine thread
    appended to it ("deque mutated during iteration" escaped prompt() and ended the session), and in
    accompany scanned the whole deque four times a second. A record that grows the deque as it is
    read stands in for the engine thread appending between two reads."""
    engine.measure()
    kbd = Ports("loopback", loop=engine.loop).open_output("keyboard")
    for p in (60, 64, 67):
        kbd.send(mido.Message("note_on", note=p, velocity=90))
        kbd.send(mido.Message("note_off", note=p))
    assert wait_for(lambda: engine.jam.answers >= 1, 5.0)
    assert "onset " in toolbar_text(engine)  # the answer's first note after the pause, in ms

    class Growing(dict):
        def get(self, key, default=None):
            engine.jam.responses.append({})
            return super().get(key, default)

    engine.jam.responses.append(Growing(threshold_t=None, first_note_t=None))
    assert "onset " in toolbar_text(engine)


def test_a_step_p99_over_the_configured_budget_is_flagged_in_the_toolbar_and_status(engine):
    """Issue 21 item 15: latency.step_budget_ms was read only by a benchmark; the session that plays
    measures its steps against it and says so when they do not fit."""
    figures = engine.measure()
    now = engine.clock.now()
    budget_ms = engine.controls.cfg.latency.step_budget_ms
    figures.steps.extend((now, budget_ms / 2e3) for _ in range(50))
    assert "over budget" not in toolbar_text(engine)
    figures.steps.extend((now, 3 * budget_ms / 1e3) for _ in range(50))
    assert f"over the {budget_ms:g} ms budget" in toolbar_text(engine)
    out = drive(engine, "status")
    assert f"over the {budget_ms:g} ms budget (latency.step_budget_ms)" in out[-1]
