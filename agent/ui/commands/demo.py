"""antiphon demo --out DIR: the whole engine with no keyboard and no MIDI system, to files you can open.

The scripted player (agent/session/scripted.py) plays real phrases (two
bars each from a music21 corpus chorale's top line, or a few well-known
tunes) into the engine in real time; the engine (listener, predictor on the shipped model, scheduler, jam policy
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

from agent.config import set_value
from agent.errors import AntiphonError
from agent.music.tempomap import RealClock
from agent.session.scripted import TUNES, corpus_phrases, play_on_grid
from agent.ui.cli import common_options
from agent.ui.commands.play import configure, load_predictor

HELP = "no keyboard needed: a scripted player and the agent, recorded to MIDI, MusicXML, PNG and WAV"
DEFAULT_CORPUS = "bach/bwv66.6"
GAP_BEATS = 1  # at least this between an answer's end and the next phrase (which comes in on a bar line)


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


def run(args) -> int:
    from agent.live.engine import Engine
    from agent.midi.ports import Loopback, Ports
    from agent.session.recorder import Recorder
    from agent.session.storage import check_writable
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
        phrases = [TUNES[i % len(TUNES)] for i in range(args.phrases)]
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
    ends: list[float] = []
    try:
        play_for_answers(engine, phrases, 60.0 / cfg.timing.bpm, ends)
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
    return 0 if len(engine.jam.responses) >= len(phrases) else 1


def play_for_answers(engine, phrases, spb: float, ends: list[float]) -> None:
    """Play each phrase (at `spb` seconds a beat) and wait for its answer to end; the next phrase comes
    in on the player's next bar line at least GAP_BEATS later (a phrase begins a bar, so its answer, in
    the next phrase slot, begins one too). Appends each phrase's last note-off time (seconds) to
    `ends`; stops early if the engine stops or an answer does not come within a minute."""
    clock, jam = RealClock(), engine.jam
    res = jam.vocab.resolution
    origin = start = jam.stream.first_heard_alike(clock.now() + 0.3)  # the player's beat grid from here on
    for i, phrase in enumerate(phrases):
        ends.append(play_on_grid(engine.listener, phrase, start, spb, res, clock))
        deadline = clock.now() + 60.0  # wait for the answer to finish playing (or the engine to fail)
        while len(jam.responses) <= i and clock.now() < deadline and not engine.stopped.is_set():
            time.sleep(0.02)
        if engine.stopped.is_set() or len(jam.responses) <= i:
            return
        # the jam is idle (its stream stands still at the answer's end): the next phrase comes in
        # GAP_BEATS later, on the player's own bar line
        bpb = engine.tempo.beats_per_bar
        beats = (jam.stream.front_s() - origin) / spb + GAP_BEATS
        start = origin + math.ceil(beats / bpb - 1e-6) * bpb * spb
