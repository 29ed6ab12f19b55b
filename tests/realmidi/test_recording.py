"""The recording holds every note that reached a port: over JACK, in every mode, the note-ons in the
recorded MIDI file equal the note-ons a polled reader got, both parts, note for note (pitch order).

The engine runs in this process with a recorder attached as `antiphon play --record` attaches it; a
player process plays phrases into the engine's input, one reader process listens to the agent's port
and another to the player's, both reading rtmidi's queue by polling (agent/midi/rtinput.py).
"""
from __future__ import annotations

import os
import time

import mido
import pytest

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]

PHRASES = 2


def note_ons_at_reader(got) -> list[int]:
    return [b[1] for _, b in got if b[0] & 0xF0 == 0x90 and b[2] > 0]


def note_ons_in_file(path, track: str) -> list[int]:
    mid = mido.MidiFile(path)
    for tr in mid.tracks:
        if tr.name == track:
            return [m.note for m in tr if m.type == "note_on" and m.velocity > 0]
    raise AssertionError(f"{path} has no track {track!r}")


def session(eng, bench, stop_at_s: float) -> None:
    """What a REPL user does meanwhile: channel changes, panics, mode switches (as the REPL does them)."""
    steps = [lambda: eng.controls.set("midi.channel", 3), lambda: eng.panic(),
             lambda: (eng.controls.set("jam.mode", "accompany"), eng.resume()), lambda: eng.controls.set("midi.channel", 5),
             lambda: (eng.controls.set("jam.mode", "solo"), eng.resume()), lambda: eng.panic(), lambda: eng.resume(),
             lambda: eng.silence(until="mode"), lambda: (eng.controls.set("jam.mode", "call"), eng.resume()),
             lambda: eng.controls.set("midi.channel", 1), lambda: (eng.controls.set("jam.mode", "solo"), eng.resume())]
    gap = (stop_at_s - time.perf_counter()) / (len(steps) + 1)
    for step in steps:
        time.sleep(gap)
        step()


@pytest.mark.parametrize("mode", ["call", "accompany", "solo", "session"])
def test_every_note_that_reached_a_port_is_in_the_recording(mode, bench, jack, jack_env, model_dir, tmp_path):
    from agent.config import load_config
    from agent.live.engine import Engine
    from agent.midi.ports import Ports
    from agent.model.predictor import Predictor
    from agent.ui.commands.play import start_recording

    os.environ.update(jack_env)
    cfg = load_config(overrides=[f"timing.bpm={bench.BPM}", f"jam.silence_ms={bench.SILENCE_MS}",
                                 f'jam.mode="{"solo" if mode == "session" else mode}"', "jam.response_bars=1.0",
                                 "sampling.seed=7", "record.flush_s=0.5", f'model.path="{model_dir}"'])
    pred = Predictor.from_config(cfg)
    xruns0 = jack.xruns()
    player = bench.Child("player", "BenchKeyboard", jack_env)
    eng = Engine(cfg, pred, ports=Ports("jack"), input_name="BenchKeyboard", virtual_name="Antiphon",
                 report=lambda line: None).start()
    agent_reader = bench.Child("reader", "Antiphon", jack_env)
    human_reader = bench.Child("reader", "BenchKeyboard", jack_env)
    try:
        path = start_recording(eng, tmp_path / "session.mid")
        start = time.perf_counter() + 0.3
        player.say(f"{start} {PHRASES}")
        run_s = PHRASES * bench.PHRASE_PERIOD_BEATS * 60 / bench.BPM
        if mode == "session":
            session(eng, bench, start + run_s)
        player.result()
        time.sleep(bench.PHRASE_PERIOD_BEATS * 60 / bench.BPM / 3)
    finally:
        eng.stop()  # writes the recording's final files
    sent = eng.scheduler.sent
    agent_reader.say(f"stop {sent}")
    human_reader.say("stop 0")
    agent_got, human_got = agent_reader.result(), human_reader.result()
    player.say("quit")
    for c in (player, agent_reader, human_reader):
        c.p.wait(timeout=10)
    xruns = jack.xruns() - xruns0
    counts = {part: (len(note_ons_at_reader(got)), len(note_ons_in_file(path, part)))
              for part, got in (("agent", agent_got), ("human", human_got))}
    print(f"{mode}: note-ons at the reader / in the file: {counts}, xruns {xruns}")
    assert counts["agent"][0] > 0 and counts["human"][0] > 0, counts
    for part, got in (("agent", agent_got), ("human", human_got)):
        assert sorted(note_ons_at_reader(got)) == sorted(note_ons_in_file(path, part)), (part, counts, xruns)
