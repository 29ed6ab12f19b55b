"""What the beat scorer sees of each hypothesis: a feature row per agent of the pulse bank.

The tracker (beat.py) asks every agent of the bank (pulse.py) for the
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
N_CONST = (2, 7)  # of which these columns (the tempo prior's terms, at the agent's period class) never change


def load_weights(path, hysteresis: float, continuity: float) -> dict | None:
    """The beat scorer's weights (scripts/train_beat.py), as arrays; None if there is no weights file."""
    import json

    if not path.exists():
        return None
    d = json.loads(path.read_text())
    if list(d["names"]) != list(NAMES):
        raise ValueError(f"{path}: its features {d['names']} are not beat_features.NAMES")
    return {"mean": np.asarray(d["mean"]), "std": np.asarray(d["std"]), "w": np.asarray(d["w"]),
            "hysteresis": float(d.get("hysteresis", hysteresis)), "continuity": float(d.get("continuity", continuity))}


def prior_features(P0: np.ndarray, fam: np.ndarray) -> np.ndarray:
    """[agents, 5]: the tempo prior's terms at each agent's period class (log2 period from 100 bpm, its
    square, triple, and both for triple agents)."""
    lp = np.log2(P0 / REF_PERIOD)
    tri = (fam == 1).astype(float)
    return np.stack([lp, lp * lp, tri, tri * lp, tri * lp * lp], axis=1)


def bank_features(bank) -> np.ndarray:
    """[agents, N_BANK]: the costs, the tempo prior's terms, the swing and the level onset probabilities."""
    F = np.empty((bank.K, N_BANK))
    F[:, 0] = bank.cost_time
    F[:, 1] = bank.cost_pat
    F[:, 2:7] = prior_features(bank.P0, bank.fam)
    F[:, 7] = swing_feature(bank)
    F[:, 8:11] = bank.p
    return F


def swing_feature(bank) -> np.ndarray:
    return np.where((bank.fam == 0) & (bank.offbeats > 0), bank.o - 0.5, 0.0)


def event_row(ioi_s: float, pitch: float, velocity: float, chord: float) -> tuple:
    """One event's raw row, once the next onset gives its length: (log2 IOI, velocity, pitch, chord)."""
    return (np.log2(max(ioi_s, 1e-3)), velocity, pitch, min(chord - 1.0, 3.0))


def window_features(P: np.ndarray, R: np.ndarray, G: np.ndarray, LEV: np.ndarray) -> np.ndarray:
    """[agents, D - N_BANK] the accents and IOI classes of the phrase's events on each agent's grid. P [A] the
    agents' periods; R [m, 4] the phrase's events' rows (event_row) but the last's (its length is not known
    yet); G/LEV [A, m + 1] the events' beat positions and levels (0 beat, 1 division, 2 subdivision) on each
    agent's grid."""
    A, n = LEV.shape
    F = np.zeros((A, D - N_BANK))
    on_all = LEV == 0
    F[:, 0] = np.count_nonzero(on_all, axis=1) * (1.0 / n)
    m = n - 1
    if m >= 2:
        lt = R[:, 0]
        X = R.copy()  # accents: a long note, a loud one (z-score), a low one (octaves below the mean), a chord
        X[:, 1] *= 1.0 / (R[:, 1].std() + 8.0)
        X[:, 2] = np.clip((R[:, 2].mean() - R[:, 2]) * (1.0 / 12.0), -1.0, 1.0)
        on = on_all[:, :m]
        onf = on.astype(float)
        n_on = onf.sum(axis=1)
        n_off = m - n_on
        s_on = onf @ X
        # mean on the beat minus mean off it (no beat, or no off-beat, in the phrase: 0)
        diff = s_on / np.maximum(n_on, 1.0)[:, None] - (X.sum(axis=0) - s_on) / np.maximum(n_off, 1.0)[:, None]
        diff[(n_on == 0) | (n_off == 0)] = 0.0
        F[:, 1:5] = diff
        lP = np.log2(P)
        long_ = lt > (lP - 0.2)[:, None]  # [A, m]
        n_long = np.count_nonzero(long_, axis=1)
        n_long_on = np.count_nonzero(long_ & on, axis=1)
        F[:, 5] = (n_long - n_long_on) * (1.0 / m)
        F[:, 6] = n_long_on * (1.0 / m)
        srt = np.sort(lt)
        x = lP[:, None] + _LEVELS
        F[:, 7:13] = (np.searchsorted(srt, x + _TOL) - np.searchsorted(srt, x - _TOL)) * (1.0 / m)
        F[:, 13] = np.log2(m / np.maximum(G[:, -1] - G[:, 0], 0.5))
    return F


def features(bank, R: np.ndarray, G: np.ndarray, LEV: np.ndarray) -> np.ndarray:
    """[agents, D] features of every agent (see bank_features and window_features)."""
    return np.concatenate([bank_features(bank), window_features(bank.P, R, G, LEV)], axis=1)
