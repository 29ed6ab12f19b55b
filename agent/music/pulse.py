"""A bank of beat hypotheses tracked side by side, one numpy row each (see beat.py for the method).

Each hypothesis (an "agent", as in Dixon's BeatRoot) is a beat period class
(`PERIODS`, 50-200 bpm), a family of beat divisions and the grid position the
phrase's first onset took:

- duple: four slots a beat, at 0, o/2, o, (1+o)/2, the off-beat `o` learnt from
  the onsets (0.5 straight, 0.6-0.71 for swing ratios 1.5-2.5);
- triple: six slots a beat, at sixths (the compound metres' eighths and
  sixteenths, triplets).

Each onset is quantised by every agent to the grid slot that costs least, a
cost in nats after Temperley's generative metre model (a slot of each metrical
level holds an onset with its own probability; an empty slot costs log(1-p))
plus a Gaussian timing term (Cemgil et al. 2000). The agent's grid is a
recency-weighted least-squares line t = a + P * g through its quantised
onsets (a Kalman-like tempo and phase update that follows +-10 % drift), kept
within +-15 % of its period class, with a ridge towards its current period.
All updates are vectorised: one onset costs a few dozen numpy calls whatever
the number of agents.
"""
from __future__ import annotations

import numpy as np

MIN_BPM, MAX_BPM = 50.0, 200.0
PERIODS = np.geomspace(60.0 / MAX_BPM, 60.0 / MIN_BPM, 25)  # beat period classes, seconds (~6 % apart)
DRIFT = 1.15  # an agent's period stays within its class's period / DRIFT .. * DRIFT
# onset probability of a slot by level (beat, division, subdivision), Temperley-style: a prior per
# family (as counted in the corpus' tunes at their written metre) that each agent then learns from
# what it hears, so the cost of a pattern is its sequential code length under the agent's metre (MDL)
P_ONSET = np.array([[0.9, 0.42, 0.25], [0.97, 0.75, 0.05]])
PSEUDO = 6.0  # slots of prior evidence per level
LS_WEIGHT = np.array([1.0, 0.6, 0.3])  # how much an onset at a level moves the grid line
SWUNG_DIV_WEIGHT = 0.3  # a duple off-beat moves it less: its place depends on the swing
DECAY_LS = 0.82  # per onset: memory of the grid fit (follows tempo drift)
DECAY_COST = 0.94  # per onset: memory of the hypothesis costs
DECAY_COUNT = 0.97  # per onset: memory of the level probabilities
RIDGE = 0.25  # beats^2: pull of the current period in the line fit
TIMING_CAP = 6.0  # nats: an outlier costs at most this (rubato, a wrong note)
SWING_RATE, SWING_MAX = 0.35, 0.72  # off-beat learning rate; largest off-beat (ratio 2.57)

# slot tables: [family, slot] -> level; duple uses slots 0-3, triple 0-5
_LEVEL = np.array([[0, 2, 1, 2, 2, 2], [0, 2, 1, 2, 1, 2]])
_SLOTS = np.array([4, 6])
_AROUND = np.array([[-1, 0, 1]])


def _agents():
    """(period class, family, first onset's slot, initial off-beat) of every agent."""
    rows = []
    for p in PERIODS:
        for slot in (0, 1, 2, 3):
            rows.append((p, 0, slot, 0.5))
        for slot in (0, 2):
            rows.append((p, 0, slot, 0.64))  # swung from the start: a swung pickup lands on its off-beat
        for slot in (0, 2, 4):
            rows.append((p, 1, slot, 0.5))
    a = np.array(rows)
    return a[:, 0], a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3]


class Pulses:
    """The agents' state; `start(t)` at a phrase's first onset, `step(t)` at each later one."""

    def __init__(self, timing_s: float = 0.012, timing_rel: float = 0.035) -> None:
        self.P0, self.fam, self.slot0, self.o0 = _agents()
        self.L = _SLOTS[self.fam]
        self.K = len(self.P0)
        self.timing_s, self.timing_rel = timing_s, timing_rel
        self._rows = np.arange(self.K)
        self._lev_table = _LEVEL[self.fam]  # [K, slot] -> level
        self._tri_frac = np.tile(np.arange(6) / 6.0, (self.K, 1))
        self._rows3 = np.broadcast_to(self._rows[:, None], (self.K, 3))
        self._base6 = self._rows[:, None] * 6
        self._base3 = self._rows[:, None] * 3
        self._lev_flat = self._lev_table.ravel()
        self._Lc = self.L[:, None]
        self._duple = self.fam == 0
        self._Pmin, self._Pmax = self.P0 / DRIFT, self.P0 * DRIFT
        self.t0 = 0.0
        self.n = 0

    # -- grid geometry ---------------------------------------------------------------
    def _pos(self, k: np.ndarray) -> np.ndarray:
        """Beat position (beats from the phrase origin) of tatum index k ([K] or [K, C])."""
        L = self.L if k.ndim == 1 else self.L[:, None]
        beat, s = np.divmod(k, L)
        frac = self._frac_table()
        return beat + (frac[self._rows, s] if k.ndim == 1 else frac[self._rows[:, None], s])

    def _frac_table(self) -> np.ndarray:
        """[K, 6] each slot's place within the beat: duple 0, o/2, o, (1+o)/2; triple sixths."""
        f = self._tri_frac.copy()
        duple = self.fam == 0
        o = self.o[duple]
        f[duple, 1], f[duple, 2], f[duple, 3] = o / 2, o, (1.0 + o) / 2
        return f

    def _level(self, k: np.ndarray) -> np.ndarray:
        L = self.L if k.ndim == 1 else self.L[:, None]
        return self._lev_table[self._rows if k.ndim == 1 else self._rows[:, None], k % L]

    # -- input -----------------------------------------------------------------------
    def start(self, t_s: float) -> None:
        """A phrase's first onset: every agent puts it on its own first slot."""
        self.t0 = float(t_s)
        self.P = self.P0.copy()
        self.o = self.o0.copy()
        self.k = self.slot0.copy()
        g = self._pos(self.k)
        self.a = -self.P * g  # t - t0 = a + P g
        lev0 = self._level(self.k)
        self.hits = P_ONSET[self.fam] * PSEUDO  # [K, level] decayed onset counts and slot counts
        self.slots = np.full((self.K, 3), PSEUDO)
        self.cost = np.zeros(self.K)
        self.cost_time = np.zeros(self.K)  # the cost's two parts: timing (off the grid line) and pattern
        self.cost_pat = np.zeros(self.K)
        self._count(lev0, np.zeros((self.K, 3)))
        # least-squares sums (weight, g, t, gg, gt), t relative to t0
        w = LS_WEIGHT[self._level(self.k)]
        self.S = np.stack([w, w * g, np.zeros(self.K), w * g * g, np.zeros(self.K)])
        self.g = g
        self.g0 = g.copy()  # where the phrase's first onset fell on each agent's grid (beats)
        self.level = self._level(self.k)
        self.offbeats = np.zeros(self.K)  # duple off-beats each agent has heard (its swing is known)
        self.n = 1

    def step(self, t_s: float) -> None:
        """One onset at t_s: each agent quantises it, pays for it and refits its grid."""
        t = float(t_s) - self.t0
        P, a, L = self.P, self.a, self.L
        x = (t - a) / P
        near = np.rint(x * L).astype(np.int64)
        cand = near[:, None] + _AROUND
        np.maximum(cand, self.k[:, None] + 1, out=cand)
        Lc = self._Lc
        beat, slot = np.divmod(cand, Lc)
        flat = self._base6 + slot  # [K, 3] index into the [K, 6] slot tables
        g_c = beat + self._frac_table().take(flat)
        e = t - a[:, None] - P[:, None] * g_c
        e *= self._inv_sigma(P)
        timing = np.minimum(0.5 * e * e, TIMING_CAP)
        lev = self._lev_flat.take(flat)
        kl = self.k[:, None]
        c1 = cand - 1
        n_beat = c1 // Lc - kl // Lc
        n_div = c1 // 2 - kl // 2 - n_beat
        n_sub = cand - kl - 1 - n_beat - n_div
        p = self.p
        hit, miss = -np.log(p), -np.log1p(-p)
        total = timing + hit.take(self._base3 + lev)
        total += n_beat * miss[:, :1] + n_div * miss[:, 1:2] + n_sub * miss[:, 2:]
        j = np.argmin(total, axis=1)
        fj = self._base3[:, 0] + j
        k_new, g_new, lev_new = cand.take(fj), g_c.take(fj), lev.take(fj)
        tot_j = total.take(fj)
        self.cost = DECAY_COST * self.cost + tot_j
        self.cost_time = DECAY_COST * self.cost_time + timing.take(fj)
        self.cost_pat = self.cost - self.cost_time
        self._count(lev_new, np.stack([n_beat.take(fj), n_div.take(fj), n_sub.take(fj)], axis=1))
        # the swing: a duple off-beat moves the agent's off-beat towards where it was played
        off = self._duple & (k_new % L == 2)
        if off.any():
            self.offbeats = self.offbeats + off
            f = x - np.floor(x)
            self.o = np.where(off, np.clip(self.o + SWING_RATE * (f - self.o), 0.5, SWING_MAX), self.o)
            w = np.where(off, SWUNG_DIV_WEIGHT, LS_WEIGHT.take(lev_new))
        else:
            w = LS_WEIGHT.take(lev_new)
        # the grid line: decayed weighted least squares with a ridge towards the current period
        wg = w * g_new
        S = self.S
        S *= DECAY_LS
        S[0] += w
        S[1] += wg
        S[2] += w * t
        S[3] += wg * g_new
        S[4] += wg * t
        sw, sg, st, sgg, sgt = S
        inv = 1.0 / sw
        var = sgg - sg * sg * inv
        cov = sgt - sg * st * inv
        Pn = np.clip((cov + RIDGE * P) / (var + RIDGE), self._Pmin, self._Pmax)
        self.a = (st - Pn * sg) * inv
        self.P = Pn
        self.k, self.g, self.level = k_new, g_new, lev_new
        self.n += 1

    def free(self) -> np.ndarray:
        """[K] bool: the agent's period is inside its class's range, not held at an edge of it."""
        return (self.P > self._Pmin * 1.001) & (self.P < self._Pmax * 0.999)

    def _inv_sigma(self, P: np.ndarray) -> np.ndarray:
        return (1.0 / (self.timing_s + self.timing_rel * P))[:, None]

    def _probabilities(self) -> np.ndarray:
        """[K, level] onset probabilities, kept hierarchical (a level holds onsets no more often than the
        level above it: else an agent a half beat out of phase would learn that its off-beats are its beats).
        A violating pair is pooled, as isotonic regression does."""
        h, s = self.hits, self.slots
        p = h / s
        pool01 = (h[:, 0] + h[:, 1]) / (s[:, 0] + s[:, 1])
        bad = p[:, 1] > p[:, 0]
        p[:, 0] = np.where(bad, pool01, p[:, 0])
        p[:, 1] = np.where(bad, pool01, p[:, 1])
        p[:, 2] = np.minimum(p[:, 2], p[:, 1])
        return p

    def _count(self, lev: np.ndarray, empty: np.ndarray) -> None:
        """Learn the level probabilities: an onset at `lev`, `empty` slots of each level passed."""
        hit = np.zeros((self.K, 3))
        hit[self._rows, lev] = 1.0
        self.hits = self.hits * DECAY_COUNT + hit
        self.slots = self.slots * DECAY_COUNT + hit + empty
        self.hits = np.minimum(self.hits, self.slots - 0.02)  # never certain
        self.hits = np.maximum(self.hits, 0.02)
        self.p = self._probabilities()

    def snapshot(self) -> tuple:
        return (self.P.copy(), self.a.copy(), self.o.copy(), self.k.copy(), self.g.copy(), self.level.copy(),
                self.cost.copy(), self.S.copy(), self.offbeats.copy(), self.hits.copy(), self.slots.copy(), self.n,
                self.t0, self.cost_time.copy(), self.cost_pat.copy(), self.p.copy())

    def restore(self, snap: tuple) -> None:
        (self.P, self.a, self.o, self.k, self.g, self.level, self.cost, self.S, self.offbeats, self.hits,
         self.slots, self.n, self.t0, self.cost_time, self.cost_pat, self.p) = snap

    # -- reading ---------------------------------------------------------------------
    def beat_time(self, i: int, beat: float) -> float:
        """Seconds (the clock's scale) of beat position `beat` on agent i's grid."""
        return self.t0 + float(self.a[i] + self.P[i] * beat)

    def swing(self, i: int) -> float:
        """Agent i's swing ratio (long / short eighth), 1.0 straight or for a triple agent."""
        if self.fam[i] != 0 or self.offbeats[i] == 0:
            return 1.0
        o = float(self.o[i])
        return o / (1.0 - o)


BEND_GAIN, BEND_RMS = 0.5, 0.02  # how much better a quadratic must fit (squared residuals); the straight
# line's rms residual (of a beat) below which no quadratic is tried


def bent_period(x: np.ndarray, t: np.ndarray, w8: np.ndarray, period: float) -> float:
    """An agent's period as it is now: where its onsets (beat positions x, seconds t, both from the last
    onset; recency weights w8) bend away from its straight grid line (an accelerando, a ritardando), the
    slope at the last onset of a weighted quadratic fit, if that explains them much better; else `period`."""
    sw = w8.sum()
    xm, tm = (w8 @ x) / sw, (w8 @ t) / sw
    dx = x - xm
    var = w8 @ (dx * dx)
    if var <= 0:
        return period
    slope = (w8 @ (dx * (t - tm))) / var
    r = t - tm - slope * dx
    r1 = float(w8 @ (r * r))
    if r1 < (BEND_RMS * period) ** 2 * sw:  # on its line: no bend worth a quadratic
        return period
    A = np.stack([np.ones(len(x)), x, x * x], axis=1)
    Aw = A * w8[:, None]
    try:
        coef = np.linalg.solve(Aw.T @ A, Aw.T @ t)
    except np.linalg.LinAlgError:
        return period
    r = t - A @ coef
    r2 = float(w8 @ (r * r))
    if r2 < BEND_GAIN * r1 and 0.8 * period < coef[1] < 1.25 * period:
        return float(coef[1])
    return period
