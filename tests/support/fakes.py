"""Fakes of package objects, with the knobs only a test turns (tests/support is on pytest's pythonpath)."""
from __future__ import annotations

from typing import Sequence

from agent.midi import ports
from agent.model.sampler import SamplingContext
from agent.music.tokens import Vocab


class Loopback(ports.Loopback):
    """The package's in-process loopback, plus a port that can be lost and come back."""

    def break_bus(self, name: str) -> None:
        """Simulate a lost port: every later send on the bus raises PortLost, and it is not listed."""
        self.bus(name).broken = True

    def restore_bus(self, name: str) -> None:
        """The lost port is back (listed again); ports opened before the loss stay dead."""
        with self._lock:
            old = self._buses.pop(name, None)
        if old is not None:
            old.broken = True
        self.bus(name)


def context_from_tokens(ids: Sequence[int], vocab: Vocab) -> SamplingContext:
    """The sampling context a token stream leaves: its note-on pitches, and those still sounding."""
    pitches: list[int] = []
    sounding: set[int] = set()
    for i in ids:
        t = vocab.token(i)
        if t.kind == "NOTE_ON":
            pitches.append(t.value)
            sounding.add(t.value)
        elif t.kind == "NOTE_OFF":
            sounding.discard(t.value)
        elif t.kind in ("START", "END"):
            sounding.clear()
    return SamplingContext(tuple(pitches), frozenset(sounding))
