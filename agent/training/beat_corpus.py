"""Real tunes for the beat benchmark and tests: onsets in beats, bar lines and phrase ends, from music21's corpus.

    python scripts/beat_corpus.py [--per-metre N]     # parse once, write data/beat_tunes.json

Parsing ABC and MusicXML is slow (seconds a book), so the parsed tunes are
cached under data/ (gitignored); `load()` builds the cache on first use.

A tune is a dict:
  name, source, metre ("4/4", "2/2", "6/8", ...), numerator, denominator,
  beat_q   the felt beat in quarter notes (1 in x/4, 2 in 2/2, 1.5 in x/8 compound)
  bpb      felt beats a bar (4/4: 4, 2/2: 2, 6/8: 2, 9/8: 3, 3/4: 3, 2/4: 2, 12/8: 4)
  division 2 or 3 (compound x/8 metres: 3)
  bar_q    a bar's length, bar0_q the offset of one bar line (quarters)
  notes    [[offset_q, length_q, pitch, chord_size, grace]] (ties merged; grace: 1 for a grace note)
  phrase_ends  indices of notes that end a phrase as written (fermata, a rest after, the tune's end)
Offsets are quarter notes from the start of the tune as written (repeats not expanded).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from agent.config import ROOT
from agent.training.phrase_data import abc_tunes, corpus_dir

CACHE = ROOT / "data" / "beat_tunes.json"
TRAIN_CACHE = ROOT / "data" / "beat_tunes_train.json"
TRAIN_PER_METRE = 100

# metre -> (beat in quarters, beats a bar, division)
METRES = {"4/4": (1.0, 4, 2), "2/2": (2.0, 2, 2), "2/4": (1.0, 2, 2), "3/4": (1.0, 3, 2),
          "6/8": (1.5, 2, 3), "9/8": (1.5, 3, 3), "12/8": (1.5, 4, 3)}


def _abc_metre(text: str) -> str | None:
    m = re.search(r"(?m)^M:\s*([^\s%]+)", text)
    if not m:
        return None
    v = m.group(1)
    return {"C": "4/4", "C|": "2/2"}.get(v, v)


def tune_from_score(score, name: str, source: str, metre: str) -> dict | None:
    """The tune's notes, bar lines and phrase ends from a parsed music21 score (its top part)."""
    from music21 import expressions, meter, note

    part = score.parts[0] if getattr(score, "parts", None) else score
    sigs = {ts.ratioString for ts in part.recurse().getElementsByClass(meter.TimeSignature)}
    if len(sigs) != 1:
        return None
    beat_q, bpb, division = METRES[metre]
    flat = part.flatten()
    ts = flat.getElementsByClass(meter.TimeSignature).first()
    bar_q = float(ts.barDuration.quarterLength)
    if abs(bar_q - beat_q * bpb) > 1e-6:
        return None
    # a bar line: the commonest phase of the full bars' offsets
    phases = Counter()
    for m in part.getElementsByClass("Measure"):
        if abs(float(m.duration.quarterLength) - bar_q) < 1e-6:
            phases[round(float(m.getOffsetBySite(part)) % bar_q, 4)] += 1
    if not phases:
        return None
    bar0 = phases.most_common(1)[0][0]
    notes, ends = [], []
    items = list(flat.notesAndRests)
    for i, el in enumerate(items):
        if isinstance(el, note.Rest):
            if notes and (not ends or ends[-1] != len(notes) - 1):
                ends.append(len(notes) - 1)
            continue
        off, length = float(el.offset), float(el.duration.quarterLength)
        grace = el.duration.isGrace
        tie = el.tie.type if el.tie is not None else None
        if tie in ("continue", "stop") and notes and not grace:
            notes[-1][1] = round(off + length - notes[-1][0], 4)
            continue
        pitches = [p.midi for p in el.pitches]
        notes.append([round(off, 4), round(length, 4), max(pitches), len(pitches), int(bool(grace))])
        if any(isinstance(e, expressions.Fermata) for e in el.expressions):
            ends.append(len(notes) - 1)
    if len(notes) < 24:
        return None
    if not ends or ends[-1] != len(notes) - 1:
        ends.append(len(notes) - 1)
    return {"name": name, "source": source, "metre": metre, "numerator": int(metre.split("/")[0]),
            "denominator": int(metre.split("/")[1]), "beat_q": beat_q, "bpb": bpb, "division": division,
            "bar_q": bar_q, "bar0_q": bar0, "notes": notes, "phrase_ends": sorted(set(ends))}


def _from_abc_files(files, source, want: dict, out: list, limit_per_file: int | None = None) -> None:
    from music21 import converter

    for path in files:
        taken = 0
        for title, text in abc_tunes(path):
            metre = _abc_metre(text)
            if metre not in want or want[metre] <= 0:
                continue
            if limit_per_file is not None and taken >= limit_per_file:
                break
            try:
                score = converter.parse(text, format="abc")
                tune = tune_from_score(score, title, f"{source}/{path.name}", metre)
            except Exception:  # a tune music21 cannot read is left out, not the collection
                continue
            if tune is not None and not any(t["notes"] == tune["notes"] for t in out):  # a tune in two files
                out.append(tune)
                want[metre] -= 1
                taken += 1
        if all(v <= 0 for v in want.values()):
            return


def build(per_metre: int = 40) -> list[dict]:
    from music21 import corpus

    base = corpus_dir()
    tunes: list[dict] = []
    # Bach chorale melodies (the soprano), 4/4
    n = 0
    for path in sorted(corpus.getComposer("bach")):
        if n >= per_metre:
            break
        if not str(path).endswith((".mxl", ".xml", ".musicxml")):
            continue
        try:
            s = corpus.parse(path)
            if not s.parts:
                continue
            tune = tune_from_score(s.parts[0], Path(path).stem, "bach", "4/4")
        except Exception:
            continue
        if tune is not None:
            tune["kind"] = "chorale"
            tunes.append(tune)
            n += 1
    print(f"chorales: {n}", file=sys.stderr)
    # Ryan's Mammoth: one tune a file; reels and hornpipes (4/4, 2/2), jigs, slip jigs, 2/4
    ryans = sorted((base / "ryansMammoth").glob("*.abc"))
    kinds = {"Reel": "reel", "Hornpipe": "hornpipe", "Jig": "jig"}
    want = {"4/4": per_metre // 2, "2/2": per_metre // 2, "6/8": per_metre, "9/8": per_metre,
            "2/4": per_metre, "12/8": per_metre // 4}
    _from_abc_files(ryans, "ryansMammoth", want, tunes)
    # Aird's Airs: 3/4 airs, 9/8 and 12/8, more 2/4
    want = {"3/4": per_metre // 2, "9/8": per_metre - sum(t["metre"] == "9/8" for t in tunes),
            "12/8": per_metre // 4 - sum(t["metre"] == "12/8" for t in tunes)}
    _from_abc_files(sorted((base / "airdsAirs").glob("*.abc")), "airdsAirs", want, tunes)
    # Essen: 3/4 folk songs and waltz-like tunes
    want = {"3/4": per_metre - sum(t["metre"] == "3/4" for t in tunes)}
    _from_abc_files(sorted((base / "essenFolksong").glob("*.abc")), "essen", want, tunes, limit_per_file=4)
    for t in tunes:
        t.setdefault("kind", next((v for k, v in kinds.items() if k.lower() in t["name"].lower()), "tune"))
    print(Counter(t["metre"] for t in tunes), file=sys.stderr)
    return tunes


def load(path: Path = CACHE, per_metre: int = 40) -> list[dict]:
    """The cached tunes, parsed (slowly) and cached on first use."""
    if path.exists():
        return json.loads(path.read_text())
    tunes = build(per_metre)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tunes))
    return tunes


def tune_key(t: dict) -> tuple:
    """What makes two tunes the same tune (a tune may sit in two books under two titles)."""
    return (t["metre"], tuple(tuple(n[:3]) for n in t["notes"][:40]))


def load_train(path: Path = TRAIN_CACHE, per_metre: int = TRAIN_PER_METRE) -> list[dict]:
    """Training tunes for the beat scorer (scripts/train_beat.py): the same books read further, with every
    tune of the benchmark's set (`load()`) left out, so no tune is in both. Cached like `load()`."""
    if path.exists():
        return json.loads(path.read_text())
    test = {tune_key(t) for t in load()}
    tunes = [t for t in build(per_metre) if tune_key(t) not in test]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tunes))
    return tunes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-metre", type=int, default=40)
    ap.add_argument("--out", type=Path, default=CACHE)
    ap.add_argument("--train", action="store_true", help="the training set (bench tunes left out)")
    a = ap.parse_args(argv)
    if a.train:
        tunes = load_train(per_metre=a.per_metre if a.per_metre != 40 else TRAIN_PER_METRE)
        print(f"{len(tunes)} training tunes -> {TRAIN_CACHE}")
        return 0
    tunes = build(a.per_metre)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(tunes))
    print(f"{len(tunes)} tunes -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
