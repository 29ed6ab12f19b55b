"""An output port for fake-clock runs: keeps (clock time, message) for every send."""
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
