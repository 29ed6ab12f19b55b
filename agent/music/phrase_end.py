"""Is this note the last of the player's phrase? Causal features and a small numpy classifier.

The live agent hears a melody one note at a time. At each note it knows the
note's onset, the onsets, ends and pitches of the notes before it, and (at the
note's note-off) its duration; nothing after. `features` turns that into one
vector; a model (logistic regression or a one-hidden-layer MLP, trained offline
by agent/training/phrase_end.py) turns the vector into p(this note ends its
phrase). Two stages, two heads in one weight file:

- "note_on":  decided at the note's onset (its duration is not known yet);
- "note_off": decided at its release (duration and the end's metrical place known).

A positive answer means the answer may start at the next phrase slot, without
waiting for the silence rule's 1.5 beats.

Times are in beats of the player's grid: `Grid` turns seconds (or any unit) into
beats with downbeat 0, so `bar position = beat % beats_per_bar`. A note is
(onset_beats, end_beats or None while it sounds, pitch). The phrase so far starts
at the note index `start` (the player's first note after the agent's last turn,
or after the last phrase end decided).

Live use (agent/live/jam/turn.py's PhraseTurn does this):

    tracker = PhraseTracker(load_model("models/default/phrase_end.json"))
    grid = Grid(period=seconds_per_beat, downbeat=a_downbeat_s, beats_per_bar=bpb)  # from the beat tracker
    p = tracker.note_on(t_s, pitch, grid)         # each player note-on: may prepare an answer early
    p = tracker.note_off(t_s, pitch, grid)        # each player note-off; None unless it is the melody's note
    if p is not None and tracker.is_end("note_off", p) and no key is held:
        answer at the next phrase slot (the bar line at or after t_s); the silence rule stays the fallback
    tracker.new_phrase(skip=answer_s)             # the next call's first note, after the agent's answer

numpy only; imports nothing of ours but errors and music.keys (the live side
imports this without torch).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from agent.errors import AntiphonError
from agent.music.keys import SCALES, estimate_key

FORMAT = "antiphon-phrase-end/1"
STAGES = ("note_on", "note_off")
ON_BEAT = 0.1  # beats: an onset or end this close to a beat is on it
RECENT = 8  # notes: the recent tempo of the melody is the median IOI over this many


class PhraseModelError(AntiphonError, ValueError):
    """A phrase-end weight file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Grid:
    """The player's beat: `period` (seconds or any unit a beat), the time of a `downbeat`, beats a bar."""

    period: float
    downbeat: float
    beats_per_bar: int

    def beats(self, t: float) -> float:
        return (t - self.downbeat) / self.period


def _log2(x: float, lo: float = -4.0, hi: float = 4.0) -> float:
    return min(hi, max(lo, math.log2(x))) if x > 0 else lo


def _dist_to_grid(b: float, every: float = 1.0) -> float:
    r = (b / every) % 1.0
    return min(r, 1.0 - r) * every


ONSET_NAMES = (
    ["beat_dist", "on_beat", "downbeat", "last_beat_of_bar", "mid_bar", "bar_sin", "bar_cos",
     "ioi_log2", "ioi_ratio_log2", "gap_before_log", "recent_ioi_log2",
     "interval", "abs_interval", "step", "leap", "direction_change", "above_phrase_mean", "above_phrase_low",
     "no_key", "minor", "in_scale"]
    + [f"degree_{d}" for d in range(12)]
    + ["phrase_notes_log", "phrase_beats_log"] + [f"phrase_bar_{k}" for k in range(4)] + ["first_note"]
    + ["has_last_phrase", "vs_last_phrase_log2"]
)
RELEASE_NAMES = ["dur_log2", "dur_over_recent_log2", "dur_over_ioi_log2", "end_on_beat", "end_on_downbeat",
                 "end_bar_sin", "end_bar_cos", "held_1p5", "held_2"]
FEATURE_NAMES = tuple(ONSET_NAMES + RELEASE_NAMES)


def _key_features(pitch: int, key) -> dict:
    """Scale degree and mode of `pitch` against `key` (tonic, mode)."""
    tonic, mode = key
    degree = (pitch - tonic) % 12
    return {"minor": float(mode == "minor"), "in_scale": float(degree in SCALES[mode]), f"degree_{degree}": 1.0}


def _release_features(t: float, end: float, ioi: float, recent_ioi: float, bpb: int) -> dict:
    """What the note-off adds (beats): the note's length against the recent gaps, and where it ends."""
    dur = max(1e-3, end - t)
    end_pos = end % bpb
    return {
        "dur_log2": _log2(dur), "dur_over_recent_log2": _log2(dur / recent_ioi, -3, 3),
        "dur_over_ioi_log2": _log2(dur / ioi, -3, 3) if ioi > 0 else 0.0,
        "end_on_beat": float(_dist_to_grid(end) < ON_BEAT),
        "end_on_downbeat": float(min(end_pos, bpb - end_pos) < ON_BEAT),
        "end_bar_sin": math.sin(2 * math.pi * end_pos / bpb), "end_bar_cos": math.cos(2 * math.pi * end_pos / bpb),
        "held_1p5": float(dur >= 1.5), "held_2": float(dur >= 2.0),
    }


def features(onsets: Sequence[float], ends: Sequence[float | None], pitches: Sequence[int], i: int,
             beats_per_bar: int, start: int = 0, released: bool = True, key=None,
             last_start: int | None = None) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) of note i, from notes 0..i only (beats, downbeat at 0).

    The phrase so far starts at note `start`; the one before it started at `last_start` (None: no
    phrase before it); phrases tend to match in length, so the time since `start` is also given as
    a ratio to the last phrase's length (start to start).
    ends[j] for j < i may be None (still sounding: no gap before i); ends[i] is used only when
    `released` (the note_off stage), else its features are zero. `key` (tonic, mode) if known,
    else estimated from the pitches heard so far (agent.music.keys)."""
    bpb = max(1, int(beats_per_bar))
    t, p = float(onsets[i]), int(pitches[i])
    f = np.zeros(len(FEATURE_NAMES))
    pos = t % bpb
    bar_beat = int(round(pos)) % bpb if _dist_to_grid(t) < ON_BEAT else -1
    ioi = t - onsets[i - 1] if i > 0 else 0.0
    ioi2 = onsets[i - 1] - onsets[i - 2] if i > 1 else 0.0
    recent = np.diff(np.asarray(onsets[max(0, i - RECENT):i + 1], dtype=float))
    recent_ioi = float(np.median(recent[recent > 0])) if np.any(recent > 0) else 1.0
    prev_end = ends[i - 1] if i > 0 else None
    gap = max(0.0, t - prev_end) if prev_end is not None else 0.0
    iv = p - int(pitches[i - 1]) if i > 0 else 0
    iv_prev = int(pitches[i - 1]) - int(pitches[i - 2]) if i > 1 else 0
    phrase = np.asarray(pitches[start:i + 1], dtype=float)
    if key is None:
        key = estimate_key([int(x) for x in pitches[:i + 1]])
    s = max(0, min(start, i))
    start_bar = math.floor(onsets[s] / bpb + 1e-6) + int(((onsets[s] + 1e-6) % bpb) / bpb > 0.5)  # a pickup: next bar
    bar_k = max(0, math.floor(t / bpb + 1e-6) - start_bar)
    v = {
        "beat_dist": _dist_to_grid(t), "on_beat": float(bar_beat >= 0), "downbeat": float(bar_beat == 0),
        "last_beat_of_bar": float(bpb > 1 and bar_beat == bpb - 1),
        "mid_bar": float(bpb % 2 == 0 and bpb > 2 and bar_beat == bpb // 2),
        "bar_sin": math.sin(2 * math.pi * pos / bpb), "bar_cos": math.cos(2 * math.pi * pos / bpb),
        "ioi_log2": _log2(ioi) if i > 0 else 0.0,
        "ioi_ratio_log2": _log2(ioi / ioi2, -3, 3) if ioi > 0 and ioi2 > 0 else 0.0,
        "gap_before_log": math.log1p(min(gap, 8.0)), "recent_ioi_log2": _log2(recent_ioi),
        "interval": max(-12, min(12, iv)) / 12, "abs_interval": min(12, abs(iv)) / 12,
        "step": float(0 < abs(iv) <= 2), "leap": float(abs(iv) > 4),
        "direction_change": float(iv * iv_prev < 0),
        "above_phrase_mean": (p - phrase.mean()) / 12, "above_phrase_low": (p - phrase.min()) / 12,
        "no_key": float(key is None),
        "phrase_notes_log": math.log1p(i - s), **_vs_last(onsets, ends, i, s, last_start, released), "phrase_beats_log": math.log1p(max(0.0, t - onsets[s])),
        f"phrase_bar_{bar_k % 4}": 1.0, "first_note": float(i == s),
    }
    if key is not None:
        v.update(_key_features(p, key))
    if released and ends[i] is not None:
        v.update(_release_features(t, float(ends[i]), ioi, recent_ioi, bpb))
    for name, x in v.items():
        f[_INDEX[name]] = x
    return f


_INDEX = {n: k for k, n in enumerate(FEATURE_NAMES)}


def _vs_last(onsets, ends, i: int, s: int, last_start: int | None, released: bool) -> dict:
    if last_start is None or not 0 <= last_start < s:
        return {}
    last = float(onsets[s]) - float(onsets[last_start])
    now = (float(ends[i]) if released and ends[i] is not None else float(onsets[i])) - float(onsets[s])
    return {"has_last_phrase": 1.0, "vs_last_phrase_log2": _log2(now / last, -2, 2) if now > 0 and last > 0 else -2.0}


@dataclass(frozen=True)
class Head:
    """One stage's classifier: standardise, optional tanh hidden layer, logistic output."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray | None  # [features, hidden] or None (logistic regression)
    b1: np.ndarray | None
    w2: np.ndarray  # [hidden or features]
    b2: float
    threshold: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        """p(phrase end) for one feature vector [F] or a batch [N, F]."""
        z = (np.asarray(x, dtype=float) - self.mean) / self.std
        if self.w1 is not None:
            z = np.tanh(z @ self.w1 + self.b1)
        return 1.0 / (1.0 + np.exp(-(z @ self.w2 + self.b2)))

    def to_dict(self) -> dict:
        d = {"mean": self.mean.tolist(), "std": self.std.tolist(), "w2": self.w2.tolist(), "b2": float(self.b2),
             "threshold": float(self.threshold)}
        if self.w1 is not None:
            d.update(w1=self.w1.tolist(), b1=self.b1.tolist())
        return d


@dataclass(frozen=True)
class PhraseEndModel:
    heads: dict  # stage -> Head

    def probability(self, stage: str, x: np.ndarray) -> np.ndarray:
        return self.heads[stage].probability(x)

    def is_end(self, stage: str, x: np.ndarray) -> bool:
        return bool(self.probability(stage, x) >= self.heads[stage].threshold)

    def to_dict(self, card: dict | None = None) -> dict:
        return {"format": FORMAT, "features": list(FEATURE_NAMES),
                "heads": {s: h.to_dict() for s, h in self.heads.items()}, "card": card or {}}


def _head(d: dict, n: int) -> Head:
    def arr(name, shape):
        a = np.asarray(d[name], dtype=float)
        if a.shape != shape or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} has shape {a.shape} (expected {shape}) or a non-finite value")
        return a
    hidden = np.asarray(d["w1"]).shape[1] if "w1" in d else None
    std = arr("std", (n,))
    if np.any(std <= 0):
        raise ValueError("std has a value <= 0")
    w1 = arr("w1", (n, hidden)) if hidden else None
    b1 = arr("b1", (hidden,)) if hidden else None
    threshold = float(d["threshold"])
    if not 0 < threshold < 1:
        raise ValueError(f"threshold {threshold} outside (0, 1)")
    return Head(arr("mean", (n,)), std, w1, b1, arr("w2", (hidden or n,)), float(d["b2"]), threshold)


def load_model(path: str | Path) -> PhraseEndModel:
    """A phrase-end weight file (JSON, FORMAT); PhraseModelError, naming the file, if it cannot be used."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a phrase-end weight file (format {d.get('format') if isinstance(d, dict) else None!r}, "
                             f"expected {FORMAT!r})")
        if d.get("features") != list(FEATURE_NAMES):
            raise ValueError("trained on other features than this code computes (retrain it)")
        heads = {}
        for stage in STAGES:
            if stage not in d.get("heads", {}):
                raise ValueError(f"no {stage!r} head")
            try:
                heads[stage] = _head(d["heads"][stage], len(FEATURE_NAMES))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"head {stage!r}: {e}") from None
        return PhraseEndModel(heads)
    except OSError as e:
        raise PhraseModelError(f"{path}: cannot read the phrase-end weights ({e.strerror or e})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise PhraseModelError(f"{path}: bad phrase-end weights: {e}") from None


class PhraseTracker:
    """The live side's view of the player's melody: feed note-ons and note-offs as they come.

    Times in seconds (any unit the grid's period is in); the grid is passed at each call because
    the beat tracker refines it as it goes. Notes whose onsets fall within CHORD_BEATS are one
    chord, heard as its top note. Keeps the last `keep` notes (the key and the recent tempo
    come from them)."""

    CHORD_BEATS = 0.08

    def __init__(self, model: PhraseEndModel, keep: int = 64) -> None:
        self.model, self.keep = model, keep
        self.onsets: list[float] = []
        self.ends: list[float | None] = []
        self.pitches: list[int] = []
        self.start = 0  # index of the current phrase's first note
        self.last_start: int | None = None  # the phrase before it

    def new_phrase(self, skip: float = 0.0) -> None:
        """The next note starts a phrase (call after the agent's turn, or when an end is acted on).

        `skip`: time (the grid's unit) since the last phrase that was not the player's, the agent's
        answer: the notes heard before are moved that much later, so the last phrase's length and
        the gap after it read as if the player had played on (as the classifier was trained)."""
        if self.start < len(self.onsets):
            self.last_start, self.start = self.start, len(self.onsets)
        if skip > 0:
            self.onsets = [t + skip for t in self.onsets]
            self.ends = [None if e is None else e + skip for e in self.ends]

    def _p(self, stage: str, grid: Grid) -> float:
        i = len(self.onsets) - 1
        on = [grid.beats(t) for t in self.onsets]
        en = [None if e is None else grid.beats(e) for e in self.ends]
        x = features(on, en, self.pitches, i, grid.beats_per_bar, min(self.start, i), stage == "note_off",
                     last_start=self.last_start)
        return float(self.model.probability(stage, x))

    def note_on(self, t: float, pitch: int, grid: Grid) -> float:
        """p(this note ends the phrase) at its onset (the "note_on" head)."""
        if self.onsets and (t - self.onsets[-1]) / grid.period < self.CHORD_BEATS:
            if pitch <= self.pitches[-1]:
                return self._p("note_on", grid)
            self.pitches[-1] = pitch  # the chord's top note is the melody
        else:
            self.onsets.append(t)
            self.ends.append(None)
            self.pitches.append(pitch)
        if len(self.onsets) > self.keep:
            drop = len(self.onsets) - self.keep
            del self.onsets[:drop], self.ends[:drop], self.pitches[:drop]
            self.start = max(0, self.start - drop)
            if self.last_start is not None:
                self.last_start = self.last_start - drop if self.last_start >= drop else None
        return self._p("note_on", grid)

    def note_off(self, t: float, pitch: int, grid: Grid) -> float | None:
        """p(the phrase ended with this note) at its release (the "note_off" head), or None when
        the released key is not the melody's latest note (an inner chord note, an older note)."""
        j = next((k for k in range(len(self.onsets) - 1, -1, -1)
                  if self.pitches[k] == pitch and self.ends[k] is None), None)
        if j is None:
            return None  # a chord's inner note, or a key we never counted
        self.ends[j] = t
        return self._p("note_off", grid) if j == len(self.onsets) - 1 else None

    def is_end(self, stage: str, p: float) -> bool:
        """Whether p (from note_on or note_off) is over that head's threshold."""
        return p >= self.model.heads[stage].threshold
