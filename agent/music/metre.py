"""Bars: how many beats a bar, which beat is the downbeat, and which beat and division carry them.

Two ways, both on the beat tracker's hypotheses (beat.py, pulse.py):
- the learnt bar scorer (`bar_features`, weights in metre_weights.json, trained by
  `scripts/train_beat.py --bars` on the corpus' bar lines): the tracker's few best distinct beats are
  each read as bars of 2, 3 and 4 beats at every phase, and a conditional logit over these picks one
  (the beat, its division, the bar's length and phase together);
- without its weights, the accent template (`accent_bars`): each beat of the winner's grid gets a
  strength from the phenomenal accents the literature uses for metre induction (Povel & Essen 1985;
  Lerdahl & Jackendoff's metrical preference rules; Temperley 2007): an onset on the beat at all, a
  long note (durational accent), a loud one, a low one (the bass), a chord; the metre is the bar length
  whose beat classes differ most in strength, the downbeat the strongest class. Two beats a bar and four
  are told apart only by beat 3 being clearly weaker than beat 1; below `FOUR_MARGIN` the bar is two.
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


def accent_bars(g: np.ndarray, lev: np.ndarray, R: np.ndarray, period_s: float, triple: bool) -> tuple[int, int]:
    """(beats a bar, a downbeat's beat index) from one beat grid's accents and rhythm repetition (`bars`)."""
    s, b0 = strengths(g, lev, accents(R, period_s))
    mask = patterns(g, b0, len(s)) if len(s) >= REP_MIN_BEATS else None
    bpb, r, _ = bars(s, b0, triple, mask)
    return bpb, r


# -- the learnt bar scorer -------------------------------------------------------------------------------
# Each of the tracker's few best distinct beat hypotheses (`CANDIDATES`) is read as bars of 2, 3 and 4 beats
# at every phase (`HYPS`); a conditional logit over these (beat x bar) hypotheses, trained on the corpus'
# bar lines (agent/training/beat_data.py, weights in metre_weights.json), picks the beat, the metre, the
# division and the downbeat together: where the accents fall at the bar's period, how the rhythm and the
# pitches repeat at the bar's lag, where the phrase started (on a downbeat, or a pickup before one), and
# whether the beat holds onsets on its thirds (a jig) or its halves (a reel).
BAR_NAMES = (
    "beat_logit", "acc_on", "acc_dur", "acc_vel", "acc_bass", "acc_chord", "four_vs_three",
    "rep_rhythm", "rep_pitch", "threes_rhythm", "threes_pitch",
    "start_on_db", "start_in_db_beat", "pickup1", "pickup2", "pickup3", "long_on_db",
    "triple", "thirds_tri", "thirds_dup", "halves_tri", "halves_dup", "quarters_tri", "quarters_dup",
    "m2", "m3", "m4", "m2_tri", "m3_tri", "m4_tri",
    "p_beat", "p_division", "p_sub", "beat_fill", "syncopation", "rep2_rhythm", "rep2_pitch",
    "cost_time", "cost_pattern",
)
HYPS = tuple((m, r) for m in (2, 3, 4) for r in range(m))  # (beats a bar, downbeat class mod m)
CANDIDATES = 8  # distinct beat hypotheses read as bars
BAR_MIN_EVENTS = 8  # before this many events of a phrase only the beat scorer's winner is read as bars
REP_PRIOR = 6.0  # slots: how far a repetition rate is shrunk towards 0 (few onsets say little)
_W_ACC = np.array([1.0, W_DUR, W_VEL, W_BASS, W_CHORD])
_LAGS = (2, 3, 4)  # beats a bar
_REP_LAGS = (2, 3, 4, 6, 8)  # lags at which the rhythm and pitches are compared: a bar, two bars


def _class_counts(b0: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """[C, 12] how many of the beats b0 .. b0 + nb - 1 fall in each class mod 12."""
    k = np.arange(12)
    return (nb[:, None] // 12 + ((k - b0[:, None]) % 12 < (nb % 12)[:, None])).astype(float)


def _repetition(slot: np.ndarray, pitch: np.ndarray, width: int) -> np.ndarray:
    """[C, 2, lags] how often the rhythm (a twelfth of a beat held or not) and the pitch in it come back
    `_REP_LAGS` beats later, over the slots where either holds an onset; slot [C, n] each event's twelfth of a
    beat from its candidate's first beat."""
    C = len(slot)
    arr = np.zeros((C, width))
    arr[np.arange(C)[:, None], slot] = pitch
    out = np.zeros((C, 2, len(_REP_LAGS)))
    for i, lag in enumerate(_REP_LAGS):
        a, b = arr[:, :-lag * 12], arr[:, lag * 12:]
        used = (a > 0) | (b > 0)
        n = used.sum(axis=1) + REP_PRIOR  # shrunk towards 0: a few onsets say little
        out[:, 0, i] = (((a > 0) == (b > 0)) & used).sum(axis=1) / n
        out[:, 1, i] = ((a == b) & used).sum(axis=1) / n
    return out


def _accent_array(R: np.ndarray, P: np.ndarray) -> np.ndarray:
    """[C, n, 5] each event's accents on each of C grids of period P [C]: an onset, a long note (log2 beats,
    -1..2; the last event's, whose length is not known yet, 0), a loud one, a low one, a chord."""
    v, p = R[:, 1], R[:, 2]
    A = np.empty((len(P), len(R), 5))
    A[:, :, 0] = 1.0
    A[:, :, 1] = np.clip(R[None, :, 0] - np.log2(P)[:, None], -1.0, 2.0)
    A[:, -1, 1] = 0.0
    A[:, :, 2] = (v - v.mean()) / (v.std() + 8.0)
    A[:, :, 3] = np.clip((p.mean() - p) / 12.0, -1.0, 1.0)
    A[:, :, 4] = R[:, 3]
    return A


def bar_features(G: np.ndarray, LEV: np.ndarray, R: np.ndarray, P: np.ndarray, logit: np.ndarray,
                 triple: np.ndarray, g0: np.ndarray, levels: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """[C * len(HYPS), len(BAR_NAMES)] C beat hypotheses each read as bars: G/LEV [C, n] the events' beat
    positions and levels (0 on the beat) on each, R [n, 4] the events' rows (beat_features.event_row; the
    last one's length is not known yet), P [C] the periods, logit [C] the beat scores relative to the best,
    triple [C] bool, g0 [C] where the phrase's first onset fell in each one's first beat, levels [C, 3] the
    onset probabilities of its beat, division and subdivision slots (pulse.Pulses.p), costs [C, 2] its
    timing and pattern costs (nats; pulse.Pulses.cost_time, cost_pat)."""
    C, n = G.shape
    beats = np.floor(G + 1e-6).astype(np.int64)
    frac = G - beats
    on = LEV == 0
    A = _accent_array(R, P)
    onehot = (beats % 12)[:, :, None] == np.arange(12)  # [C, n, 12]
    sums = np.einsum("cnk,cnf->ckf", onehot & on[:, :, None], A)  # [C, 12 classes, 5]
    b0 = beats[:, 0]
    cnt = _class_counts(b0, beats[:, -1] - b0 + 1)
    long_ = on & (A[:, :, 1] >= 0.4)
    long_cls = (onehot & long_[:, :, None]).sum(axis=1).astype(float)  # [C, 12]
    n_long = np.maximum(long_.sum(axis=1), 1)
    slot = (beats - b0[:, None]) * 12 + np.minimum(np.rint(frac * 12.0).astype(np.int64), 11)
    rep = _repetition(slot, np.broadcast_to(R[:, 2] + 1.0, (C, n)), int(slot.max()) + 1)
    # the rhythm and pitches repeat in threes (a bar or two of 3) more than in twos (2, 4 or 8)
    threes = np.maximum(rep[:, :, 1], rep[:, :, 3]) - rep[:, :, [0, 2, 4]].max(axis=2)
    near = [np.mean(np.abs(frac - x) < 0.07, axis=1) for x in (1 / 3, 0.5, 0.25, 0.75)]
    tri = triple.astype(float)
    blocks = []
    for i, m in enumerate(_LAGS):
        B = np.zeros((C, m, len(BAR_NAMES)))
        ms = sums.reshape(C, 12 // m, m, 5).sum(axis=1)
        mc = np.maximum(cnt.reshape(C, 12 // m, m).sum(axis=1), 1.0)
        means = ms / mc[:, :, None]  # [C, m, 5]: per beat class, the accents' means
        B[:, :, 1:6] = means - (means.sum(axis=1, keepdims=True) - means) / (m - 1)
        if m == 4:
            tot = means @ _W_ACC  # [C, m]
            B[:, :, 6] = (tot - np.roll(tot, -2, axis=1)) / (np.abs(tot.mean(axis=1)) + 1e-6)[:, None]
        sign = 1.0 if m == 3 else -1.0
        B[:, :, 7:11] = np.stack([rep[:, 0, i], rep[:, 1, i], sign * threes[:, 0], sign * threes[:, 1]],
                                 axis=1)[:, None]
        two = _REP_LAGS.index(2 * m)
        B[:, :, 35:37] = rep[:, :, two][:, None]
        B[:, 0, 11], B[:, 0, 12] = g0 < 0.01, g0 >= 0.01  # the phrase starts on the downbeat, or in its beat
        B[:, 1:, 13:12 + m] = np.eye(m - 1)  # a pickup of r beats
        B[:, :, 16] = long_cls.reshape(C, 12 // m, m).sum(axis=1) / n_long[:, None] - 1.0 / m
        B[:, :, 24 + i] = 1.0
        B[:, :, 27 + i] = tri[:, None]
        blocks.append(B)
    F = np.concatenate(blocks, axis=1)
    F[:, :, 30:33] = levels[:, None]
    F[:, :, 37:39] = (costs - costs.min(axis=0))[:, None]
    F[:, :, 33] = (on.sum(axis=1) / cnt.sum(axis=1))[:, None]  # an agent's grid holds one onset a slot at most
    F[:, :, 34] = (((~on) & (A[:, :, 1] >= 0.4)).sum(axis=1) / n)[:, None]
    F[:, :, 0] = logit[:, None]
    F[:, :, 17] = tri[:, None]
    for j, x in enumerate((near[0], near[1], near[2] + near[3])):
        F[:, :, 18 + 2 * j] = (x * tri)[:, None]
        F[:, :, 19 + 2 * j] = (x * (1 - tri))[:, None]
    return F.reshape(C * len(HYPS), len(BAR_NAMES))


def load_bar_weights(path) -> dict | None:
    """The bar scorer's weights (standardising folded in); None if there is no weights file."""
    import json

    if not path.exists():
        return None
    d = json.loads(path.read_text())
    k = len(d["names"])
    if list(d["names"]) != list(BAR_NAMES[:k]):
        raise ValueError(f"{path}: its features {d['names']} are not metre.BAR_NAMES")
    wz = np.zeros(len(BAR_NAMES))  # features added after it was trained weigh nothing
    wz[:k] = np.asarray(d["w"]) / np.asarray(d["std"])
    return {"wz": wz, "w0": -float(np.asarray(d["mean"]) @ wz[:k]), "hysteresis": float(d.get("hysteresis", 1.0))}
