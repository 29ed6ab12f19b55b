"""Humanised copies of token pieces: a player's timing and touch, not a score's.

Training data comes from scores, on the tick grid, at one tempo, mostly at one
velocity. A keyboard player live is none of those: onsets and releases land a
tick or two either side of the grid, chord notes are not struck together,
velocities vary, and the tempo the listener measures drifts. `humanise` makes
such a copy of a piece at the note level and re-encodes it with the same
encoder the live listener uses (agent.music.tokens.encode), so the result is exactly
the kind of token stream live playing produces:

- tempo: the whole piece is stretched by a factor in [1/(1+tempo), 1+tempo]
  (log-uniform) and, on top, the tempo drifts linearly by up to +-tempo/2
  from the start of the piece to its end;
- onsets and releases: each moved by a whole number of ticks, normal with sd
  `onset_ticks / 2` (so mostly one tick, sometimes two), clipped to
  +-onset_ticks (releases likewise with release_ticks); a note keeps at least
  one tick;
- velocity: a per-piece offset (sd `velocity_sd`) plus a per-note one
  (sd `velocity_sd / 2`), clipped to 1..127.

numpy only: scripts/train.py (augmentation) and scripts/evaluate.py (a
humanised copy of the test split) both use it.
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from agent.music.tokens import Vocab, decode, encode

ONSET_TICKS = 2
RELEASE_TICKS = 2
VELOCITY_SD = 8.0
TEMPO = 0.08  # +-8 %
EVAL_SEED = 20241  # the fixed seed of the humanised test copy


def humanise(ids, vocab: Vocab, rng: np.random.Generator, *, onset_ticks: int = ONSET_TICKS,
             release_ticks: int = RELEASE_TICKS, velocity_sd: float = VELOCITY_SD,
             tempo: float = TEMPO) -> np.ndarray:
    """A humanised copy of one piece (token ids START ... END) as int32 ids START ... END."""
    notes = decode(ids, vocab)
    if not notes:
        return np.asarray(ids, dtype=np.int32).copy()
    res = vocab.resolution
    n = len(notes)
    span = max(max(nt.end for nt in notes), 1e-9)
    f0 = float(np.exp(rng.uniform(-np.log1p(tempo), np.log1p(tempo))))
    drift = float(rng.uniform(-tempo / 2, tempo / 2))

    def warp(t: np.ndarray) -> np.ndarray:
        """Beats -> beats under a tempo that goes from f0 * (1 - drift/2) to f0 * (1 + drift/2)."""
        return f0 * (t + drift * (t * t / (2 * span) - t / 2))

    def jitter(width: int) -> np.ndarray:
        if width <= 0:
            return np.zeros(n)
        return np.clip(np.rint(rng.normal(0.0, width / 2, n)), -width, width) / res

    start = warp(np.array([nt.start for nt in notes])) + jitter(onset_ticks)
    end = warp(np.array([nt.end for nt in notes])) + jitter(release_ticks)
    start = np.maximum(start, 0.0)
    end = np.maximum(end, start + 1.0 / res)
    vel = np.array([nt.velocity for nt in notes], dtype=float)
    vel += rng.normal(0.0, velocity_sd) + rng.normal(0.0, velocity_sd / 2, n)
    vel = np.clip(np.rint(vel), 1, 127).astype(int)
    moved = [dataclasses.replace(nt, start=float(s), end=float(e), velocity=int(v))
             for nt, s, e, v in zip(notes, start, end, vel)]
    return np.asarray(encode(moved, vocab), dtype=np.int32)


def humanised_copy(pieces: list, vocab: Vocab, seed: int = EVAL_SEED, **kw) -> list[np.ndarray]:
    """Every piece humanised, each with a generator seeded by (seed, CRC-32 of its tokens): a piece's
    copy is the same every time, whatever else is in the list."""
    return [humanise(p, vocab, np.random.default_rng([seed, zlib.crc32(np.asarray(p, np.int32).tobytes())]), **kw)
            for p in pieces]
