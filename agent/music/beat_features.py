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


N_BANK = 11  # the first N_BANK features come from the bank alone (cheap for every agent)


def bank_features(bank) -> np.ndarray:
    """[agents, N_BANK]: the costs, the tempo prior's terms, the swing and the level onset probabilities."""
    F = np.empty((bank.K, N_BANK))
    lp = np.log2(bank.P / REF_PERIOD)
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
    return F


def window_features(P: np.ndarray, t: np.ndarray, pitch: np.ndarray, vel: np.ndarray, chord: np.ndarray,
                    G: np.ndarray, LEV: np.ndarray) -> np.ndarray:
    """[agents, D - N_BANK] the accents and IOI classes of the phrase's events on each agent's grid. P [A] the
    agents' periods; t/pitch/vel/chord the phrase's last n events; G/LEV [A, n] their beat positions and
    levels (0 beat, 1 division, 2 subdivision) on each agent's grid."""
    A, n = LEV.shape
    F = np.zeros((A, D - N_BANK))
    on_all = LEV == 0
    F[:, 0] = np.count_nonzero(on_all, axis=1) * (1.0 / n)
    m = n - 1  # the last event's length is not known yet
    if m >= 2:
        ioi = np.maximum(t[1:] - t[:-1], 1e-3)
        lt = np.log2(ioi)
        on = on_all[:, :m]
        onf = on.astype(float)
        n_on = np.count_nonzero(on, axis=1).astype(float)
        n_off = m - n_on
        both = (n_on > 0) & (n_off > 0)
        v = vel[:m]
        vz = (v - v.mean()) / (v.std() + 8.0)
        low = np.clip((np.median(pitch[:m]) - pitch[:m]) / 12.0, -1.0, 1.0)
        ch = np.minimum(chord[:m] - 1.0, 3.0)
        X = np.stack([lt - lt.mean(), vz, low, ch], axis=1)  # [m, 4]
        tot = X.sum(axis=0)
        s_on = onf @ X
        diff = s_on / np.maximum(n_on, 1.0)[:, None] - (tot - s_on) / np.maximum(n_off, 1.0)[:, None]
        F[:, 1:5] = np.where(both[:, None], diff, 0.0)
        lP = np.log2(P)
        long_ = lt[None, :] > (lP - 0.2)[:, None]  # [A, m]
        n_long = np.count_nonzero(long_, axis=1)
        n_long_on = np.count_nonzero(long_ & on, axis=1)
        F[:, 5] = (n_long - n_long_on) * (1.0 / m)
        F[:, 6] = n_long_on * (1.0 / m)
        srt = np.sort(lt)
        x = lP[:, None] + _LEVELS[None, :]  # [A, levels]
        F[:, 7:13] = (np.searchsorted(srt, x + _TOL) - np.searchsorted(srt, x - _TOL)) * (1.0 / m)
        span = np.maximum(G[:, -1] - G[:, 0], 0.5)
        F[:, 13] = np.log2(m / span)
    return F


def features(bank, t: np.ndarray, pitch: np.ndarray, vel: np.ndarray, chord: np.ndarray,
             G: np.ndarray, LEV: np.ndarray) -> np.ndarray:
    """[agents, D] features of every agent (see bank_features and window_features)."""
    return np.concatenate([bank_features(bank), window_features(bank.P, t, pitch, vel, chord, G, LEV)], axis=1)
