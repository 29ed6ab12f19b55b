#!/usr/bin/env python
"""Listening comparison: continuations of the same primers from several models, and what they hold.

For every model, primer and seed this runs `antiphon generate` as a user would (MIDI + piano-roll
PNG), renders the MIDI with fluidsynth where it is installed, and measures the continuation
(the "generated" track) as a musician would look at it: notes, distinct pitches, notes sounding at
once (polyphony), share of notes in the primer's key, share of onsets on the eighth-note grid,
longest note in beats, and the audio's RMS. Prints a table per model and primer and writes JSON.

    python scripts/listen.py --model old=/tmp/old_default --model new=models/default \\
        --primer examples/primers/chorale.mid --primer examples/primers/folk.mid \\
        --seeds 1 2 3 --bars 8 --out examples/listening --json examples/listening/listen.json

Primers: `--make-primers DIR` writes the two used in BENCHMARKS.md from music21's corpus (no
download): the first four bars of a Bach chorale in all four voices, and the first four bars of a
Nottingham-dataset reel with its chord symbols played as a left hand (agent.training.corpora).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.training import metrics
from agent.ui.commands.demo_report import render_wav, soundfont
from agent.training.metrics import polyphony
from agent.errors import AntiphonError
from agent.music.tokens import Note, Vocab, encode

GRID = 0.5  # beats: an onset is "on the grid" within GRID_TOL of a multiple of an eighth
GRID_TOL = 0.02
PRIMER_CHORALE = "bach/bwv269"
PRIMER_FOLK = "nottingham-dataset"


def track_notes(path: Path, name: str) -> list[Note]:
    """Notes (beats) of the track called `name` in a MIDI file written by `antiphon generate`."""
    from agent.music.notes import read_midi

    return read_midi(path, track=name).notes


def describe(primer: list[Note], cont: list[Note], vocab: Vocab) -> dict:
    """What a listener can check in a continuation, measured against its primer."""
    if not cont:
        return {"notes": 0}
    start = min(n.start for n in cont)
    shifted = [Note(n.pitch, n.start - start, n.end - start, n.velocity) for n in cont]
    ids = encode(shifted, vocab)
    pcs = np.bincount([n.pitch % 12 for n in primer], minlength=12) if primer else np.zeros(12)
    key = metrics.estimate_key(pcs)[:2] if primer else None
    on_grid = [abs(n.start / GRID - round(n.start / GRID)) * GRID <= GRID_TOL for n in cont]
    return {"notes": len(cont), "distinct_pitches": len({n.pitch for n in cont}),
            "pitch_range": [min(n.pitch for n in cont), max(n.pitch for n in cont)],
            "polyphony": round(polyphony([ids], vocab), 2),
            "in_key": round(metrics.in_key_ratio(ids, vocab, key), 3),
            "key": metrics.key_name(*key) if key else None,
            "on_eighth_grid": round(float(np.mean(on_grid)), 3),
            "longest_note_beats": round(max(n.end - n.start for n in cont), 2),
            "beats": round(max(n.end for n in cont) - start, 2)}


def rms(wav: Path) -> float:
    import wave

    with wave.open(str(wav)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0


def make_primers(folder: Path, bars: int = 4) -> list[Path]:
    """The two primers, from music21's corpus: a chorale in four voices and a reel with chords."""
    from music21 import corpus

    from agent.training.corpora import chord_accompaniment
    from agent.music.notes import notes_from_music21, write_midi

    folder.mkdir(parents=True, exist_ok=True)
    cut = 4.0 * bars
    out = []
    chorale = corpus.parse(PRIMER_CHORALE)
    for name, notes in (("chorale", notes_from_music21(chorale)), ("folk", _folk_notes(chord_accompaniment))):
        first = min(n.start for n in notes)
        clip = [Note(n.pitch, n.start - first, min(n.end - first, cut), n.velocity) for n in notes
                if n.start - first < cut]
        out.append(write_midi(clip, folder / f"{name}.mid", bpm=100.0))
    return out


def _folk_notes(chord_accompaniment) -> list[Note]:
    """The first tune of music21's Nottingham-dataset file, its chord symbols as a left hand."""
    from music21 import converter, corpus, stream

    from agent.music.notes import notes_from_music21

    paths = sorted(p for p in corpus.getPaths() if PRIMER_FOLK in str(p))
    if not paths:
        raise AntiphonError(f"music21's corpus has no {PRIMER_FOLK}")
    parsed = converter.parse(str(paths[0]))
    tune = parsed.scores[0] if isinstance(parsed, stream.Opus) else parsed
    return sorted(notes_from_music21(tune) + chord_accompaniment(tune), key=lambda n: (n.start, n.pitch))


def model_specs(specs: list[str]) -> list[tuple[str, Path]]:
    """--model LABEL=DIR options as (label, folder); AntiphonError names a bad one."""
    models = []
    for spec in specs:
        label, _, path = spec.partition("=")
        if not path or not Path(path).is_dir():
            raise AntiphonError(f"--model {spec!r}: expected LABEL=DIR with an existing model folder")
        models.append((label, Path(path)))
    return models


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=DIR", help="a model to hear (repeatable)")
    ap.add_argument("--primer", action="append", default=[], metavar="FILE.mid", help="a primer (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--bars", type=float, default=8)
    ap.add_argument("--temp", type=float, default=None, help="temperature (default: config)")
    ap.add_argument("--out", default="examples/listening", help="folder for the MIDI, PNG and WAV files")
    ap.add_argument("--no-wav", action="store_true", help="do not render WAV files")
    ap.add_argument("--json", default=None)
    ap.add_argument("--make-primers", metavar="DIR", help="write the two corpus primers into DIR and exit")
    args = ap.parse_args(argv)
    try:
        if args.make_primers:
            for p in make_primers(Path(args.make_primers)):
                print(f"wrote {p}")
            return 0
        if not args.model or not args.primer:
            raise AntiphonError("give at least one --model LABEL=DIR and one --primer FILE.mid")
        models = model_specs(args.model)
        for p in args.primer:
            if not Path(p).is_file():
                raise AntiphonError(f"--primer {p}: no such file")
    except AntiphonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    vocab = Vocab()
    out = Path(args.out)
    sf2 = None if args.no_wav else soundfont()
    report = {"bars": args.bars, "seeds": args.seeds, "temp": args.temp, "runs": []}
    for label, mdir in models:
        for primer in map(Path, args.primer):
            for seed in args.seeds:
                stem = out / label / f"{primer.stem}-seed{seed}"
                stem.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "agent", "generate", "--model", str(mdir), "--prime", str(primer),
                       "--bars", str(args.bars), "--seed", str(seed), "--out", f"{stem}.mid",
                       "--pianoroll", f"{stem}.png"] + (["--temp", str(args.temp)] if args.temp else [])
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if r.returncode != 0:
                    print(f"error: {' '.join(cmd)}\n{r.stderr.strip()}", file=sys.stderr)
                    return 1
                mid = Path(f"{stem}.mid")
                row = {"model": label, "primer": primer.stem, "seed": seed, "midi": str(mid),
                       **describe(track_notes(mid, "primer"), track_notes(mid, "generated"), vocab)}
                if sf2 is not None:
                    wav = render_wav(mid, Path(f"{stem}.wav"), sf2)
                    row["wav_rms"] = round(rms(wav[0]), 4) if wav else None
                report["runs"].append(row)
    cols = ("model", "primer", "seed", "notes", "distinct_pitches", "polyphony", "in_key", "on_eighth_grid",
            "longest_note_beats", "wav_rms")
    print(" | ".join(cols))
    for row in report["runs"]:
        print(" | ".join(str(row.get(c, "")) for c in cols))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
