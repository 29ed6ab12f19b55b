"""antiphon demo: the whole engine with no keyboard and no MIDI system.

A scripted player plays real phrases into an in-process loopback port, in
real time; the engine (listener, predictor on the model, scheduler, jam
policy in call mode) answers on another loopback port. One line per phrase
heard and answered; the session is written to a two-track MIDI file
(human, agent). `--virtual NAME` also sends the agent's notes to a real
virtual port (e.g. under JACK) so a synth can play them.
"""
from __future__ import annotations

import time

import mido

from ..cli import common_options
from ..clock import RealClock
from ..errors import AntiphonError
from ..events import Note
from .play import configure, load_predictor

HELP = "no keyboard needed: a scripted player and the agent on loopback ports, to a MIDI file"

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
    p.add_argument("--phrases", type=int, default=3, help="phrases to play and have answered (default 3)")
    p.add_argument("--out", metavar="FILE.mid", default="demo.mid", help="session MIDI file (default demo.mid)")
    p.add_argument("--virtual", metavar="NAME", help="also send the agent's notes to a real virtual port NAME")
    p.add_argument("--corpus", metavar="NAME", help="take the phrases from a music21 corpus piece's top line, "
                                                    "two bars each, e.g. bach/bwv66.6")
    p.add_argument("--model", metavar="DIR", help="model folder (default: [model] path)")
    common_options(p)


def corpus_phrases(name: str, beats_per_bar: int, n: int) -> list[list[tuple[int, float, float]]]:
    import music21

    from ..sources import notes_from_music21

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


def run(args) -> int:
    from ..engine import Engine, SessionRecorder
    from ..ports import Loopback, Ports

    cfg = configure(args)
    if cfg.jam.mode != "call":
        raise AntiphonError("the demo plays call-and-response: leave jam.mode as call")
    predictor = load_predictor(cfg)
    phrases = (corpus_phrases(args.corpus, cfg.timing.beats_per_bar, args.phrases) if args.corpus
               else [PHRASES[i % len(PHRASES)] for i in range(args.phrases)])
    loop = Loopback()
    ports = Ports("loopback", loop=loop)
    extra = []
    if args.virtual:
        extra.append(Ports(cfg.midi.backend).open_output(virtual_name=args.virtual))
    engine = Engine(cfg, predictor, ports=ports, input_name="keyboard", virtual_name="Antiphon",
                    extra_outputs=extra, report=lambda line: print(line, flush=True))
    engine.start()
    rec = SessionRecorder(cfg.timing.bpm)
    engine.listener.player_hooks.append(rec.on_human)
    engine.scheduler.hooks.append(rec.on_agent)
    keyboard = ports.open_output("keyboard")
    clock = RealClock()
    spb = 60.0 / cfg.timing.bpm
    print(f"demo: {len(phrases)} phrases at {cfg.timing.bpm:g} bpm; the agent answers when each ends "
          f"(jam.turn = {cfg.jam.turn!r}; model {cfg.model_dir()})", flush=True)
    try:
        t = clock.now() + 0.2
        for i, phrase in enumerate(phrases):
            play_phrase(keyboard.send, phrase, t, spb, clock)
            # wait for the answer to finish playing (or the engine to fail)
            deadline = clock.now() + 30.0
            while len(engine.jam.responses) <= i and clock.now() < deadline and not engine.stopped.is_set():
                time.sleep(0.02)
            if engine.stopped.is_set():
                break
            t = clock.now() + 0.5
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        closed = engine.stop()
        keyboard.close()
    if engine.error is not None:
        raise AntiphonError(f"the engine stopped: {type(engine.error).__name__}: {engine.error}")
    path = rec.write(args.out)
    st = engine.stats()
    n_h = sum(1 for _, m in rec.human if m.type == "note_on" and m.velocity > 0)
    n_a = sum(1 for _, m in rec.agent if m.type == "note_on" and m.velocity > 0)
    print(f"wrote {path}: human {n_h} notes, agent {n_a} notes; {st['answers']} answers; "
          f"{len(closed)} notes closed at stop, {st['open_notes']} left open; "
          f"{st['dropped_late']} late note-ons dropped")
    return 0 if st["answers"] >= len(phrases) else 1

