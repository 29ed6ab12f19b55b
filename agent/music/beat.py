"""The player's beat, metre, swing and downbeat from onsets: multi-hypothesis tracking with a learnt scorer.

The engine's tracker (agent/live/engine.py: BeatTracker, TempoFollower). It
replaced the IOI-clustering tracker of 4730ef6 (read by scripts/bench_beat.py
as its baseline) once bench_beat (real corpus tunes in every metre, plain and
rubato, 56-180 felt bpm; full run 2026-12, late tempo octave plain/rubato,
baseline -> this) showed it at least as good in every metre: chorale
.89/.91 -> .94/.92, 4/4 reels .15/.19 -> .95/.93, swung 4/4 .00/.06 ->
.98/.94, 2/2 .49/.40 -> .85/.73, 2/4 0/0 -> .56/.64 (swung .94/.80), 3/4
airs .83/.65 -> .91/.66, 6/8 .01/0 -> .65/.62, 9/8 0/0 -> .80/.77, 12/8 0/0
-> 1.0/.94; its confidence means something (right 90 % of the time above
0.8, the old one 30 %); per onset p50 ~0.5 ms, p99 ~1.6 ms on a loaded
2-core machine. Still weak: the metre (2 vs 3 beats a bar, a jig's
division) and the downbeat (right 0.13-0.63), 3/4 airs with rubato.

`BeatTracker.onset(t_s, pitch=, velocity=)` takes each note-on (seconds, the
clock's scale) and updates the estimate at once: no waiting for a phrase to
end. Written here rather than taken from a library because what exists for
symbolic onsets either imports an audio stack (librosa, madmom) or works
offline on a whole piece; the live agent needs a small incremental
estimator without torch.

The method (multi-hypothesis tracking, each hypothesis a small probabilistic
metre model):
1. Onsets closer than `chord_s` are one event (a chord, a spread hand); one
   closer than `grace_s` after the last is that note's grace note or
   ornament, so the event moves to the main note (its time replaces the
   grace's).
2. A bank of agents (pulse.py), as in Dixon's BeatRoot (Dixon 2001, "Automatic
   extraction of tempo and beat from expressive performances"): every beat
   period class from 50 to 200 bpm, with duple divisions (an off-beat learnt
   from the onsets, so straight and swung eighths, ratio 1-2.5) or triple
   ones (triplets, the compound metres' eighths), and every place the
   phrase's first onset can take (a pickup starts off the beat).
3. Each agent quantises each onset to its grid and pays its cost in nats: a
   Gaussian timing term around its grid line (Cemgil, Kappen, Desain & Barber
   2000, "On tempo tracking: tempogram representation and Kalman filtering"),
   and the onset pattern's probability under Temperley's generative metre model
   (Temperley 2007, "Music and Probability": each slot of a metrical level holds
   an onset with that level's probability, so an empty beat costs and a beat
   too fast for the music is paid for in empty slots). Its grid is a
   recency-weighted least-squares line through its own quantised onsets,
   which follows rubato and +-10 % drift.
4. The felt beat is the agent a learnt scorer likes best (a conditional
   logit over the agents, trained on the corpus' own bar lines by
   scripts/train_beat.py, tunes split from the benchmark's; weights in
   beat_weights.json beside this file). Its features (beat_features.py) are
   the agent's timing and pattern costs, its level onset probabilities, a
   tempo prior (the tactus preference of Parncutt 1994 and Moelants 2002),
   and where the accents fall on its grid: long notes, loud ones, low ones,
   chords on its beats vs off them, syncopation, which inter-onset
   intervals its levels explain. The softmax over the agents is the
   posterior; the confidence is the mass of the agents that agree with the
   winner's beat (period within 7 %, phase within 0.12 beat). The trusted
   beat is kept unless another is ahead by `HYSTERESIS` logits (no
   flipping), and below `min_confidence` the last trusted estimate (or the
   configured tempo) is kept. Without the weights file (learned=False) the
   hand-set cost and prior of the first version decide.
5. The metre and downbeat (metre.py): the winner's beats are weighed by
   accent (an onset on the beat, its length, velocity, a low pitch, a chord)
   and matched against bars of 2, 3 and 4 beats at each phase, with how the
   beats' rhythms repeat at each bar length (bars repeat); weighed again at
   each new beat.
The swing ratio is the winner's learnt off-beat, o / (1 - o).

A silence longer than `phrase_gap_beats` starts a new phrase: the agents start
again from its first onset (the player may come back at another phase), with
a bonus for the tempo and division already trusted.
"""
from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.music import beat_features, metre
from agent.music.pulse import MAX_BPM, MIN_BPM, Pulses

TRIPLE_CENTRE = 0.7  # the compound beat's prior centre, relative to the duple one (dotted quarters are slower)
PRIOR_WEIGHT = 1.6  # nats per squared octave away from the prior centre
TRIPLE_COST = 0.6  # nats: a tie between a swung duple beat and a triple one goes to the duple
CONTINUITY = 3.0  # nats: a new phrase's bonus for the tempo and division already trusted
TEMPERATURE = 2.0  # the costs are summed over correlated onsets: the posterior is flattened by this
AGREE_PERIOD, AGREE_PHASE = 0.07, 0.12  # relative period and beat phase within which two agents agree
MIN_EVENTS = 4  # events before the first guess: three intervals could be a dotted rhythm
WEIGHTS = Path(__file__).with_name("beat_weights.json")  # the learnt scorer (scripts/train_beat.py)
BEND_DECAY, BEND_GAIN, BEND_RMS = 0.85, 0.5, 0.02  # the quadratic fit's memory per onset; how much better
# it must fit (squared residuals); the straight line's rms residual (of a
# beat) below which no quadratic is tried
BEND_MIN_EVENTS = 10  # a phrase's first few onsets, with their jitter, do not bend the line
SHORTLIST = 40  # agents scored on the phrase's accents as well as the bank's features (per-onset cost)
HYSTERESIS = 1.0  # logits: the agent that carries the trusted estimate keeps it unless beaten by this much
LEARNED_CONTINUITY = 2.0  # logits: a new phrase's bonus for the tempo and division already trusted


def load_weights(path: Path = WEIGHTS) -> dict | None:
    """The learnt scorer's weights, as arrays; None if there is no weights file."""
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    if list(d["names"]) != list(beat_features.NAMES):
        raise ValueError(f"{path}: its features {d['names']} are not beat_features.NAMES")
    return {"mean": np.asarray(d["mean"]), "std": np.asarray(d["std"]), "w": np.asarray(d["w"]),
            "hysteresis": float(d.get("hysteresis", HYSTERESIS)),
            "continuity": float(d.get("continuity", LEARNED_CONTINUITY))}


_WEIGHTS = load_weights()

__all__ = ["Estimate", "BeatTracker", "TempoFollower", "MIN_BPM", "MAX_BPM"]


@dataclass(frozen=True)
class Estimate:
    """One estimate of the player's time.

    `period_s` the felt beat (seconds), `beat_s` the time of one beat, `confidence` 0..1, `onsets` the
    events it rests on; `beats_per_bar` and `division` (2, or 3 in compound metres and triplets) the
    metre, `swing` the long/short eighth ratio (1.0 straight), `downbeat_s` the time of a bar line.
    """

    period_s: float
    beat_s: float
    confidence: float
    onsets: int
    beats_per_bar: int = 4
    division: int = 2
    swing: float = 1.0
    downbeat_s: float | None = None

    @property
    def bpm(self) -> float:
        return 60.0 / self.period_s


class BeatTracker:
    """The felt beat, metre, swing and downbeat from onsets; see the module docstring. Thread-safe reads."""

    def __init__(self, default_bpm: float = 100.0, *, prior_bpm: float = 100.0, chord_s: float = 0.05,
                 grace_s: float = 0.07, window: int = 48, min_confidence: float = 0.35,
                 phrase_gap_beats: float = 4.0, learned: bool | dict = True) -> None:
        self.default_bpm = float(default_bpm)
        self.prior_bpm = float(prior_bpm)
        self.chord_s, self.grace_s = chord_s, grace_s
        self.min_confidence = min_confidence
        self.phrase_gap_beats = phrase_gap_beats
        self.onsets: deque[float] = deque(maxlen=window)  # the events' times, seconds
        self._lock = threading.Lock()
        self.estimate: Estimate | None = None  # the last trusted one
        self.last: Estimate | None = None  # the last one computed, trusted or not
        self.updates = 0
        self._bank = Pulses()
        self._snap = None  # the bank before the last event (a grace note is undone from here)
        # the current phrase's events: per event (pitch, velocity, chord size), per agent (beat position, level)
        self._feat = np.zeros((window, 3))
        self._R = np.zeros((window, 4))  # per event, its row once its length is known (beat_features.event_row)
        self._bend_w = BEND_DECAY ** np.arange(window - 1, -1, -1.0)  # recency weights, the last onset's last
        self._G = np.zeros((self._bank.K, window))
        self._LEV = np.zeros((self._bank.K, window), dtype=np.int64)
        self._times = np.zeros(window)
        self._n = 0  # events in the current phrase
        centre = np.where(self._bank.fam == 0, 60.0 / self.prior_bpm, 60.0 / (self.prior_bpm * TRIPLE_CENTRE))
        self._prior = PRIOR_WEIGHT * np.log2(self._bank.P0 / centre) ** 2 + TRIPLE_COST * self._bank.fam
        self._carry = np.zeros(self._bank.K)  # the continuity bonus of the phrase under way
        self._model = (_WEIGHTS if learned is True else learned) or None
        if self._model is not None:
            self._wz = self._model["w"] / self._model["std"]  # standardising folded into the weights
            self._w0 = -float(self._model["mean"] @ self._wz)
            c0, c1 = beat_features.N_CONST
            self._const = beat_features.prior_features(self._bank.P0, self._bank.fam) @ self._wz[c0:c1] + self._w0
        self._carry_on = False
        self._bars_key, self._bars_val = None, (4, 0)
    # -- reading ----------------------------------------------------------------
    @property
    def bpm(self) -> float:
        e = self.estimate
        return e.bpm if e is not None else self.default_bpm

    @property
    def confidence(self) -> float:
        e = self.estimate
        return e.confidence if e is not None else 0.0

    def period_s(self) -> float:
        return 60.0 / self.bpm

    # -- input --------------------------------------------------------------------
    def onset(self, t_s: float, pitch: int | None = None, velocity: int | None = None) -> Estimate | None:
        """A note-on at t_s (seconds). Returns the new trusted estimate, or None if it did not change."""
        t = float(t_s)
        p = 60.0 if pitch is None else float(pitch)
        v = 80.0 if velocity is None else float(velocity)
        with self._lock:
            gap = t - self.onsets[-1] if self.onsets else math.inf
            if gap < self.chord_s:  # part of the chord already counted: it adds to the event's accent
                f = self._feat[(self._n - 1) % len(self._feat)]
                f[0], f[1], f[2] = min(f[0], p), max(f[1], v), f[2] + 1
                return None
            if gap < self.grace_s:  # the last event was a grace note: the event is this main note
                self._n -= 1
                self.onsets.pop()
                if self._snap is None:
                    self._bank.start(t)
                else:
                    self._bank.restore(self._snap)
                    self._step(t)
            elif gap > self.phrase_gap_beats * self.period_s() or self._n == 0:
                self._new_phrase(t)
            else:
                self._step(t)
            self._record(t, p, v)
            est = self._estimate()
            self.last = est
            if est is None or est.confidence < self.min_confidence:
                return None
            self.estimate = est
            self.updates += 1
            return est

    def _new_phrase(self, t: float) -> None:
        self._bank.start(t)
        self._snap = None
        self._n = 0
        self._carry = np.zeros(self._bank.K)
        e = self.estimate
        if e is not None:
            near = np.exp(-0.5 * (np.log(self._bank.P0 / e.period_s) / 0.06) ** 2)
            same = (self._bank.fam == (1 if e.division == 3 else 0))
            self._carry = -CONTINUITY * near * np.where(same, 1.0, 0.5)
        self._carry_on = e is not None

    def _step(self, t: float) -> None:
        self._snap = self._bank.snapshot()
        self._bank.step(t)

    def _record(self, t: float, pitch: float, velocity: float) -> None:
        i = self._n % len(self._times)
        if self._n > 0:  # the previous event's length is known now (its chord complete)
            j = (self._n - 1) % len(self._times)
            f = self._feat[j]
            self._R[j] = beat_features.event_row(t - self._times[j], f[0], f[1], f[2])
        self._times[i] = t
        self._feat[i] = (pitch, velocity, 1.0)
        self._G[:, i] = self._bank.g
        self._LEV[:, i] = self._bank.level
        self._n += 1
        self.onsets.append(t)

    # -- the estimate ------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        """Ring-buffer indices of the current phrase's events in the window, oldest first."""
        n = min(self._n, len(self._times))
        return (np.arange(self._n - n, self._n)) % len(self._times)

    def window_features(self) -> np.ndarray:
        """[agents, D] the scorer's features of every agent over the current phrase (beat_features.py)."""
        order = self._order()
        return beat_features.features(self._bank, self._R[order[:-1]], self._G[:, order], self._LEV[:, order])

    def _scores(self) -> np.ndarray:
        """[agents] log-odds of being the felt beat: the learnt scorer, else the hand-set cost and prior.
        The learnt one scores every agent on the bank's own features, then the SHORTLIST best of them (and
        those that carry the trusted estimate) on the phrase's accents too; the rest stay out (-inf)."""
        bank = self._bank
        if self._model is None:
            return -(bank.cost + self._prior + self._carry) / TEMPERATURE
        wz = self._wz
        part = (self._const + wz[0] * bank.cost_time + wz[1] * bank.cost_pat
                + wz[7] * beat_features.swing_feature(bank) + bank.p @ wz[8:11])
        if self._carry_on:
            part -= self._carry * (self._model["continuity"] / CONTINUITY)
        idx = np.argpartition(-part, SHORTLIST)[:SHORTLIST]
        e = self.estimate
        if e is not None:
            keep = self._agreeing(e.period_s, e.beat_s)
            keep[idx] = True
            idx = np.flatnonzero(keep)
        order = self._order()
        rows = np.ix_(idx, order)
        wf = beat_features.window_features(bank.P[idx], self._R[order[:-1]], self._G[rows], self._LEV[rows])
        score = np.full(bank.K, -np.inf)
        score[idx] = part[idx] + wf @ wz[beat_features.N_BANK:]
        return score

    def _agreeing(self, period: float, beat_s: float) -> np.ndarray:
        """[agents] bool: the agent's period within AGREE_PERIOD of `period` and a beat of it near beat_s."""
        bank = self._bank
        x = (beat_s - bank.t0 - bank.a) / bank.P
        return (np.abs(np.log(bank.P / period)) < AGREE_PERIOD) & (np.abs(x - np.rint(x)) < AGREE_PHASE)

    # -- the estimate ------------------------------------------------------------------
    def _estimate(self) -> Estimate | None:
        if self._n < MIN_EVENTS:
            return None
        bank = self._bank
        score = self._scores()
        w = int(np.argmax(score))
        e = self.estimate
        if self._model is not None and e is not None:  # hysteresis: the trusted beat stays unless clearly beaten
            keep = self._agreeing(e.period_s, e.beat_s) & self._bank.free()  # one held at its class's edge
            if keep.any() and not keep[w]:  # cannot follow the tempo further: it is not kept
                k = int(np.argmax(np.where(keep, score, -np.inf)))
                if score[w] - score[k] < self._model["hysteresis"]:
                    w = k
        post = np.exp(score - score[w])
        t_last = self.onsets[-1] - bank.t0
        x = (t_last - bank.a) / bank.P
        d = x - x[w]
        phase_ok = np.abs(d - np.rint(d)) < AGREE_PHASE
        agree = (np.abs(np.log(bank.P / bank.P[w])) < AGREE_PERIOD) & phase_ok
        conf = float(post[agree].sum() / post.sum())
        conf *= min(1.0, (self._n - 1) / 6.0)
        period = self._local_period(w, float(bank.P[w]))
        beat = math.floor(float(bank.g[w]) + 1e-6)
        division = 3 if bank.fam[w] == 1 else 2
        beat_now = math.floor(float(bank.g[w]) + 1e-6)
        key = (w, beat_now, self._bank.t0)
        if key != self._bars_key:  # the bar is weighed again at each new beat (or a new winner), not each event
            self._bars_key, self._bars_val = key, self._bars(w, period, division)
        bpb, downbeat = self._bars_val
        return Estimate(period, bank.beat_time(w, beat), conf, self._n, bpb, division, bank.swing(w),
                        bank.beat_time(w, downbeat))

    def _local_period(self, w: int, period: float) -> float:
        """The winner's period as it is now: where its onsets bend away from its straight grid line (an
        accelerando, a ritardando), the slope at the last onset of a recency-weighted quadratic fit, if that
        explains them much better (as the first tracker did); else its line's period."""
        n = min(self._n, len(self._times))
        if n < BEND_MIN_EVENTS:
            return period
        order = self._order()
        x = self._G[w, order] - self._G[w, order[-1]]
        t = self._times[order] - self._times[order[-1]]
        w8 = self._bend_w[-n:]
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
        A = np.stack([np.ones(n), x, x * x], axis=1)
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

    def _bars(self, w: int, period: float, division: int) -> tuple[int, int]:
        """(beats a bar, the beat index of the last bar line at or before the last event) on agent w's grid."""
        order = self._order()
        f = self._feat[order[-1]]
        R = np.vstack([self._R[order[:-1]], beat_features.event_row(period, f[0], f[1], f[2])])
        g = self._G[w, order]
        s, b0 = metre.strengths(g, self._LEV[w, order], metre.accents(R, period))
        mask = metre.patterns(g, b0, len(s)) if len(s) >= metre.REP_MIN_BEATS else None
        bpb, r, _ = metre.bars(s, b0, division == 3, mask)
        last = math.floor(float(self._bank.g[w]) + 1e-6)
        return bpb, last - ((last - r) % bpb)


class TempoFollower:
    """Keeps a TempoMap on the player's beat: each trusted estimate sets its tempo and phase, its
    division and swing, and its bar line; the bar's length too where `metre` is True (else the
    tempo map keeps the configured one)."""

    def __init__(self, tempo_map, tracker: BeatTracker, *, metre: bool = False) -> None:
        self.tempo = tempo_map
        self.tracker = tracker
        self.metre = metre

    def onset(self, t_s: float, pitch: int | None = None, velocity: int | None = None) -> bool:
        """Feed one player note-on; True if the tempo map moved."""
        est = self.tracker.onset(t_s, pitch=pitch, velocity=velocity)
        if est is None:
            return False
        self.tempo.align(est.bpm, est.beat_s, downbeat_s=est.downbeat_s, division=est.division, swing=est.swing,
                         beats_per_bar=est.beats_per_bar if self.metre else None)
        return True
