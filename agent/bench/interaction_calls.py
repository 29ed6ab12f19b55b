"""The interaction benchmark's calls: phrases of real tunes, played with room for an answer after each.

Tunes come from agent/training/beat_corpus.py (music21's corpus, cached under data/)
and are rendered by agent/training/beat_data.py's `render` (bench_beat's renderer:
plain, or rubato with a tempo drift of +-10 % within each phrase, phrase-final
lengthening up to 50 %, onset jitter and varied velocities; swung off-beat eighths).
Here they become calls: a tune's phrases (written ends: fermatas, rests; folk
tunes every fourth bar line) one after another, each starting on a bar line of
its own slot, followed by bars of silence for the answer. Every note is held 92 %
of its written length; the call's last note is held to its written end (not
lengthened: the written end is the release), and a breath inside a chorale
phrase is taken out of a note's length (its longest middle note loses half a
beat), not added to the phrase.

A call's facts (seconds on the perf_counter scale; beats are the tune's felt
beat, the dotted quarter in 6/8 and 9/8):
  start_s, end_s    its first note-on and the written end of its last note
  next_s            where the next call's bar line is: the end's bar line + a bar (the answer's
                    slot) + the answer + a bar (at least 2 beats) of room
  ref_s, period_s   the player's beat as he last played it: a line through the
                    times of the call's last four written beats; beat 0 at ref_s is a bar line
  bpb, division, swing, sub   the tune's felt beats a bar, division (3: compound), swing ratio
                    and the player's subdivision of a beat (fractions of a beat)
  felt_bpm          60 / the median written beat of the call
"""
from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

from agent.training import beat_corpus, beat_data

HOLD = 0.92  # a note is held this much of its written length (the call's last note: all of it)
BREATH_BEATS = 0.5
ANSWER_BARS = 1.0  # jam.response_bars in the benchmark: each answer one bar (keeps the run short)
MIN_NOTES = 5
COMMON = {"beat_q": 1.0, "bpb": 4, "division": 2, "metre": "4/4"}  # a 2/2 reel or hornpipe played in 4/4

# group -> (which tunes, swung): the metres and feels the benchmark plays
GROUPS = {
    "chorale 4/4": (lambda t: t["kind"] == "chorale", False),
    "reel 4/4": (lambda t: t["kind"] in ("reel", "hornpipe") and t["metre"] in ("4/4", "2/2"), False),
    "reel 4/4 swung": (lambda t: t["kind"] in ("reel", "hornpipe") and t["metre"] in ("4/4", "2/2"), True),
    "polka 2/4": (lambda t: t["metre"] == "2/4", False),
    "air 3/4": (lambda t: t["metre"] == "3/4", False),
    "jig 6/8": (lambda t: t["metre"] == "6/8", False),
    "slip jig 9/8": (lambda t: t["metre"] == "9/8", False),
}
RANGE_OF = {"chorale 4/4": "chorale", "reel 4/4": "4/4", "reel 4/4 swung": "4/4", "polka 2/4": "2/4",
            "air 3/4": "3/4", "jig 6/8": "6/8", "slip jig 9/8": "9/8"}  # beat_data.RANGES: felt bpm, 56-180


def common_time(tune: dict) -> dict:
    """A 2/2 tune as a player feels it in 4/4 (the same notes and bar lines, the quarter the beat)."""
    return {**tune, **COMMON} if tune["metre"] == "2/2" else tune


def plan(tunes: list[dict], per_group: int, seed: int, groups=None, n_calls: int = 3) -> list[dict]:
    """Runs [{group, tune, felt_bpm, rubato, swing, seed}]: per group, `per_group` tunes, alternately
    plain and rubato, each at a felt tempo drawn from its kind's range (and a swing of 1.5-2.5); only
    tunes with n_calls phrases."""
    rng = random.Random(seed)
    runs = []
    for name, (pick, swung) in GROUPS.items():
        chosen = [common_time(t) for t in tunes if pick(t) and len(phrases(t, n_calls)) == n_calls]
        rng.shuffle(chosen)
        lo, hi = beat_data.RANGES[RANGE_OF[name]]
        for i, tune in enumerate(chosen[:per_group]):
            run = {"group": name, "tune": tune, "felt_bpm": round(rng.uniform(lo, hi), 1), "rubato": i % 2 == 1,
                   "swing": round(rng.uniform(1.5, 2.5), 2) if swung else 1.0, "seed": rng.randrange(1 << 30)}
            if not groups or name in groups:
                runs.append(run)
    return runs


def abc_tune(book: str, title: str, metre: str) -> dict:
    """One tune of an ABC book of music21's corpus (e.g. "ryansMammoth/BullyForYouJig.abc"), parsed
    as beat_corpus parses its tunes: quicker than `beat_corpus.load()` for a test that needs two."""
    from music21 import converter

    from agent.training.phrase_data import abc_tunes, corpus_dir

    path = Path(corpus_dir()) / book
    for name, text in abc_tunes(path):
        if name == title:
            tune = beat_corpus.tune_from_score(converter.parse(text, format="abc"), name, book, metre)
            if tune is None:
                raise ValueError(f"{book}: {title!r} is not a {metre} tune beat_corpus can read")
            kind = next((k for k in ("reel", "hornpipe", "jig") if k in name.lower()), "tune")
            return common_time({**tune, "kind": kind})
    raise ValueError(f"{book} has no tune titled {title!r}")


def phrases(tune: dict, n: int) -> list[list[int]]:
    """The first n phrases of the tune as lists of note indices: split at its written phrase ends
    (beat_data.phrase_end_offsets); a piece shorter than MIN_NOTES or a bar goes with the next."""
    notes = tune["notes"]
    ends = beat_data.phrase_end_offsets(tune) + [math.inf]
    out, cur, k = [], [], 0
    for i, (off, *_rest) in enumerate(notes):
        while off >= ends[k] - 1e-6:
            if cur and len(cur) >= MIN_NOTES and _span(notes, cur) >= tune["bar_q"] - 1e-6:
                out.append(cur)
                cur = []
            k += 1
        cur.append(i)
    if cur and len(cur) >= MIN_NOTES:
        out.append(cur)
    return out[:n]


def _span(notes, idx) -> float:
    return max(notes[i][0] + notes[i][1] for i in idx) - notes[idx[0]][0]


def swung(q: float, swing: float, bar0_q: float) -> float:
    """A written offset (quarters) where a swung player puts it: each beat's first eighth lengthened to
    swing/(1+swing) of the beat, the second shortened (render's rule for off-beat eighths, between)."""
    if swing <= 1.0:
        return q
    beat = math.floor(q - bar0_q)
    x = q - bar0_q - beat
    s = swing / (1.0 + swing)
    y = x * 2 * s if x <= 0.5 else s + (x - 0.5) * 2 * (1 - s)
    return bar0_q + beat + y


def breath_note(tune: dict, idx: list[int]) -> int | None:
    """The note a player breathes in (its length cut by half a beat): the longest of the phrase's middle
    notes of at least a beat, nearest the middle; None where there is none (a reel's running eighths)."""
    notes, beat_q = tune["notes"], tune["beat_q"]
    middle = [i for i in idx[2:-2] if notes[i][1] >= beat_q and not notes[i][4]]
    if not middle:
        return None
    mid = idx[len(idx) // 2]
    return max(middle, key=lambda i: (notes[i][1], -abs(i - mid)))


def render_calls(run: dict, n_calls: int, start_s: float, answer_bars: float = ANSWER_BARS) -> tuple[list, list]:
    """(events [(t_s, [status, pitch, velocity])], facts per call; see the module docstring) for the tune
    of `run` (from `plan`): its first n_calls phrases, the first starting on the bar line at start_s."""
    tune, swing = run["tune"], run["swing"]
    events_q, time_of = beat_data.render(tune, run["felt_bpm"], run["rubato"], swing, random.Random(run["seed"]),
                                         with_q=True)
    q_s = 60.0 / (run["felt_bpm"] * tune["beat_q"])
    notes, bar_q, bar0, beat_q = tune["notes"], tune["bar_q"], tune["bar0_q"], tune["beat_q"]

    def T(q: float) -> float:  # seconds of a written offset as played (the curve, the swing), from the tune's start
        q = swung(q, swing, bar0)
        return time_of(q) if q >= 0 else q * q_s

    events, facts, slot = [], [], start_s
    for idx in phrases(tune, n_calls):
        qbar = bar0 + math.floor((notes[idx[0]][0] - bar0) / bar_q + 1e-9) * bar_q
        shift = slot - T(qbar)
        breath, last = breath_note(tune, idx), idx[-1]
        want = {(round(notes[i][0], 4), notes[i][2] - 4 * c): i for i in idx for c in range(int(notes[i][3]))}
        for t, pitch, vel, q in events_q:
            i = want.get((round(q, 4), pitch))
            if i is None:
                continue
            off, length, _, _, grace = notes[i]
            held = length if i == last else (length - BREATH_BEATS * beat_q if i == breath else length * HOLD)
            t_off = t + 0.04 if grace else max(t + 0.03, T(off + held))
            events += [(shift + t, [0x90, pitch, vel]), (shift + t_off, [0x80, pitch, 0])]
        q_end = max(notes[i][0] + notes[i][1] for i in idx)
        # room: the bar line after the end, a bar for the answer's slot (a call that ends on a bar line
        # is known to have ended only after it), the answer, a bar (at least 2 beats) before the next call
        bars = math.ceil((q_end - qbar) / bar_q - 1e-6) + 1 + answer_bars + max(1, math.ceil(2 / tune["bpb"]))
        facts.append(_facts(tune, swing, T, shift, idx, qbar, q_end, slot + bars * bar_q * q_s))
        slot = facts[-1]["next_s"]
    events.sort(key=lambda e: (e[0], e[1][0] != 0x80))  # a release before a note-on at the same time
    return events, facts


def _facts(tune, swing, T, shift, idx, qbar, q_end, next_s) -> dict:
    notes, beat_q, bpb = tune["notes"], tune["beat_q"], tune["bpb"]
    j_first = math.ceil((notes[idx[0]][0] - qbar) / beat_q - 1e-6)
    j_last = math.floor((q_end - qbar) / beat_q + 1e-6)
    js = list(range(j_first, j_last + 1))
    times = [shift + T(qbar + j * beat_q) for j in js]
    fit = js[-4:], times[-4:]
    n = len(fit[0])
    mj, mt = sum(fit[0]) / n, sum(fit[1]) / n
    sjj = sum((j - mj) ** 2 for j in fit[0])
    period = sum((j - mj) * (t - mt) for j, t in zip(*fit)) / sjj if sjj else 60.0 / 100
    division = tune["division"]
    sub = [0.0, 1 / 3, 2 / 3] if division == 3 else ([0.0, swing / (1 + swing)] if swing > 1 else [0.0, 0.5])
    on = min(t for t, _ in [(shift + T(notes[i][0]), i) for i in idx])
    return {"start_s": on, "end_s": shift + T(q_end), "next_s": next_s, "ref_s": mt - mj * period,
            "period_s": period, "bpb": bpb, "division": division, "swing": swing, "sub": sub,
            "felt_bpm": 60.0 / statistics.median(b - a for a, b in zip(times, times[1:])) if len(times) > 1
            else 60.0 / period, "notes": len(idx)}
