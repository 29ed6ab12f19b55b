"""Stop the voice, not the show: how a thread survives an exception.

A live thread (listener/jam, scheduler) that meets an exception closes its
notes, puts itself back in a known state, logs the error and goes on. Only
an error that keeps coming back ends the session: `Fuse.blow()` is true once
`limit` failures fall within `window_s` seconds.
"""
from __future__ import annotations

from collections import deque

FAULT_LIMIT = 3  # failures ...
FAULT_WINDOW_S = 10.0  # ... within this many seconds end the session


class Fuse:
    """Counts failures; blows when `limit` of them fall within `window_s` (clock seconds)."""

    def __init__(self, limit: int = FAULT_LIMIT, window_s: float = FAULT_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self.failures = 0  # all of them, for the stats
        self._recent: deque[float] = deque(maxlen=limit)

    def blow(self, t_s: float) -> bool:
        """Record a failure at t_s; True if it is one too many (the session should end)."""
        self.failures += 1
        self._recent.append(t_s)
        return len(self._recent) >= self.limit and t_s - self._recent[0] <= self.window_s
