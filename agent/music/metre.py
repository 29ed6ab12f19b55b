"""Bars from accents: how many beats a bar, and which beat is the downbeat.

Given the onsets' places on a tracked beat grid, each beat gets a strength
from the phenomenal accents the literature uses for metre induction
(Povel & Essen 1985; Lerdahl & Jackendoff's metrical preference rules;
Temperley 2007): an onset on the beat at all, a long note (its inter-onset
interval: durational accent), a loud one (velocity), a low one (the bass), a
chord (density). The metre is the bar length whose beat classes differ most
in strength (a metrical template matched at every phase), the downbeat the
strongest class. Two beats a bar and four are told apart only by beat 3 being
clearly weaker than beat 1; below `FOUR_MARGIN` the bar is taken as two.
"""
from __future__ import annotations

import numpy as np

W_DUR, W_VEL, W_BASS, W_CHORD = 0.6, 0.4, 0.25, 0.3  # accent weights (per log2 beat, z-score, octave, note)
TRIPLE_MARGIN = 0.08  # how much more contrast three beats a bar needs than two or four
FOUR_MARGIN = 0.12  # beat 1 over beat 3 before four beats a bar is preferred to two
REP_WEIGHT, REP_MIN_BEATS = 0.5, 7  # how much the repetition of rhythms at the bar's lag counts, from when
_BITS = np.left_shift(1, np.arange(12, dtype=np.int64))
DEFAULT_BPB = (4, 2)  # (duple division, triple division) when there is no evidence: 4/4, 6/8


def accents(R: np.ndarray, period_s: float) -> np.ndarray:
    """Per event, its phenomenal accent from its row (beat_features.event_row: log2 IOI, velocity, pitch,
    chord size - 1): a long note (per log2 beat, -1..2), a loud one (z-score), a low one (octaves below the
    mean), a chord."""
    v = R[:, 1]
    return (1.0 + W_DUR * np.clip(R[:, 0] - np.log2(period_s), -1.0, 2.0) + W_VEL * (v - v.mean()) / (v.std() + 8.0)
            + W_BASS * np.clip((R[:, 2].mean() - R[:, 2]) / 12.0, -1.0, 1.0) + W_CHORD * R[:, 3])


def strengths(g: np.ndarray, level: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, int]:
    """Per beat of the window (from the first onset's beat), the accents of the onsets on it; and that first
    beat's index."""
    on = level == 0
    if not on.any():
        return np.zeros(0), 0
    beats = np.rint(g).astype(np.int64)
    b0 = int(beats.min())
    s = np.bincount(beats[on] - b0, weights=np.maximum(acc[on], 0.1), minlength=int(beats.max()) - b0 + 1)
    return s, b0


def patterns(g: np.ndarray, b0: int, n: int) -> np.ndarray:
    """Per beat of the window (from beat b0, n beats), its rhythm: a bit mask of the twelfths of the beat
    that hold an onset. Bars repeat their rhythms, so the lag at which these repeat is a bar length."""
    fl = np.floor(g + 1e-6)
    beats = np.clip(fl.astype(np.int64) - b0, 0, n - 1)
    slot = np.rint((g - fl) * 12.0).astype(np.int64) % 12
    occupied = np.zeros(n * 12, dtype=np.int64)
    occupied[beats * 12 + slot] = 1
    return occupied.reshape(n, 12) @ _BITS


def repetition(mask: np.ndarray, lag: int) -> float:
    """How often a beat's rhythm comes back `lag` beats later (beats where both are empty left out)."""
    if len(mask) <= lag:
        return 0.0
    a, b = mask[:-lag], mask[lag:]
    used = (a | b) != 0
    return float((a == b)[used].mean()) if used.any() else 0.0


def bars(s: np.ndarray, b0: int, triple_division: bool, mask: np.ndarray | None = None) -> tuple[int, int, float]:
    """(beats a bar, a downbeat's beat index, contrast 0..) from per-beat strengths and, given the beats'
    rhythms (`patterns`), how they repeat: three beats a bar when the rhythm repeats every three beats
    more than every two or four."""
    default = DEFAULT_BPB[int(triple_division)]
    if len(s) < 4:
        return default, 0, 0.0
    cls = (np.arange(len(s)) + b0) % 12  # beat classes mod 12: mod 2, 3 and 4 are sums of these
    sums, cnts = np.bincount(cls, weights=s, minlength=12), np.bincount(cls, minlength=12)
    best = {}
    for m in (2, 3, 4):
        means = sums.reshape(12 // m, m).sum(axis=0) / np.maximum(cnts.reshape(12 // m, m).sum(axis=0), 1)
        r = int(np.argmax(means))
        others = (means.sum() - means[r]) / (m - 1)
        best[m] = (float(means[r] - others) / (s.mean() + 1e-9), r, means)
    c2, r2, _ = best[2]
    c3, r3, _ = best[3]
    c4, r4, means4 = best[4]
    rep = 0.0
    if mask is not None and len(mask) >= REP_MIN_BEATS:
        rep = REP_WEIGHT * (repetition(mask, 3) - max(repetition(mask, 2), repetition(mask, 4)))
    if c3 + rep > max(c2, c4) + TRIPLE_MARGIN:
        return 3, r3, c3
    if len(s) >= 8 and (means4[r4] - means4[(r4 + 2) % 4]) / (s.mean() + 1e-9) > FOUR_MARGIN:
        return 4, r4, c4
    if default == 4 and len(s) < 8:
        return 4, r4, c4
    return 2, r2, c2
