"""antiphon demo --out DIR: the whole engine with no keyboard and no MIDI system, to files you can open.

A scripted player plays real phrases (two bars each from a music21 corpus
chorale's top line, or a few well-known tunes) into the engine in real time;
the engine (listener, predictor on the shipped model, scheduler, jam policy
in call mode) answers on an in-process loopback port. The session is
recorded: DIR/session.mid (tracks human and agent), session.musicxml,
session.png and, where fluidsynth and a General MIDI soundfont are
installed, session.wav. It ends with a summary: notes in and out per
phrase, when each answer began, the key heard, latency figures, the files.

Same seed, same answer: the player's messages are stamped with the times
they were meant for, on the model's tick grid, so a busy machine's timing
jitter cannot change what the model hears, and so what it plays.
`--virtual NAME` also sends the agent's notes to a real virtual port.
"""
from __future__ import annotations

import argparse
import math
import shutil
import time

import mido

from agent.ui.cli import common_options
from agent.music.tempomap import RealClock
from agent.config import set_value
from agent.errors import AntiphonError
from agent.music.tokens import Note
from agent.ui.commands.play import configure, load_predictor

HELP = "no keyboard needed: a scripted player and the agent, recorded to MIDI, MusicXML, PNG and WAV"
DEFAULT_CORPUS = "bach/bwv66.6"
GAP_BEATS = 1  # between an answer's end and the next phrase

# Short phrases in beats: the openings of well-known tunes (public domain).
PHRASES: list[list[tuple[int, float, float]]] = [
    # Ode to Joy: E E F G | G F E D
    [(64, 0, 1), (64, 1, 1), (65, 2, 1), (67, 3, 1), (67, 4, 1), (65, 5, 1), (64, 6, 1), (62, 7, 1)],
    # Frere Jacques: C D E C | C D E C
    [(60, 0, 1), (62, 1, 1), (64, 2, 1), (60, 3, 1), (60, 4, 1), (62, 5, 1), (64, 6, 1), (60, 7, 1)],
    # Greensleeves (A minor): A | C D E. F E | D B
    [(57, 0, 1), (60, 1, 2), (62, 3, 1), (64, 4, 1.5), (65, 5.5, 0.5), (64, 6, 1), (62, 7, 2), (59, 9, 1)],
]


def add_arguments(p) -> None:
    p.add_argument("--out", metavar="DIR", default="demo", help="folder for session.mid/.musicxml/.png/.wav (default demo)")
    p.add_argument("--seed", type=int, help="random seed: the same seed plays the same answers (default: config "
                                            "sampling.seed, else 1)")
    p.add_argument("--phrases", type=int, default=3, help="phrases to play and have answered (default 3)")
    p.add_argument("--wav", action=argparse.BooleanOptionalAction, default=None,
                   help="render session.wav with fluidsynth (default: on when fluidsynth and a GM soundfont are there)")
    p.add_argument("--corpus", metavar="NAME", default=DEFAULT_CORPUS,
                   help=f"music21 corpus piece whose top line is played, two bars a phrase (default {DEFAULT_CORPUS}); "
                        "'tunes' for a few well-known tunes")
    p.add_argument("--virtual", metavar="NAME", help="also send the agent's notes to a real virtual port NAME")
    p.add_argument("--model", metavar="DIR", help="model folder (default: [model] path)")
    common_options(p)


def corpus_phrases(name: str, beats_per_bar: int, n: int) -> list[list[tuple[int, float, float]]]:
    import music21

    from agent.music.notes import notes_from_music21

    try:
        score = music21.corpus.parse(name)
    except Exception as exc:  # music21 raises its own types
        raise AntiphonError(f"corpus piece {name!r}: {exc}") from exc
    top = score.parts[0] if getattr(score, "parts", None) else score
    notes: list[Note] = notes_from_music21(top)
    span = 2 * beats_per_bar
    out = []
    for i in range(n):
        lo = i * span
        ph = [(x.pitch, x.start - lo, min(x.end, lo + span) - x.start) for x in notes if lo <= x.start < lo + span]
        if ph:
            out.append(ph)
    if not out:
        raise AntiphonError(f"corpus piece {name!r} has no notes to play")
    return out


def play_phrase(send, phrase, start_s: float, spb: float, clock) -> float:
    """Send one phrase on absolute deadlines; returns the time of its last note-off."""
    events = []
    for pitch, b, d in phrase:
        events.append((start_s + b * spb, 1, pitch))
        events.append((start_s + (b + d * 0.95) * spb, 0, pitch))  # a little detached, as people play
    events.sort()
    for t, on, pitch in events:
        clock.sleep_until(t)
        send(mido.Message("note_on" if on else "note_off", note=pitch, velocity=80 if on else 0))
    return events[-1][0]


def grid_phrase(phrase, res: int) -> list[tuple[int, int, int]]:
    """(pitch, start_beats, length_beats) -> (tick, on, pitch) events on the model's grid, offsets
    relative to the phrase's first tick; each note is released a tick early (detached, as people play)."""
    evs = []
    for pitch, b, d in phrase:
        on = round(b * res)
        evs.append((on, 1, pitch))
        evs.append((max(on + 1, round((b + d) * res) - 1), 0, pitch))
    return sorted(evs)


def play_on_grid(listener, phrase, start_s: float, spb: float, resolution: int, clock) -> float:
    """Send a phrase to the listener in real time at the demo's own steady tempo (`spb` seconds a
    beat, whatever the agent makes of it), each message stamped with its exact grid time, as a
    perfectly steady player would be. Returns the time of the last note-off."""
    t = start_s
    for tick, on, pitch in grid_phrase(phrase, resolution):
        t = start_s + tick * spb / resolution
        clock.sleep_until(t)
        listener.receive(mido.Message("note_on" if on else "note_off", note=pitch, velocity=80 if on else 0), t)
    return t


def run(args) -> int:
    from agent.live.engine import Engine
    from agent.midi.ports import Loopback, Ports
    from agent.session.recorder import Recorder, check_writable
    from agent.ui.commands.demo_report import render_wav, soundfont, summary

    if args.phrases < 1:
        raise AntiphonError(f"--phrases {args.phrases}: must be at least 1")
    cfg = configure(args)
    if cfg.jam.mode != "call":
        raise AntiphonError("the demo plays call-and-response: leave jam.mode as call")
    seed = args.seed if args.seed is not None else (cfg.sampling.seed if cfg.sampling.seed >= 0 else 1)
    cfg = set_value(cfg, "sampling", "seed", seed, "--seed")
    out = check_writable(args.out)
    sf2 = soundfont()
    wav = args.wav if args.wav is not None else bool(sf2 and shutil.which("fluidsynth"))
    predictor = load_predictor(cfg)
    if args.corpus == "tunes":
        phrases = [PHRASES[i % len(PHRASES)] for i in range(args.phrases)]
    else:
        phrases = corpus_phrases(args.corpus, cfg.timing.beats_per_bar, args.phrases)
    extra = [Ports(cfg.midi.backend).open_output(virtual_name=args.virtual)] if args.virtual else []
    report = lambda line: print(line, flush=True)  # noqa: E731
    recorder = Recorder(cfg.timing.bpm, beats_per_bar=cfg.timing.beats_per_bar,
                        resolution=predictor.vocab.resolution, flush_s=cfg.record.flush_s, report=report)
    engine = Engine(cfg, predictor, ports=Ports("loopback", loop=Loopback()), input_name="keyboard",
                    virtual_name="Antiphon", extra_outputs=extra, report=report, recorder=recorder)
    print(f"demo: {len(phrases)} phrases from {args.corpus} at {cfg.timing.bpm:g} bpm, seed {seed}; the agent "
          f"answers when each phrase ends (jam.turn = {cfg.jam.turn!r}; model {cfg.model_dir()})", flush=True)
    engine.start()
    recorder.start(out / "session.mid")
    clock, jam = RealClock(), engine.jam
    ends: list[float] = []
    try:
        # the first phrase starts more than MAX_GAP_BEATS after the stream's start, so the
        # model hears the same capped rest however long the engine took to start
        from agent.live.jam.stream import MAX_GAP_BEATS

        res, spb = jam.vocab.resolution, 60.0 / cfg.timing.bpm
        first = max(round(MAX_GAP_BEATS * res) + 1, jam.tick_at(clock.now() + 0.3))
        origin = start = jam.time_of(first)  # the player's beat grid, at its own tempo from here on
        recorder.t0 = start - spb  # the files start a beat before the first note
        for i, phrase in enumerate(phrases):
            ends.append(play_on_grid(engine.listener, phrase, start, spb, res, clock))
            deadline = clock.now() + 60.0  # wait for the answer to finish playing (or the engine to fail)
            while len(jam.responses) <= i and clock.now() < deadline and not engine.stopped.is_set():
                time.sleep(0.02)
            if engine.stopped.is_set() or len(jam.responses) <= i:
                break
            # the jam is idle (its stream stands still at the answer's end): the next phrase comes in
            # GAP_BEATS later, on the player's own beat
            beats = (jam.time_of(jam.enc.tick) - origin) / spb + GAP_BEATS
            start = origin + math.ceil(beats - 1e-6) * spb
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        closed = engine.stop()  # writes session.mid, .musicxml, .png
    if engine.error is not None:
        raise AntiphonError(f"the engine stopped: {type(engine.error).__name__}: {engine.error}")
    files = list(engine.recorded)
    if wav:
        files += render_wav(out / "session.mid", out / "session.wav", sf2)
    elif args.wav is None:
        print("note: no session.wav: install fluidsynth and a General MIDI soundfont (apt install fluidsynth "
              "fluid-soundfont-gm) to hear it")
    print(summary(engine, recorder, ends, closed, files))
    return 0 if len(jam.responses) >= len(phrases) else 1
