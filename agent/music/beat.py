"""The player's beat, metre, swing and downbeat from onsets: multi-hypothesis tracking with learnt scorers.

The engine's tracker (agent/live/engine.py: BeatTracker, TempoFollower); it replaced the IOI-clustering
tracker of 4730ef6 (bench_beat's baseline row). Figures: BENCHMARKS.md, "The player's beat in every metre".
`BeatTracker.onset(t_s, pitch=, velocity=)` takes each note-on (seconds, the clock's scale) and updates the
estimate at once. Written here because what exists for symbolic onsets imports an audio stack (librosa,
madmom) or works offline on a whole piece; the live agent needs a small incremental estimator without torch.

1. Onsets closer than `chord_s` are one event (a chord); one closer than `grace_s` after the last is that
   note's grace note, so the event moves to the main note.
2. A bank of agents (pulse.py), as in Dixon's BeatRoot (Dixon 2001): every beat period class from 50 to
   200 bpm, duple divisions (an off-beat learnt from the onsets: straight or swung eighths) or triple ones
   (triplets, compound metres), and every place the phrase's first onset can take (a pickup).
3. Each agent quantises each onset to its grid and pays a cost in nats: a Gaussian timing term (Cemgil,
   Kappen, Desain & Barber 2000) and the pattern's probability under Temperley's generative metre model
   (Temperley 2007, "Music and Probability"). Its grid is a recency-weighted least-squares line through its
   own onsets (rubato, +-10 % drift); a bend off the line (accelerando, ritardando) is followed by a
   quadratic (pulse.bent_period).
4. A learnt scorer (a conditional logit trained on the corpus' bar lines by scripts/train_beat.py, tunes
   split from the benchmark's; beat_weights.json) scores every agent on its costs, level probabilities, a
   tempo prior (Parncutt 1994, Moelants 2002) and where the accents fall on its grid (beat_features.py).
   The confidence is the posterior mass of the agents agreeing with the winner's beat; the trusted beat
   is kept unless beaten by `hysteresis` logits, and below `min_confidence` the last trusted estimate (or
   the configured tempo) is kept.
5. The metre, the division and the downbeat (metre.py): the best few distinct beats are each read as bars
   of 2, 3 and 4 beats at every phase, and a second learnt scorer (metre_weights.json) picks one: accents
   at the bar's period, rhythm and pitch repeating at the bar's lag, the phrase starting on a downbeat or
   a pickup before one, onsets on the beat's thirds (a jig) or halves (a reel), the beat score. It may
   pick another beat than step 4's winner (a jig's dotted quarter over its quarter); the trusted bar is
   kept unless beaten by its own hysteresis. Without the weights files (learned=False, bars=False) the
   hand-set cost and prior, and the accent template (metre.accent_bars), decide.
The swing ratio is the chosen agent's learnt off-beat, o / (1 - o). A silence longer than
`phrase_gap_beats` starts a new phrase: the agents start again from its first onset, with a bonus for
the tempo and division already trusted.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.music import beat_features, metre
from agent.music.pulse import MAX_BPM, MIN_BPM, Pulses, bent_period

TRIPLE_CENTRE = 0.7  # the compound beat's prior centre, relative to the duple one (dotted quarters are slower)
PRIOR_WEIGHT = 1.6  # nats per squared octave away from the prior centre
TRIPLE_COST = 0.6  # nats: a tie between a swung duple beat and a triple one goes to the duple
CONTINUITY = 3.0  # nats: a new phrase's bonus for the tempo and division already trusted
TEMPERATURE = 2.0  # the costs are summed over correlated onsets: the posterior is flattened by this
AGREE_PERIOD, AGREE_PHASE = 0.07, 0.12  # relative period and beat phase within which two agents agree
MIN_EVENTS = 4  # events before the first guess: three intervals could be a dotted rhythm
WEIGHTS = Path(__file__).with_name("beat_weights.json")  # the learnt scorers (scripts/train_beat.py)
BAR_WEIGHTS = Path(__file__).with_name("metre_weights.json")
BEND_DECAY = 0.85  # the quadratic fit's memory per onset (pulse.bent_period)
BEND_MIN_EVENTS = 10  # a phrase's first few onsets, with their jitter, do not bend the line
SHORTLIST = 40  # agents scored on the phrase's accents as well as the bank's features (per-onset cost)
HYSTERESIS = 1.0  # logits: the agent that carries the trusted estimate keeps it unless beaten by this much
LEARNED_CONTINUITY = 2.0  # logits: a new phrase's bonus for the tempo and division already trusted


_WEIGHTS = beat_features.load_weights(WEIGHTS, HYSTERESIS, LEARNED_CONTINUITY)
_BAR_WEIGHTS = metre.load_bar_weights(BAR_WEIGHTS)

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
                 phrase_gap_beats: float = 4.0, learned: bool | dict = True,
                 bars: bool | dict = True) -> None:
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
        self._bar_model = (_BAR_WEIGHTS if learned is not False else None) if bars is True else (bars or None)
        self._bars_key, self._bars_val = None, (0, 4, 0)
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
        w, bpb, downbeat = self._metre(score, self._winner(score))
        period = self._local_period(w, float(bank.P[w]))
        beat = math.floor(float(bank.g[w]) + 1e-6)
        return Estimate(period, bank.beat_time(w, beat), self._confidence(score, w), self._n, bpb,
                        3 if bank.fam[w] == 1 else 2, bank.swing(w), bank.beat_time(w, downbeat))

    def _winner(self, score: np.ndarray) -> int:
        """The best-scoring agent; with the learnt scorer, the one carrying the trusted beat unless clearly
        beaten (hysteresis; not one held at its period class's edge: it cannot follow the tempo further)."""
        w = int(np.argmax(score))
        e = self.estimate
        if self._model is not None and e is not None:
            keep = self._agreeing(e.period_s, e.beat_s) & self._bank.free()
            if keep.any() and not keep[w]:
                k = int(np.argmax(np.where(keep, score, -np.inf)))
                if score[w] - score[k] < self._model["hysteresis"]:
                    w = k
        return w

    def _confidence(self, score: np.ndarray, w: int) -> float:
        """The posterior mass of the agents agreeing with w's beat (period and phase), less for few events."""
        bank = self._bank
        post = np.exp(score - score.max())
        x = (self.onsets[-1] - bank.t0 - bank.a) / bank.P
        d = x - x[w]
        agree = (np.abs(np.log(bank.P / bank.P[w])) < AGREE_PERIOD) & (np.abs(d - np.rint(d)) < AGREE_PHASE)
        return float(post[agree].sum() / post.sum()) * min(1.0, (self._n - 1) / 6.0)

    def _metre(self, score: np.ndarray, w: int) -> tuple[int, int, int]:
        """(the agent, beats a bar, the beat index of the last bar line at or before the last event on its
        grid): the learnt bar scorer's pick (metre.py) over the best few beats, else w read by accents.
        Weighed again at each new beat of w (or a new w), not each event."""
        key = (w, math.floor(float(self._bank.g[w]) + 1e-6), self._bank.t0)
        if key != self._bars_key:
            self._bars_key = key
            self._bars_val = self._bar_choice(score, w) if self._bar_model else (w,) + self._bars(w)
        return self._bars_val

    def bar_hypotheses(self, score: np.ndarray, w: int) -> tuple[list[int], np.ndarray]:
        """(candidate agents, [candidates * len(metre.HYPS), len(metre.BAR_NAMES)] their bar features)."""
        bank, order = self._bank, self._order()
        c = np.array(self._candidates(score, w) if self._n >= metre.BAR_MIN_EVENTS else [w])
        rows = np.ix_(c, order)
        X = metre.bar_features(self._G[rows], self._LEV[rows], self._rows(1.0), bank.P[c],
                               np.maximum(score[c] - score.max(), -30.0), bank.fam[c] == 1, bank.g0[c],
                               bank.p[c], np.stack([bank.cost_time[c], bank.cost_pat[c]], axis=1))
        return list(c), X

    def _candidates(self, score: np.ndarray, w: int) -> list[int]:
        """w and the next best agents, one per distinct beat (period, phase and division), metre.CANDIDATES."""
        bank = self._bank
        taken = np.zeros(bank.K, dtype=bool)
        out = []
        for k in [w] + list(np.argsort(-score)[:SHORTLIST]):
            if taken[k] or not np.isfinite(score[k]):
                continue
            out.append(int(k))
            if len(out) == metre.CANDIDATES:
                break
            beat = math.floor(float(bank.g[k]) + 1e-6)
            taken |= self._agreeing(float(bank.P[k]), bank.beat_time(k, beat)) & (bank.fam == bank.fam[k])
        return out

    def _bar_choice(self, score: np.ndarray, w: int) -> tuple[int, int, int]:
        cands, X = self.bar_hypotheses(score, w)
        s = X @ self._bar_model["wz"] + self._bar_model["w0"]
        h = int(np.argmax(s))
        prev = self._kept_bar(cands)
        if prev is not None and s[h] - s[prev] < self._bar_model["hysteresis"]:
            h = prev
        c = cands[h // len(metre.HYPS)]
        m, r = metre.HYPS[h % len(metre.HYPS)]
        last = math.floor(float(self._bank.g[c]) + 1e-6)
        return c, m, last - ((last - r) % m)

    def _kept_bar(self, cands: list[int]) -> int | None:
        """The hypothesis that is the trusted estimate's beat, division, metre and bar line, if among them."""
        e, bank = self.estimate, self._bank
        if e is None or e.downbeat_s is None:
            return None
        for i, c in enumerate(cands):
            if (bank.fam[c] == 1) != (e.division == 3) or not self._agreeing(e.period_s, e.beat_s)[c]:
                continue
            x = (e.downbeat_s - bank.t0 - bank.a[c]) / bank.P[c]  # the trusted bar line on c's grid
            b = int(np.rint(x))
            if abs(x - b) < AGREE_PHASE and e.beats_per_bar in (2, 3, 4):
                return i * len(metre.HYPS) + metre.HYPS.index((e.beats_per_bar, b % e.beats_per_bar))
        return None

    def _local_period(self, w: int, period: float) -> float:
        """The winner's period as it is now (pulse.bent_period: a bend of its onsets off its line), from
        BEND_MIN_EVENTS events."""
        n = min(self._n, len(self._times))
        if n < BEND_MIN_EVENTS:
            return period
        order = self._order()
        x = self._G[w, order] - self._G[w, order[-1]]
        return bent_period(x, self._times[order] - self._times[order[-1]], self._bend_w[-n:], period)

    def _rows(self, period: float) -> np.ndarray:
        """[events, 4] the phrase's events' rows (beat_features.event_row), the last one's length a beat."""
        order = self._order()
        f = self._feat[order[-1]]
        return np.vstack([self._R[order[:-1]], beat_features.event_row(period, f[0], f[1], f[2])])

    def _bars(self, w: int) -> tuple[int, int]:
        """Without the bar scorer: (beats a bar, the last bar line's beat index) on w's grid, by accents."""
        order = self._order()
        bpb, r = metre.accent_bars(self._G[w, order], self._LEV[w, order], self._rows(float(self._bank.P[w])),
                                   float(self._bank.P[w]), self._bank.fam[w] == 1)
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
