"""The sampling controls the jam draws with: the user's, shaped for a live stream.

- START/END pushed down: a live stream has no piece boundaries;
- `lead`: before an answer's first note, time shifts pushed down too, so the
  answer starts with a note instead of sampled silence;
- `grid`: the stream is this many ticks past the player's subdivision grid
  (`step` ticks apart: resolution/2 for eighths, resolution/3 for thirds in
  triplet and compound feels); time shifts that would not land back on it get
  `jam.grid_strength` less logit, so the agent keeps to the player's grid
  (0 = off). The grid is in straight ticks: a swung player's eighths are
  straight eighths of the stream (stream.py warps them), so swing needs no
  grid of its own.

The shaped controls are built once per change of the user's controls (one per
grid step and offset, on first use), so a step only picks one.
"""
from __future__ import annotations

import math

BOUNDARY_BIAS = -30.0  # logit offset on START/END: a live stream has no piece boundaries


class Shaping:
    def __init__(self, vocab) -> None:
        self.vocab = vocab
        self._src = None
        self._strength = None
        self._plain = self._lead = None
        self._bias: tuple = ()
        self._grid: dict = {}

    def controls(self, src, grid_strength: float, lead: bool = False, grid: int | None = None,
                 step: int | None = None):
        """`src` (the live SamplingControls) shaped as asked; cached per (src, grid_strength).
        `grid` ticks past a grid point of `step` ticks (default: the eighth, resolution/2)."""
        if src is not self._src or grid_strength != self._strength:
            v = self.vocab
            self._bias = tuple(src.token_bias) + ((v.START, BOUNDARY_BIAS), (v.END, BOUNDARY_BIAS))
            self._plain = src.replace(token_bias=self._bias)
            shifts = tuple((v.shift(k), BOUNDARY_BIAS) for k in range(1, v.max_shift + 1))
            self._lead = src.replace(token_bias=self._bias + shifts)
            self._grid = {}
            self._src, self._strength = src, grid_strength
        if lead:
            return self._lead
        step = self.vocab.resolution // 2 if step is None else step
        if grid is None or grid_strength <= 0 or step < 2 or self.vocab.resolution % step:
            return self._plain
        key = (step, grid % step)
        if key not in self._grid:
            v, o = self.vocab, key[1]
            self._grid[key] = src.replace(token_bias=self._bias + tuple(
                (v.shift(k), -grid_strength) for k in range(1, v.max_shift + 1) if (o + k) % step))
        return self._grid[key]

    def grid_step(self, division: int) -> int:
        """Ticks between the player's grid points: an eighth (division 2) or a third of the beat (division 3)."""
        return self.vocab.resolution // division

    def grid_offset(self, tempo, t_s: float, division: int = 2) -> int:
        """Ticks past the last grid point (`division` a beat) of `tempo` at t_s (0 .. step - 1)."""
        return self.ticks_past(tempo.beat(t_s), division)

    def ticks_past(self, beat: float, division: int = 2) -> int:
        """Ticks a straight beat position is past the last of the `division` grid points a beat (0 .. step - 1)."""
        step = self.grid_step(division)
        parts = division * beat
        return round((parts - math.floor(parts)) * step) % step
