"""Live settings that must take effect (or be refused): seed, context, end-of-phrase CC, channel;
panic that stays silent; a model loaded live (and one with another vocabulary refused)."""
from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import mido
import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.engine import Engine
from agent.live.jam.policy import Jam
from agent.midi.ports import Loopback, Ports
from agent.ui.repl.commands import Commands
from agent.live.scheduler import Scheduler
from helpers import ListOut, wait_for


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("live_model"), hidden=32, embedding=16)


def start(pred, *sets):
    cfg = load_config(overrides=["timing.bpm=300.0", *sets])
    loop = Loopback()
    eng = Engine(cfg, pred, ports=Ports("loopback", loop=loop), input_name="keyboard", virtual_name="Antiphon",
                 report=lambda line: None).start()
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append(m))
    return eng, Ports("loopback", loop=loop).open_output("keyboard"), heard


def test_panic_in_solo_stays_silent_until_the_player_plays():
    cfg = load_config(overrides=['jam.mode="solo"', "timing.bpm=120.0"])
    clock = FakeClock(100.0)
    out = ListOut(clock)
    sched = Scheduler(out, clock)
    jam = Jam(ScriptedPredictor(cfg.vocab()), sched, TempoMap(120.0, clock.now()), LiveControls(cfg), clock,
              cfg.vocab())

    def run_until(t_s):
        wake = jam.tick(clock.now())
        while clock.now() < t_s:
            nd = sched.next_due()
            clock.set(min(x for x in (wake, nd, t_s) if x is not None))
            sched.pump()
            wake = jam.tick(clock.now())

    run_until(101.0)
    assert any(m.type == "note_on" for _, m in out.sent)
    jam.cut(clock.now())  # what Engine.panic does on the engine thread
    jam.hold("play")
    sched.panic()
    n = len(out.sent)
    run_until(105.0)  # four seconds of solo: nothing starts again
    assert len(out.sent) == n and not sched.open_notes
    jam.player_note(60, 90, True, clock.now())
    jam.player_note(60, 0, False, clock.now() + 0.1)
    run_until(106.0)
    assert any(m.type == "note_on" for _, m in out.sent[n:])


def test_engine_panic_then_mode_resumes_solo():
    eng, kbd, heard = start(ScriptedPredictor(load_config().vocab()), 'jam.mode="solo"')
    assert wait_for(lambda: eng.scheduler.sent > 4)
    eng.panic()
    assert wait_for(lambda: sum(m.type == "control_change" for m in heard) == 32)
    n = len(heard)
    # solo does not start again by itself: the engine thread goes round its loop (each call is handled
    # in a step that a tick of the jam follows; unheld, solo's first tick starts a generation and queues
    # its notes) and the jam stays held, with nothing generating, nothing queued and nothing heard
    for _ in range(5):
        went_round = threading.Event()
        eng.on_engine_thread(went_round.set)
        assert went_round.wait(30)
    assert eng.jam.held == "play" and eng.jam.gen is None and eng.scheduler.pending() == 0
    assert len(heard) == n
    Commands(eng, say=lambda line: None).run("mode solo")
    assert wait_for(lambda: len(heard) > n)
    eng.stop()


def test_seed_set_live_repeats_the_same_choices(model_dir):
    from agent.model.predictor import Predictor

    eng, kbd, heard = start(Predictor.load(model_dir), 'jam.mode="call"')
    pred = eng.predictor
    runs = []
    for _ in range(2):
        eng.controls.set("sampling.seed", 11)
        assert wait_for(lambda: pred.sampler.seed == 11)
        snap = {}
        eng.on_engine_thread(lambda: snap.setdefault("s", pred.snapshot()))
        assert wait_for(lambda: "s" in snap)
        got = []
        eng.on_engine_thread(lambda: (got.extend(pred.sample(eng.controls.sampling) for _ in range(30)),
                                      pred.rollback(snap["s"])))
        assert wait_for(lambda: len(got) == 30)
        runs.append(got)
    assert runs[0] == runs[1]
    eng.stop()


def test_context_tokens_set_live_resizes_the_rolling_context(model_dir):
    from agent.model.predictor import Predictor

    eng, kbd, heard = start(Predictor.load(model_dir), 'jam.mode="solo"')
    assert wait_for(lambda: len(eng.predictor.history) > 40)
    eng.controls.set("jam.context_tokens", 32)
    assert wait_for(lambda: eng.predictor.history.maxlen == 32)
    assert len(eng.predictor.history) <= 32
    eng.stop()


def test_end_phrase_cc_set_live_ends_the_phrase():
    eng, kbd, heard = start(ScriptedPredictor(load_config().vocab()), 'jam.mode="call"', "jam.silence_ms=60000.0")
    eng.controls.set("jam.end_phrase_cc", 20)
    kbd.send(mido.Message("note_on", note=60, velocity=90))
    kbd.send(mido.Message("note_off", note=60))
    time.sleep(0.05)  # the player's timing: the pedal comes after the release
    kbd.send(mido.Message("control_change", control=20, value=127))  # no minute of silence needed now
    assert wait_for(lambda: any(m.type == "note_on" for m in heard))
    eng.stop()


def test_channel_set_live_closes_notes_on_the_old_channel():
    eng, kbd, heard = start(ScriptedPredictor(load_config().vocab(), "NOTE_ON(60) SHIFT(24) NOTE_OFF(60)"),
                            'jam.mode="solo"')
    assert wait_for(lambda: eng.scheduler.open_notes)
    eng.controls.set("midi.channel", 3)
    assert wait_for(lambda: any(m.type == "note_on" and m.channel == 2 for m in heard))
    eng.stop()
    on = {}
    for m in heard:
        if m.type in ("note_on", "note_off"):
            k = (m.channel, m.note)
            on[k] = on.get(k, 0) + (1 if m.type == "note_on" and m.velocity else -1 if on.get(k) else 0)
    assert not any(on.values())  # no note left open on either channel


def test_load_swaps_the_model_at_a_silence_and_refuses_another_vocabulary(model_dir, tmp_path):
    from agent.model.predictor import Predictor

    eng, kbd, heard = start(Predictor.load(model_dir, seed=1), 'jam.mode="call"')
    for p in (60, 64, 67):
        kbd.send(mido.Message("note_on", note=p, velocity=90))
        kbd.send(mido.Message("note_off", note=p))
    assert wait_for(lambda: len(eng.predictor.history) > 5)
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["resolution"] = 24
    (other / "vocab.json").write_text(json.dumps(vocab))
    said = []
    c = Commands(eng, say=said.append)
    c.run(f"load {other}")
    assert "refused" in said[-1] and "resolution 24 (playing: 12)" in said[-1]
    old = eng.predictor
    c.run(f"load {model_dir}")
    assert wait_for(lambda: eng.predictor is not old and eng.loading is None)
    assert eng.jam.predictor is eng.predictor and list(eng.predictor.history)[-5:] == list(old.history)[-5:]
    eng.stop()


def antiphon(*args, timeout=120):
    import os
    import subprocess

    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_antiphon_repl_without_a_terminal_says_so_before_loading_anything():
    r = antiphon("repl", "--model", "/nonexistent/model")
    assert r.returncode == 2 and "needs a terminal" in r.stderr and "Traceback" not in r.stderr


def test_antiphon_repl_for_some_seconds_with_no_prompt_plays_and_closes_every_note(model_dir, tmp_path):
    trace = tmp_path / "trace.json"
    r = antiphon("repl", "--model", str(model_dir), "--seconds", "6", "--set", "timing.bpm=240.0",
                 "--set", "jam.response_bars=1.0", "--trace", str(trace))
    assert r.returncode == 0, r.stderr
    assert "phrase 1: heard" in r.stdout and "0 left open" in r.stdout
    got = json.loads(trace.read_text())["received"]
    sounding = set()
    for _, h in got:
        b = bytes.fromhex(h)
        if b[0] & 0xF0 == 0x90 and b[2]:
            sounding.add(b[1])
        elif b[0] & 0xF0 in (0x80, 0x90):
            sounding.discard(b[1])
    assert got and not sounding
