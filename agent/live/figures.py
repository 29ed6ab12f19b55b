"""Rolling figures for the REPL's toolbar: model step times, scheduling errors, the last answer's onset.

`Figures` is fed on the engine's threads (the scheduler's sent-hook, timed
predictor steps, the jam's observers) and read by the REPL: a plain attribute,
or a copy of a deque taken in one C call, never a walk over what another
thread appends to.
"""
from __future__ import annotations

from collections import deque


def pct(xs, q: float):
    """The nearest-rank q-th percentile (q in 0..100) of xs, in xs's units; None for no data."""
    xs = sorted(xs)
    return None if not xs else xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class Figures:
    """Model step times and scheduling errors over the last `window_s` seconds, and the last
    answer's onset, for the toolbar. Times are `clock`'s seconds (the engine's clock)."""

    def __init__(self, clock, window_s: float = 10.0) -> None:
        self.clock = clock
        self.window_s = window_s
        self.steps: deque[tuple[float, float]] = deque(maxlen=20_000)  # (t_s, step seconds)
        self.errors: deque[tuple[float, float]] = deque(maxlen=20_000)  # (sent_s, sent - due seconds)
        self.onset_ms: float | None = None  # the last answer's first note after the player's pause, ms

    def on_answer(self, kind: str, t_s: float | None, info: dict) -> None:  # a jam observer
        if kind == "answer" and info.get("threshold_t") is not None and info.get("first_note_t") is not None:
            self.onset_ms = 1e3 * (info["first_note_t"] - info["threshold_t"])

    def on_sent(self, msg, due_s: float, sent_s: float) -> None:  # a scheduler hook
        if msg.type in ("note_on", "note_off"):
            self.errors.append((sent_s, sent_s - due_s))

    def timed(self, fn):
        """fn wrapped so each call's duration is kept (one model step: feed, or sample + feed)."""
        steps, clock = self.steps, self.clock.now

        def run(*a, **kw):
            t0 = clock()
            r = fn(*a, **kw)
            t1 = clock()
            steps.append((t1, t1 - t0))
            return r

        run.__wrapped__ = fn
        return run

    def p99_ms(self, which: str, now_s: float | None = None) -> float | None:
        now_s = self.clock.now() if now_s is None else now_s
        data = list(getattr(self, which))  # a copy: the engine's threads go on appending
        xs = [v for t, v in data if now_s - t <= self.window_s]
        p = pct(xs, 99)
        return None if p is None else p * 1e3
