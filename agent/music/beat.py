"""The player's beat: period and phase estimated from note onsets, per onset.

`BeatTracker.onset(t_s)` takes each note-on's arrival time (seconds, the
clock's scale) and updates the estimate at once (~0.4 ms median on a loaded
2-core machine): no waiting for a phrase to end. Written here rather than taken
from a library because what exists for symbolic onsets either imports a
large stack for audio (librosa, madmom) or works offline on a whole piece;
the live agent needs a small incremental estimator without torch.

How (inter-onset-interval clustering, then a fit to the eighth grid):
1. Onsets closer than `chord_s` are one onset (a chord, a spread hand).
2. The tactus: every adjacent inter-onset interval (IOI) of the recent onsets
   votes for candidate beat periods between 50 and 200 bpm, most for the
   period it equals, less for the periods it is a half, double, dotted or
   longer multiple of (melodies move mostly on the beat: the most frequent
   IOI level is the beat); a broad prior around `prior_bpm` breaks ties
   between octaves.
3. The fit: the onsets of the current phrase are numbered on an eighth-note
   grid of that period and a recency-weighted least-squares line
   t = a + u * n gives the eighth `u` (so the period is 2u, refined well
   below the candidate spacing) and the phase `a`. Which eighths are beats
   is the parity carrying more onset weight (more notes start on the beat).
   The recency weight (`decay` per onset) lets it follow an accelerando.
4. Confidence (0..1) is high when the onsets sit on the fitted grid (small
   residual), there are enough of them, and the winning period clearly beats
   its octave neighbours. Below `min_confidence` the last trusted estimate
   (or the configured tempo) is kept: a first phrase or rubato does not
   throw the grid around.

A silence longer than `phrase_gap_beats` starts a new phrase: the fit uses
only the current phrase once it has a few onsets (the player may come back
at another phase), the period votes use the recent onsets of both.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_BPM, MAX_BPM = 50.0, 200.0
# (multiple of the beat period an IOI may be, its vote): the beat itself counts most
RATIOS = ((1.0, 1.0), (0.5, 0.45), (2.0, 0.45), (1.5, 0.3), (0.75, 0.15), (3.0, 0.25), (4.0, 0.2))
SIGMA = 0.045  # relative tolerance of an IOI to a multiple (humanised timing is a few percent)
CONTINUITY, CONTINUITY_WEIGHT = 0.1, 0.6  # log-width and weight of the preference for the current tempo
CANDIDATES = np.geomspace(60.0 / MAX_BPM, 60.0 / MIN_BPM, 160)  # beat periods, seconds (~0.9 % apart)
_CENTRES = np.array([m for m, _ in RATIOS])[:, None] * CANDIDATES[None, :]  # [ratio, candidate] seconds
_INV_WIDTH = 1.0 / (SIGMA * _CENTRES)
_VOTES = np.array([v for _, v in RATIOS])


@dataclass(frozen=True)
class Estimate:
    """One tempo estimate: `period_s` a beat, `beat_s` the time of one beat, `confidence` 0..1."""

    period_s: float
    beat_s: float
    confidence: float
    onsets: int

    @property
    def bpm(self) -> float:
        return 60.0 / self.period_s


class BeatTracker:
    """Beat period and phase from onsets; see the module docstring. Thread-safe reads."""

    def __init__(self, default_bpm: float = 100.0, *, prior_bpm: float = 100.0, chord_s: float = 0.05,
                 window: int = 16, decay: float = 0.85, min_confidence: float = 0.35,
                 phrase_gap_beats: float = 3.0) -> None:
        self.default_bpm = float(default_bpm)
        self.prior_bpm = float(prior_bpm)
        self.chord_s = chord_s
        self.decay = decay
        self.min_confidence = min_confidence
        self.phrase_gap_beats = phrase_gap_beats
        self.onsets: deque[float] = deque(maxlen=window)
        self._phrase_start = 0  # index (in onsets ever seen) of the current phrase's first onset
        self._seen = 0
        self._lock = threading.Lock()
        self.estimate: Estimate | None = None  # the last trusted one
        self.last: Estimate | None = None  # the last one computed, trusted or not
        self.updates = 0
        # a broad prior (one octave, log scale) around prior_bpm: it only breaks near-ties
        self._prior = np.exp(-0.5 * np.log2(CANDIDATES * self.prior_bpm / 60.0) ** 2)

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
    def onset(self, t_s: float) -> Estimate | None:
        """A note-on at t_s (seconds). Returns the new trusted estimate, or None if it did not change."""
        with self._lock:
            if self.onsets and t_s - self.onsets[-1] < self.chord_s:
                return None  # part of the chord already counted
            if self.onsets and t_s - self.onsets[-1] > self.phrase_gap_beats * self.period_s():
                self._phrase_start = self._seen
            self.onsets.append(float(t_s))
            self._seen += 1
            est = self._estimate()
            self.last = est
            if est is None or est.confidence < self.min_confidence:
                return None
            self.estimate = est
            self.updates += 1
            return est

    # -- the estimator ---------------------------------------------------------------
    def _period_scores(self, iois: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Votes of the IOIs for each candidate period, times the prior."""
        z = (iois[:, None, None] - _CENTRES) * _INV_WIDTH  # [ioi, ratio, candidate]
        score = np.einsum("i,r,irc->c", weights, _VOTES, np.exp(-0.5 * z * z))
        prior = self._prior
        if self.estimate is not None and self.estimate.onsets >= 6:  # keep the beat level already heard well
            near = np.exp(-0.5 * (np.log(CANDIDATES / self.estimate.period_s) / CONTINUITY) ** 2)
            prior = prior * (1.0 - CONTINUITY_WEIGHT + CONTINUITY_WEIGHT * near)
        return score * prior

    def _estimate(self) -> Estimate | None:
        t = np.asarray(self.onsets)
        if len(t) < 5:  # four intervals before the first guess: two could be a dotted rhythm
            return None
        iois = np.diff(t)
        ages = np.arange(len(iois) - 1, -1, -1)
        weights = self.decay ** ages
        keep = iois < 2.5 * CANDIDATES[-1]  # a long pause between phrases is no IOI
        if keep.sum() < 2:
            return None
        # a longer interval is a stronger accent (a note followed by a longer gap stands out): the beat level
        # outweighs a run of eighths that happens to be the most recent thing played
        scores = self._period_scores(iois[keep], (weights * iois)[keep])
        best = int(np.argmax(scores))
        period = float(CANDIDATES[best])
        # the octave neighbours' best scores: a clear winner is a confident one
        rival = max(self._score_near(scores, period * 2), self._score_near(scores, period / 2))
        margin = min(1.0, max(0.0, 2.0 * (1.0 - rival / scores[best]))) if scores[best] > 0 else 0.0
        # the fit uses the current phrase if it has enough onsets, else all of the window
        n_phrase = self._seen - self._phrase_start
        seg = t[-n_phrase:] if n_phrase >= 4 else t
        fit = self._fit(seg, period / 2)
        if fit is None:
            return None
        u, a, n, rms = fit
        if not MIN_BPM * 0.9 <= 30.0 / u <= MAX_BPM * 1.1:
            return None
        w = self.decay ** (len(seg) - 1 - np.arange(len(seg)))
        even = float(w[n % 2 == 0].sum())
        odd = float(w[n % 2 == 1].sum())
        parity = 0 if even >= odd else 1
        n_last = int(n[-1])
        n_beat = n_last if n_last % 2 == parity else n_last - 1
        beat_s = a + u * n_beat
        fit_q = math.exp(-0.5 * (rms / (0.08 * u)) ** 2)
        count_q = min(1.0, (len(seg) - 1) / 5.0)
        conf = fit_q * count_q * margin
        return Estimate(2.0 * u, float(beat_s), float(conf), len(seg))

    @staticmethod
    def _score_near(scores: np.ndarray, period: float) -> float:
        if not CANDIDATES[0] * 0.97 <= period <= CANDIDATES[-1] * 1.03:
            return 0.0
        i = int(np.argmin(np.abs(np.log(CANDIDATES / period))))
        return float(scores[max(0, i - 2):i + 3].max())

    def _fit(self, t: np.ndarray, u0: float):
        """Number the onsets on an eighth grid of u0 and fit t = a + u n (weighted). (u, a, n, rms) or None."""
        n = np.zeros(len(t), dtype=np.int64)
        for i in range(1, len(t)):
            n[i] = n[i - 1] + max(1, int(round((t[i] - t[i - 1]) / u0)))
        w = self.decay ** (len(t) - 1 - np.arange(len(t)))
        sw = w.sum()
        nm, tm = (w * n).sum() / sw, (w * t).sum() / sw
        var = (w * (n - nm) ** 2).sum()
        if var <= 0:
            return None
        u = float((w * (n - nm) * (t - tm)).sum() / var)
        if u <= 0:
            return None
        a = float(tm - u * nm)
        resid = t - (a + u * n)
        rms = float(math.sqrt((w * resid ** 2).sum() / sw))
        if rms > 0.04 * u and len(t) >= 6:
            # the tempo is moving (accelerando, ritardando): a quadratic fit, if it explains the
            # onsets much better, gives the eighth as it is now (its slope at the last onset)
            x = (n - n[-1]).astype(float)  # 0 at the last onset
            A = np.stack([np.ones_like(x), x, x * x], axis=1) * np.sqrt(w)[:, None]
            coef, *_ = np.linalg.lstsq(A, t * np.sqrt(w), rcond=None)
            r2 = t - (coef[0] + coef[1] * x + coef[2] * x * x)
            rms2 = float(math.sqrt((w * r2 ** 2).sum() / sw))
            if rms2 < 0.5 * rms and coef[1] > 0:
                u = float(coef[1])
                a = float(coef[0] - u * n[-1])  # the local grid through the last onset's fit
                return u, a, n, rms2
        return u, a, n, rms


class TempoFollower:
    """Keeps a TempoMap on the player's beat: each trusted estimate sets its tempo and phase."""

    def __init__(self, tempo_map, tracker: BeatTracker) -> None:
        self.tempo = tempo_map
        self.tracker = tracker

    def onset(self, t_s: float) -> bool:
        """Feed one player note-on; True if the tempo map moved."""
        est = self.tracker.onset(t_s)
        if est is None:
            return False
        self.tempo.align(est.bpm, est.beat_s)
        return True
