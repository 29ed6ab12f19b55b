"""Melodies with their real phrase ends, from music21's corpus, for the phrase-end classifier.

A piece is a dict (cached as JSON under data/phrase_end/, gitignored; parsing is slow):
  name, source ("chorales" | "essen" | "oneills")
  beat_q    the metre's beat in quarter notes (music21's TimeSignature.beatDuration: 1 in x/4,
            1.5 in 6/8, 2 in 4/2)
  bpb       beats a bar (TimeSignature.beatCount)
  bar0_q    the offset of a bar line (quarters): the commonest phase of the full bars
  notes     [[onset_q, length_q, pitch]] of the melody (ties merged, chords -> their top note)
  ends      indices of the notes that end a phrase (see below), always including the last note

What a phrase end *means* differs by source, and the figures are reported per source:
- chorales: the soprano note that carries a fermata (music21 `expressions.Fermata`). In the
  chorales a fermata marks the end of a line of the hymn text: a real, written phrase end
  (often a quarter note on a strong beat, not a held one).
- essen: the Essen folk songs as ABC (music21's essenFolksong). music21 does not keep phrase
  marks, but the ABC conversion keeps EsAC's layout of one phrase per line (its MEL lines, the
  editors' phrase segmentation), so the label is the last note of each ABC line. The line's notes
  are counted in the text and must match music21's parse, else the tune is left out (counted).
- oneills: O'Neill's Music of Ireland (ABC). No phrase marks at all: the label is *bar structure*,
  the note sounding at the downbeat of every 4th full bar (the cadence bar of each 4-bar half of a
  dance strain; the last notes of that bar are usually the pickup into the next phrase). Repeats
  are not expanded and first/second endings count as bars, so this is a weak label, reported apart.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

SOURCES = ("chorales", "essen", "oneills")
MIN_NOTES = 12
PHRASE_BARS = 4  # oneills: a phrase every 4 full bars

_NOTE = re.compile(r"-|z\d*|[=_^]*[A-Ga-g][,']*\d*")


def corpus_dir() -> Path:
    import music21
    return Path(music21.__file__).parent / "corpus"


def abc_tunes(path: Path):
    """(title, text) of each tune in an ABC book: the file's header plus the tune."""
    text = path.read_text(encoding="latin-1")
    header = text.split("X:")[0] if "X:" in text else ""
    for chunk in re.split(r"(?m)^(?=X:)", text):
        if chunk.startswith("X:"):
            m = re.search(r"(?m)^T:(.*)$", chunk)
            yield (m.group(1).strip() if m else path.stem), header + chunk


def line_note_counts(text: str) -> list[int]:
    """New notes (rests and tied continuations not counted) on each body line of an Essen ABC tune."""
    counts, tie, in_body = [], False, False
    for line in text.splitlines():
        line = line.split("%")[0].strip()
        if re.match(r"^[A-Za-z]:", line):
            in_body = in_body or line.startswith("K:")
            continue
        if not in_body or not line:
            continue
        n = 0
        for tok in _NOTE.findall(line):
            if tok == "-":
                tie = True
            elif tok.startswith("z"):
                tie = False
            else:
                n += 0 if tie else 1
                tie = False
        counts.append(n)
    return counts


def melody(part) -> tuple[list[list[float]], list[int], float, int, float] | None:
    """A part's melody: (notes [[onset_q, length_q, pitch]], fermata note indices, beat_q, bpb, bar0_q),
    or None when the part changes metre or has no full bar."""
    from music21 import expressions, meter, note

    sigs = list(part.recurse().getElementsByClass(meter.TimeSignature))
    if not sigs or len({ts.ratioString for ts in sigs}) != 1:
        return None
    ts = sigs[0]
    bar_q = float(ts.barDuration.quarterLength)
    phases = Counter()
    for m in part.getElementsByClass("Measure"):
        if abs(float(m.duration.quarterLength) - bar_q) < 1e-6:
            phases[round(float(m.getOffsetBySite(part)) % bar_q, 4)] += 1
    if not phases:
        return None
    notes, fermatas = [], []
    for el in part.flatten().notes:
        if el.duration.isGrace:
            continue
        off, length = float(el.offset), float(el.duration.quarterLength)
        fermata = any(isinstance(e, expressions.Fermata) for e in el.expressions)
        tie = el.tie.type if el.tie is not None else None
        if tie in ("continue", "stop") and notes:
            notes[-1][1] = round(off + length - notes[-1][0], 4)
        else:
            pitch = max(p.midi for p in el.pitches) if not isinstance(el, note.Note) else el.pitch.midi
            notes.append([round(off, 4), round(length, 4), int(pitch)])
        if fermata and (not fermatas or fermatas[-1] != len(notes) - 1):
            fermatas.append(len(notes) - 1)
    return (notes, fermatas, float(ts.beatDuration.quarterLength), int(ts.beatCount),
            phases.most_common(1)[0][0])


def _piece(name, source, mel, ends) -> dict | None:
    notes, _, beat_q, bpb, bar0 = mel
    if len(notes) < MIN_NOTES:
        return None
    ends = sorted({e for e in ends if 0 <= e < len(notes)} | {len(notes) - 1})
    return {"name": name, "source": source, "beat_q": beat_q, "bpb": bpb, "bar0_q": bar0,
            "notes": notes, "ends": ends}


def parse_chorales(limit: int | None = None, skipped: Counter | None = None) -> list[dict]:
    """The soprano of every Bach chorale in music21's corpus; phrase ends are its fermata notes."""
    from music21 import corpus

    out = []
    paths = sorted(p for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".musicxml")))
    for path in paths[:limit]:
        try:
            score = corpus.parse(path)
            mel = melody(score.parts[0])
        except Exception as e:  # a file music21 cannot read is left out, counted
            skipped[f"chorales: {type(e).__name__}"] += 1
            continue
        if mel is None or not mel[1]:
            skipped["chorales: metre change or no fermata"] += 1
            continue
        p = _piece(Path(path).stem, "chorales", mel, mel[1])
        if p:
            out.append(p)
    return out


def parse_abc(source: str, folder: str, limit: int | None = None, skipped: Counter | None = None) -> list[dict]:
    """Essen (phrase = ABC line) or O'Neill's (phrase = 4 full bars) tunes with a metre."""
    from music21 import converter

    out = []
    for path in sorted((corpus_dir() / folder).glob("*.abc")):
        for title, text in abc_tunes(path):
            if len(out) == limit:
                return out
            metre = re.search(r"(?m)^M:\s*(\S+)", text)
            if not metre or not re.fullmatch(r"\d+/\d+|C\|?", metre.group(1)):
                skipped[f"{source}: no metre"] += 1
                continue
            try:
                score = converter.parse(text, format="abc")
                part = score.parts[0] if getattr(score, "parts", None) else score
                mel = melody(part)
            except Exception as e:
                skipped[f"{source}: {type(e).__name__}"] += 1
                continue
            if mel is None:
                skipped[f"{source}: metre change or no full bar"] += 1
                continue
            if source == "essen":
                counts = [c for c in line_note_counts(text) if c]
                if sum(counts) != len(mel[0]):
                    skipped["essen: line count differs from the parse"] += 1
                    continue
                ends = [sum(counts[:i + 1]) - 1 for i in range(len(counts))]
            else:
                ends = bar_phrase_ends(mel)
            p = _piece(f"{path.stem}/{title}", source, mel, ends)
            if p:
                out.append(p)
    return out


def bar_phrase_ends(mel) -> list[int]:
    """The note sounding at the downbeat of every PHRASE_BARS-th full bar (a dance strain's cadence
    bar; the notes after it in that bar are mostly the pickup to the next phrase)."""
    notes, _, beat_q, bpb, bar0 = mel
    bar_q = beat_q * bpb
    onsets = [n[0] for n in notes]
    start = bar0 + bar_q * math.ceil((onsets[0] - bar0) / bar_q - 1e-6)  # a pickup is not a bar
    ends, k = [], 1
    while True:
        line = start + (k * PHRASE_BARS - 1) * bar_q
        if line > onsets[-1] + 1e-6:
            break
        ends.append(max(i for i, t in enumerate(onsets) if t <= line + 1e-6))
        k += 1
    return ends


def cache_path(root: Path, source: str, limit: int | None) -> Path:
    return root / "data" / "phrase_end" / (f"{source}.json" if limit is None else f"{source}.{limit}.json")


def load(source: str, root: Path, limit: int | None = None, log=print) -> dict:
    """{"pieces": [...], "skipped": {reason: n}} for one source, parsed once and cached."""
    path = cache_path(root, source, limit)
    if path.exists():
        return json.loads(path.read_text())
    t0, skipped = time.perf_counter(), Counter()
    if source == "chorales":
        pieces = parse_chorales(limit, skipped)
    elif source == "essen":
        pieces = parse_abc("essen", "essenFolksong", limit, skipped)
    elif source == "oneills":
        pieces = parse_abc("oneills", "oneills1850", limit, skipped)
    else:
        raise ValueError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
    data = {"pieces": pieces, "skipped": dict(skipped)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    log(f"{source}: {len(pieces)} pieces parsed in {time.perf_counter() - t0:.0f} s "
        f"({sum(skipped.values())} left out), cached in {path}")
    return data


if __name__ == "__main__":  # python -m agent.training.phrase_data [source ...]: fill the cache
    for src in sys.argv[1:] or SOURCES:
        load(src, Path(__file__).resolve().parents[2])
