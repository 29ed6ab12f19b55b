"""What the beat scorer sees of each hypothesis: a feature row per agent of the pulse bank.

The tracker (beat_multi.py) asks every agent of the bank (pulse.py) for the
same few numbers about the current phrase and scores them with a linear
function learnt from the corpus' own bar lines (scripts/train_beat.py,
weights in beat_weights.json). A felt beat and its double or half fit a run
of eighths equally well; what tells them apart is what the literature uses
for the tactus and metre (Parncutt 1994; Lerdahl & Jackendoff's preference
rules; Temperley 2007): where the long, loud, low notes and chords fall
(durational and phenomenal accents on the beat), how many onsets each beat
and division slot holds, which inter-onset intervals the hypothesis' levels
explain, how many long notes start off its beats (syncopation), and a tempo
prior. The features are vectorised over agents: one call costs a few numpy
operations on [agents, events] arrays.
"""
from __future__ import annotations

import numpy as np

NAMES = (
    "cost_time", "cost_pattern", "log2_period", "log2_period_sq", "triple", "triple_log2_period",
    "triple_log2_period_sq", "swing", "p_beat", "p_division", "p_sub", "on_beat",
    "dur_accent", "vel_accent", "bass_accent", "chord_accent", "syncopation", "long_on_beat",
    "ioi_beat", "ioi_half", "ioi_third", "ioi_double", "ioi_triple", "ioi_dotted", "events_per_beat",
)
D = len(NAMES)
REF_PERIOD = 0.6  # seconds: 100 bpm, the centre the period features are measured from
_LEVELS = np.array([0.0, -1.0, -np.log2(3.0), 1.0, np.log2(3.0), np.log2(1.5)])  # IOI / period, log2
_TOL = 0.1  # log2 width of an IOI class (about 7 %)


def features(bank, t: np.ndarray, pitch: np.ndarray, vel: np.ndarray, chord: np.ndarray,
             G: np.ndarray, LEV: np.ndarray) -> np.ndarray:
    """[agents, D] features. t/pitch/vel/chord: the phrase's last n events; G/LEV [agents, n] their beat
    positions and levels (0 beat, 1 division, 2 subdivision) on each agent's grid."""
    K = bank.K
    n = len(t)
    F = np.zeros((K, D))
    P = bank.P
    lp = np.log2(P / REF_PERIOD)
    tri = (bank.fam == 1).astype(float)
    F[:, 0] = bank.cost_time
    F[:, 1] = bank.cost_pat
    F[:, 2] = lp
    F[:, 3] = lp * lp
    F[:, 4] = tri
    F[:, 5] = tri * lp
    F[:, 6] = tri * lp * lp
    F[:, 7] = np.where((bank.fam == 0) & (bank.offbeats > 0), bank.o - 0.5, 0.0)
    F[:, 8:11] = bank._probabilities()
    on_all = LEV == 0
    F[:, 11] = on_all.mean(axis=1)
    m = n - 1  # the last event's length is not known yet
    if m >= 2:
        ioi = np.maximum(np.diff(t), 1e-3)
        lt = np.log2(ioi)
        on = on_all[:, :m].astype(float)
        off = 1.0 - on
        n_on, n_off = on.sum(axis=1), off.sum(axis=1)
        both = (n_on > 0) & (n_off > 0)
        inv_on, inv_off = 1.0 / np.maximum(n_on, 1.0), 1.0 / np.maximum(n_off, 1.0)
        v = vel[:m]
        vz = (v - v.mean()) / (v.std() + 8.0)
        low = np.clip((np.median(pitch[:m]) - pitch[:m]) / 12.0, -1.0, 1.0)
        ch = np.minimum(chord[:m] - 1.0, 3.0)
        X = np.stack([lt - lt.mean(), vz, low, ch], axis=1)  # [m, 4]
        diff = (on @ X) * inv_on[:, None] - (off @ X) * inv_off[:, None]
        F[:, 12:16] = np.where(both[:, None], diff, 0.0)
        rel = lt[None, :] - np.log2(P)[:, None]  # [K, m]
        long_ = rel > -0.2
        F[:, 16] = (long_ & (off > 0)).mean(axis=1)
        F[:, 17] = (long_ & (on > 0)).mean(axis=1)
        for j, c in enumerate(_LEVELS):
            F[:, 18 + j] = (np.abs(rel - c) < _TOL).mean(axis=1)
        span = np.maximum(G[:, -1] - G[:, 0], 0.5)
        F[:, 24] = np.log2(m / span)
    return F
