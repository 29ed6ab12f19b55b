"""Fake-clock runs of the jam (the feel and relate benches, the fuzz, tests): an output port that keeps
what it was sent, and the loop that lets the clock run while waking the scheduler and the jam."""
from __future__ import annotations


class ListOut:
    """An output port that keeps (clock time, message) for every send, in `sent`."""

    name = "list"

    def __init__(self, clock) -> None:
        self.clock, self.sent = clock, []

    def send(self, msg) -> None:
        self.sent.append((self.clock.now(), msg))

    def close(self) -> None:
        pass


def run_jam_until(clock, sched, jam, wake: float | None, t_s: float) -> float | None:
    """Let the fake `clock` run to t_s, pumping `sched` and ticking `jam` whenever they asked to be woken,
    and giving the jam its idle work between; returns when the jam next wants to be woken."""
    for _ in range(1_000_000):
        nd = sched.next_due()
        nxt = min(x for x in (wake, nd, t_s) if x is not None)
        clock.set(max(nxt, clock.now()))
        sched.pump()
        wake = jam.tick(clock.now())
        while jam.idle_work(clock.now(), wake):
            pass
        if nxt >= t_s:
            return wake
    raise AssertionError("the jam never let time reach its target (a hang)")
