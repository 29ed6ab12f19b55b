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


class ListedPorts(ports.Ports):
    """Loopback buses listed as a real MIDI system lists them: with client names, and every port a
    program made among the other kind's (a virtual output is an input others can open), so our own
    virtual output shows up among the inputs; opening by name goes through the listing."""

    def __init__(self, loop: ports.Loopback, system: Sequence[str] = ("Midi Through:Midi Through Port-0 14:0",)):
        super().__init__("loopback", loop=loop)
        self.system = list(system)

    @property
    def is_loopback(self) -> bool:
        return False

    def _listed(self) -> list[str]:
        return self.system + [f"RtMidi Client:{n} 130:0" for n in self.loop.names()]

    def input_names(self) -> list[str]:
        return self._listed()

    def output_names(self) -> list[str]:
        return self._listed()

    def open_input(self, part: str, receiver, *, virtual: bool = False, clock=None):
        name = part if virtual else self.match(self.input_names(), part, "input")
        return ports.LoopbackInput(self.loop, ports.port_part(name), receiver,
                                   clock.now if clock is not None else ports.time.perf_counter)

    def open_output(self, part: str = "", *, virtual_name: str | None = None):
        name = virtual_name or ports.port_part(self.match(self.output_names(), part, "output"))
        return ports.LoopbackOutput(self.loop, name)
