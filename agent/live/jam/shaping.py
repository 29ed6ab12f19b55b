"""The sampling controls the jam draws with: the user's, shaped for a live stream.

- START/END pushed down: a live stream has no piece boundaries;
- `lead`: before an answer's first note, time shifts pushed down too, so the
  answer starts with a note instead of sampled silence;
- `grid`: the stream is this many ticks past the player's eighth-note grid;
  time shifts that would not land back on it get `jam.grid_strength` less
  logit, so the agent keeps to the player's grid (0 = off).

The shaped controls are built once per change of the user's controls (one per
grid offset), so a step only picks one.
"""
from __future__ import annotations

BOUNDARY_BIAS = -30.0  # logit offset on START/END: a live stream has no piece boundaries


class Shaping:
    def __init__(self, vocab) -> None:
        self.vocab = vocab
        self._src = None
        self._strength = None
        self._plain = self._lead = None
        self._grid: dict = {}

    def controls(self, src, grid_strength: float, lead: bool = False, grid: int | None = None):
        """`src` (the live SamplingControls) shaped as asked; cached per (src, grid_strength)."""
        if src is not self._src or grid_strength != self._strength:
            v = self.vocab
            bias = tuple(src.token_bias) + ((v.START, BOUNDARY_BIAS), (v.END, BOUNDARY_BIAS))
            self._plain = src.replace(token_bias=bias)
            shifts = tuple((v.shift(k), BOUNDARY_BIAS) for k in range(1, v.max_shift + 1))
            self._lead = src.replace(token_bias=bias + shifts)
            e = v.resolution // 2
            self._grid = {o: src.replace(token_bias=bias + tuple(
                (v.shift(k), -grid_strength) for k in range(1, v.max_shift + 1) if (o + k) % e))
                for o in range(e)} if grid_strength > 0 and v.resolution % 2 == 0 else {}
            self._src, self._strength = src, grid_strength
        if lead:
            return self._lead
        return self._grid.get(grid, self._plain) if grid is not None else self._plain

    def grid_offset(self, tempo, t_s: float) -> int:
        """Ticks past the last eighth-note grid point of `tempo` at t_s (0 .. resolution/2 - 1)."""
        e = self.vocab.resolution // 2
        eighths = 2.0 * tempo.beat(t_s)
        return round((eighths - eighths // 1) * e) % e
