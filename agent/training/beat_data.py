"""Training the beat tracker's hypothesis scorer on the corpus' own bar lines.

Tunes come from agent/training/beat_corpus.py: `load_train()` (the training set) never
holds a tune of `load()` (the benchmark's set): the split is by tune. Each
training tune is rendered as bench_beat renders its tunes (`render`, shared:
plain, rubato, swung; a felt tempo drawn from the kind's range), fed to the
tracker one note-on at a time, and at sampled events every agent of the pulse
bank gives its feature row (agent/music/beat_features.py) and a label: does
its period match the felt beat there (within 8 %; in 2/2 the half or the
quarter), does its beat fall on a true beat (within 10 % of a beat) and is
its division the tune's (triple in compound metres, duple otherwise). The
scorer is a conditional logit over the agents of an event (McFadden's choice
model): P(agent) = softmax(w . f) and the loss is -log of the probability mass
of the right agents, fitted with Adam and a small L2 penalty in numpy.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np

from agent.music.beat_features import NAMES

RANGES = {"chorale": (56, 110), "4/4": (70, 150), "2/2": (56, 110), "2/4": (70, 150), "3/4": (60, 180),
          "6/8": (56, 130), "9/8": (56, 130), "12/8": (56, 110)}  # felt bpm by kind (within 56-180)
TEMPO_TOL, PHASE_TOL = math.log(1.08), 0.1


def group(tune: dict) -> str:
    return "chorale" if tune["kind"] == "chorale" else tune["metre"]


def phrase_end_offsets(tune: dict) -> list[float]:
    """Quarter offsets where a phrase ends (the written ends' note ends; folk tunes every 4 bars)."""
    notes = tune["notes"]
    ends = {notes[i][0] + notes[i][1] for i in tune["phrase_ends"]}
    if tune["kind"] != "chorale":
        last = notes[-1][0] + notes[-1][1]
        b = tune["bar0_q"] + 4 * tune["bar_q"]
        while b < last:
            ends.add(b)
            b += 4 * tune["bar_q"]
    return sorted(ends)


def render(tune: dict, felt_bpm: float, rubato: bool, swing: float, rng: random.Random, with_q: bool = False):
    """(events [(t_s, pitch, velocity)], time_of(q) -> seconds) for the tune played once; with_q: the events
    are (t_s, pitch, velocity, written offset in quarters)."""
    q_s = 60.0 / (felt_bpm * tune["beat_q"])  # seconds a quarter, before the curve
    last_q = tune["notes"][-1][0] + tune["notes"][-1][1] + tune["bar_q"]
    # the tempo curve: seconds per quarter at each 1/8-quarter step
    step = 0.125
    n = int(last_q / step) + 2
    rate = np.ones(n)
    if rubato:
        ends = phrase_end_offsets(tune)
        starts = [0.0] + ends
        for s, e in zip(starts, ends + [last_q]):  # a drift within each phrase: linear, +-10 %
            i0, i1 = int(s / step), min(n, int(e / step) + 1)
            drift = rng.uniform(-0.1, 0.1)
            rate[i0:i1] *= 1.0 + drift * np.linspace(0, 1, max(1, i1 - i0))
        for e in ends:  # phrase-final lengthening over the phrase's last beat, up to 50 %
            amount = rng.uniform(0.15, 0.5)
            i1 = min(n, int(e / step))
            i0 = max(0, i1 - int(tune["beat_q"] / step))
            rate[i0:i1] *= 1.0 + amount * np.linspace(0.2, 1, max(1, i1 - i0))
    cum = np.concatenate([[0.0], np.cumsum(rate * step * q_s)])

    def time_of(q: float) -> float:
        x = q / step
        i = min(int(x), n - 1)
        return float(cum[i] + (x - i) * (cum[i + 1] - cum[i]))

    events = []
    for off, length, pitch, chord, grace in tune["notes"]:
        q = off
        in_beat = (off - tune["bar0_q"]) % 1.0
        if swing > 1.0 and abs(in_beat - 0.5) < 1e-6:  # an off-beat eighth, swung
            q = off - 0.5 + swing / (1.0 + swing)
        t = time_of(q)
        if grace:
            t -= 0.045
        if rubato:
            t += rng.gauss(0.0, 0.015)
            bar_pos = (off - tune["bar0_q"]) % tune["bar_q"]
            vel = int(min(127, max(20, rng.gauss(72, 12) + (8 if bar_pos < 1e-6 else 0))))
        else:
            vel = 80
        for c in range(int(chord)):
            tc = t + c * 0.02 / max(1, chord - 1) if chord > 1 else t
            events.append((tc, pitch - 4 * c, vel, off) if with_q else (tc, pitch - 4 * c, vel))
    events.sort()
    return events, time_of


def labels(tracker, tune: dict, q: float, time_of) -> np.ndarray:
    """[agents] bool: the agent's period is the felt beat's (8 %), its beat is on a true beat (10 %) and its
    division family is the tune's (a triple agent in x/8 compound metres, a duple one, swung or not, else)."""
    bank = tracker._bank
    beat_q = tune["beat_q"]
    units = [beat_q] + ([beat_q / 2.0] if tune["metre"] == "2/2" else [])
    ok = np.zeros(bank.K, dtype=bool)
    ab = bank.t0 + bank.a + bank.P * np.floor(bank.g + 1e-6)  # each agent's last beat, seconds
    for u in units:
        qb = tune["bar0_q"] + math.floor((q - tune["bar0_q"]) / u) * u  # the true beat at or before the event
        tb = time_of(max(0.0, qb))
        period = time_of(max(0.0, qb) + u) - tb
        tempo = np.abs(np.log(bank.P / period)) < TEMPO_TOL
        x = (ab - tb) / period
        ok |= tempo & (np.abs(x - np.rint(x)) < PHASE_TOL)
    return ok & (bank.fam == (1 if tune["division"] == 3 else 0))


def collect(tunes: list[dict], seed: int = 1, per_run: int = 24, every: int = 2, start: int = 6,
            tracker_factory=None, sample=None):
    """(X [samples, agents, D] float32, Y [samples, agents] bool, meta [(group, variant)]) from every tune
    rendered plain and with rubato (and swung, for 4/4 and 2/4 folk tunes). `sample(tracker, tune, q,
    time_of)` gives one sample's (X, Y) or None (default: the beat scorer's features and labels)."""
    from agent.music.beat import BeatTracker

    factory = tracker_factory or (lambda: BeatTracker(100.0, learned=False))
    sample = sample or _beat_sample
    rng = random.Random(seed)
    X, Y, meta = [], [], []
    for tune in tunes:
        key = group(tune)
        lo, hi = RANGES[key]
        variants = [(False, 1.0), (True, 1.0)]
        if key in ("4/4", "2/4"):
            variants += [(False, rng.uniform(1.5, 2.5)), (True, rng.uniform(1.5, 2.5))]
        for rubato, swing in variants:
            felt = rng.uniform(lo, hi)
            events, time_of = render(tune, felt, rubato, swing, random.Random(rng.randrange(1 << 30)), with_q=True)
            tr = factory()
            taken = []
            n_ev = 0
            last_t = -1.0
            for t, pitch, vel, q in events:
                tr.onset(t, pitch=pitch, velocity=vel)
                if t - last_t >= 0.05:
                    n_ev += 1
                last_t = t
                if n_ev < start or n_ev % every or tr._n < 4:
                    continue
                xy = sample(tr, tune, q, time_of)
                if xy is not None:
                    taken.append(xy)
            if len(taken) > per_run:
                idx = sorted(rng.sample(range(len(taken)), per_run))
                taken = [taken[i] for i in idx]
            for f, y in taken:
                X.append(f)
                Y.append(y)
                meta.append((key, "rubato" if rubato else "plain") + (("swung",) if swing > 1 else ()))
    return np.stack(X), np.stack(Y), meta


def _beat_sample(tr, tune: dict, q: float, time_of):
    y = labels(tr, tune, q, time_of)
    return (tr.window_features().astype(np.float32), y) if y.any() else None


def bar_sample(tr, tune: dict, q: float, time_of):
    """The bar scorer's sample at an event: ([CANDIDATES * len(HYPS), len(BAR_NAMES)] features (rows of a
    missing candidate NaN), [same] labels: the candidate's beat right (`labels`), the bar's length the
    tune's (2/4, 6/8, 2/2: 2 or 4) and its last bar line within 10 % of a beat of a true one: 2; the beat
    and the bar's length right, its phase not: 1; else 0); None if no hypothesis is right."""
    from agent.music import metre

    score = tr._scores()
    cands, F = tr.bar_hypotheses(score, tr._winner(score))
    ok = labels(tr, tune, q, time_of)
    bank, H = tr._bank, len(metre.HYPS)
    X = np.full((metre.CANDIDATES * H, F.shape[1]), np.nan, dtype=np.float32)
    X[:len(F)] = F
    Y = np.zeros(len(X), dtype=np.int8)
    bar0, bar_q, beat_q = tune["bar0_q"], tune["bar_q"], tune["beat_q"]
    k = math.floor((q - bar0) / bar_q)
    bars = np.array([time_of(bar0 + j * bar_q) for j in (k - 1, k, k + 1) if bar0 + j * bar_q >= 0])
    qb = max(0.0, bar0 + math.floor((q - bar0) / beat_q) * beat_q)
    spb = time_of(qb + beat_q) - time_of(qb)
    for i, c in enumerate(cands):
        if not ok[c]:
            continue
        bpb = 4 if tune["metre"] == "2/2" and bank.P[c] < 0.75 * spb else tune["bpb"]
        last = math.floor(float(bank.g[c]) + 1e-6)
        for h, (m, r) in enumerate(metre.HYPS):
            if m == bpb or (bpb == 2 and m == 4):
                t = bank.beat_time(c, last - ((last - r) % m))
                Y[i * H + h] = 2 if len(bars) > 0 and np.abs(bars - t).min() < 0.1 * spb else 1
    return (X, Y) if (Y == 2).any() else None


def fit(X: np.ndarray, Y: np.ndarray, l2: float = 1e-3, steps: int = 600, lr: float = 0.05,
        seed: int = 0, names=NAMES, weight=None, partial: float = 0.5) -> dict:
    """The conditional logit's weights on standardised features: {names, mean, std, w, loss, accuracy}.
    Y bool (the right choices), or int (2 right, 1 partly right: `partial` times the loss of missing those
    too is added); weight [samples] each sample's weight (default 1)."""
    D = X.shape[2]
    valid = ~np.isnan(X[:, :, 0])  # a NaN row is a hypothesis that was not there (bar_sample)
    flat = X[valid]
    mean = flat.mean(axis=0)
    std = flat.std(axis=0) + 1e-6
    Z = np.nan_to_num(((X - mean) / std).astype(np.float32))
    off = np.where(valid, 0.0, -1e9).astype(np.float32)
    w = np.zeros(D)
    m, v = np.zeros(D), np.zeros(D)
    b1, b2 = 0.9, 0.999
    Yf = (Y >= (2 if Y.dtype != bool else 1)).astype(np.float32)
    Y2 = (Y >= 1).astype(np.float32) if Y.dtype != bool else None
    sw = np.ones(len(X)) if weight is None else np.asarray(weight, dtype=float) * len(X) / np.sum(weight)
    for it in range(1, steps + 1):
        s = Z @ w.astype(np.float32) + off  # [N, K]
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        p = e / e.sum(axis=1, keepdims=True)
        pos = (p * Yf).sum(axis=1)
        loss = float(-(sw * np.log(np.maximum(pos, 1e-12))).mean() + l2 * (w @ w))
        # d(-log pos)/ds = p - (p*Y)/pos
        g_s = p - (p * Yf) / np.maximum(pos, 1e-12)[:, None]
        if Y2 is not None:
            pos2 = (p * Y2).sum(axis=1)
            g_s += partial * (p - (p * Y2) / np.maximum(pos2, 1e-12)[:, None])
        grad = np.einsum("nk,nkd->d", g_s * sw[:, None].astype(np.float32), Z) / len(Z) + 2 * l2 * w
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        w -= lr * (m / (1 - b1 ** it)) / (np.sqrt(v / (1 - b2 ** it)) + 1e-8)
    return {"names": list(names), "mean": mean.tolist(), "std": std.tolist(), "w": w.tolist(), "loss": loss,
            "accuracy": accuracy(X, Y, {"mean": mean, "std": std, "w": w})}


def accuracy(X: np.ndarray, Y: np.ndarray, model: dict, meta=None):
    """How often the top-scoring agent is a right one (overall, or per meta group)."""
    s = ((X - np.asarray(model["mean"])) / np.asarray(model["std"])) @ np.asarray(model["w"])
    s = np.where(np.isnan(s), -np.inf, s)
    top = np.argmax(s, axis=1)
    right = Y[np.arange(len(Y)), top] >= (2 if Y.dtype != bool else 1)
    if meta is None:
        return round(float(right.mean()), 4)
    by = defaultdict(list)
    for r, mt in zip(right, meta):
        by[" ".join(mt)].append(r)
    return {k: round(float(np.mean(v)), 3) for k, v in sorted(by.items())}
