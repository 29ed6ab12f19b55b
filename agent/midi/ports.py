"""MIDI ports: mido's rtmidi backend (ALSA, JACK, CoreMIDI, WinMM) or in-process loopback.

The backend comes from config `[midi] backend`, else the MIDO_BACKEND
environment variable, else rtmidi's default API. Inputs stamp each
message's arrival on the clock they are given (`open_input(..., clock=)`,
default the real perf_counter clock) and hand it on (the listener enqueues
it). They are rtmidi ports of our own (agent/midi/rtinput.py), not mido's: under
JACK a Python callback in JACK's process thread garbles bursts, so there the
port is polled instead. Outputs are ours too (agent/midi/rtoutput.py), so that a send the
backend reports failing raises PortLost.

The loopback backend is a set of named in-process buses: whatever is sent on
an output named X reaches every input named X, at once, on the sender's
thread. The demo and the tests run on it with no MIDI system at all.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Callable

import mido

from agent.errors import PortError, PortLost
from agent.midi.rtinput import open_rt_input
from agent.midi.rtoutput import open_rt_output

RTMIDI_APIS = {
    "alsa": "LINUX_ALSA",
    "jack": "UNIX_JACK",
    "coremidi": "MACOSX_CORE",
    "winmm": "WINDOWS_MM",
}
LISTER_RENEW_S = 5.0  # how often an empty listing may ask a new client (see Ports._list)
Receiver = Callable[[mido.Message, float], None]  # (message, arrival time in the clock's seconds)


# -- loopback ---------------------------------------------------------------
class _Bus:
    def __init__(self, name: str) -> None:
        self.name = name
        self.receivers: list[Callable[[mido.Message], None]] = []
        self.broken = False  # the port is lost: sends raise PortLost, it is not listed
        self.lock = threading.Lock()


class Loopback:
    """In-process named buses. `Loopback.default` is shared by one process."""

    def __init__(self) -> None:
        self._buses: dict[str, _Bus] = {}
        self._lock = threading.Lock()

    def bus(self, name: str) -> _Bus:
        with self._lock:
            return self._buses.setdefault(name, _Bus(name))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, b in self._buses.items() if not b.broken)


Loopback.default = Loopback()  # type: ignore[attr-defined]


class LoopbackOutput:
    """mido-like output on a loopback bus: `send`, `reset`, `panic`, `close`."""

    def __init__(self, loop: Loopback, name: str) -> None:
        self.name = name
        self._bus = loop.bus(name)
        self.closed = False

    def send(self, msg: mido.Message) -> None:
        if self.closed or self._bus.broken:
            raise PortLost(f"loopback port {self.name!r} is gone")
        with self._bus.lock:
            receivers = list(self._bus.receivers)
        for r in receivers:
            r(msg)

    def close(self) -> None:
        self.closed = True


class LoopbackInput:
    def __init__(self, loop: Loopback, name: str, receiver: Receiver, now: Callable[[], float] = time.perf_counter) -> None:
        self.name = name
        self._bus = loop.bus(name)
        self._receiver = lambda msg: receiver(msg, now())  # stamped on arrival, like a real port
        with self._bus.lock:
            self._bus.receivers.append(self._receiver)
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            with self._bus.lock:
                self._bus.receivers.remove(self._receiver)
            self.closed = True


# -- names -----------------------------------------------------------------
def find_port(names: list[str], part: str) -> str | None:
    """The first of `names` containing `part` (case-insensitive), or None: how ports are found by name,
    when opened and when reopened after a loss."""
    for n in names:
        if part.lower() in n.lower():
            return n
    return None


def port_part(name: str) -> str:
    """A listed port's own name, without its client ('RtMidiOut Client-01:Antiphon' under JACK) and
    ALSA's client:port numbers ('RtMidiOut Client:Antiphon 130:0'): what a virtual port was named."""
    name = re.sub(r" \d+:\d+$", "", name)
    return name.split(":", 1)[1] if ":" in name else name


# -- backend choice ---------------------------------------------------------
def backend_name(choice: str = "auto") -> str:
    """'loopback' or a mido backend string such as 'mido.backends.rtmidi/UNIX_JACK'."""
    if choice == "loopback":
        return "loopback"
    if choice in RTMIDI_APIS:
        return f"mido.backends.rtmidi/{RTMIDI_APIS[choice]}"
    if choice != "auto":
        raise PortError(f"unknown MIDI backend {choice!r} (known: auto, loopback, {', '.join(RTMIDI_APIS)})")
    return os.environ.get("MIDO_BACKEND") or "mido.backends.rtmidi"


class Ports:
    """Opens ports on one backend. `Ports('jack')`, `Ports('loopback', loop=...)`."""

    def __init__(self, choice: str = "auto", loop: Loopback | None = None) -> None:
        self.name = backend_name(choice)
        self.loop = loop or Loopback.default  # type: ignore[attr-defined]
        self._mido = None
        self._listers: dict[str, tuple] = {}  # "input"/"output" -> (a kept rtmidi client, made at, monotonic s)
        self._list_lock = threading.Lock()  # an rtmidi client is one thread's at a time
        if self.name != "loopback":
            try:
                self._mido = mido.Backend(self.name, load=True)
            except Exception as exc:  # ImportError, rtmidi.SystemError...
                raise PortError(f"MIDI backend {self.name} cannot load: {exc}") from exc

    @property
    def is_loopback(self) -> bool:
        return self._mido is None

    def _guard(self, what: str, fn):
        try:
            return fn()
        except PortError:
            raise
        except Exception as exc:  # rtmidi raises SystemError/RuntimeError subclasses
            hint = ""
            if "JACK" in self.name:
                hint = " (is a JACK server running? try `jackd -d dummy`)"
            elif "ALSA" in self.name or self.name.endswith("rtmidi"):
                hint = " (no ALSA sequencer? try --set midi.backend=jack with jackd running, or loopback)"
            raise PortError(f"{what} on {self.name}: {exc}{hint}") from exc

    def _list(self, kind: str) -> list[str]:
        """The ports of one kind, listed by a client kept for it. mido opens two new clients per
        listing: 70-90 ms under JACK, against 0.01 ms for a kept client, and the port watcher
        lists on every poll while a port is gone. A kept client whose server went away lists
        nothing, so an empty listing asks a new client (at most every LISTER_RENEW_S)."""
        import rtmidi

        make = rtmidi.MidiIn if kind == "input" else rtmidi.MidiOut
        api = getattr(rtmidi, f"API_{self._mido.api}") if self._mido.api else rtmidi.API_UNSPECIFIED
        with self._list_lock:
            rt, made_s = self._listers.pop(kind, (None, 0.0))
            names = rt.get_ports() if rt is not None else []
            if not names and time.monotonic() - made_s >= LISTER_RENEW_S:
                if rt is not None:
                    rt.delete()
                rt, made_s = make(api), time.monotonic()
                names = rt.get_ports()
            self._listers[kind] = (rt, made_s)
        return list(names)

    def input_names(self) -> list[str]:
        if self.is_loopback:
            return self.loop.names()
        return self._guard("listing inputs", lambda: self._list("input"))

    def output_names(self) -> list[str]:
        if self.is_loopback:
            return self.loop.names()
        return self._guard("listing outputs", lambda: self._list("output"))

    @staticmethod
    def match(names: list[str], part: str, kind: str) -> str:
        """The first name containing `part` (case-insensitive), or PortError listing them."""
        found = find_port(names, part)
        if found is not None:
            return found
        have = ", ".join(repr(n) for n in names) or "none"
        raise PortError(f"no MIDI {kind} port matching {part!r} (have: {have})")

    def _refuse_taken(self, name: str, kind: str, option: str) -> None:
        """A virtual port named like one that exists (another antiphon, most likely) would be renamed
        or shadowed by the MIDI system, and a player would reach only one of them: refuse it."""
        # a virtual output is listed among the inputs others can open, and a virtual input among the outputs
        names = self.input_names() if kind == "output" else self.output_names()
        taken = [n for n in names if port_part(n) == name]
        if taken:
            raise PortError(f"a MIDI {kind} named {name!r} exists already ({taken[0]}): is another antiphon "
                            f"running? Give this one another name ({option} NAME)")

    def input_alive(self, port) -> bool:
        """Is an opened input still there? (rtmidi gives no disconnect callback, so we look.)"""
        if self.is_loopback:
            return not port._bus.broken
        rt = getattr(port, "_rt", None)  # ask the port's own rtmidi client: opening a new
        try:  # client (get_input_names) holds the GIL for tens of ms under JACK
            return port.name in (rt.get_ports() if rt is not None else self.input_names())
        except Exception:  # rtmidi errors, PortError: the MIDI system itself went away
            return False

    def output_alive(self, port) -> bool:
        """Is an opened output's destination still there? (Our own virtual port always is.)"""
        if isinstance(port, LoopbackOutput):
            return not port._bus.broken and not port.closed
        rt = getattr(port, "_rt", None)
        if rt is None:
            return True  # not a port we can look into (a Tee's part, a test double)
        try:
            return port.name in rt.get_ports()
        except Exception:
            return False

    def open_input(self, part: str, receiver: Receiver, *, virtual: bool = False, clock=None):
        """Open the input whose name contains `part` ('' = the first one).

        `receiver(msg, t_s)` is called on the backend's thread with the arrival
        time already stamped on `clock` (default: perf_counter, the real
        clock's time). Returns the port (it has `.name` and `.close()`).
        """
        now = clock.now if clock is not None else time.perf_counter
        if self.is_loopback:
            return LoopbackInput(self.loop, part or "keyboard", receiver, now)

        api = self._mido.api
        if virtual:
            self._refuse_taken(part, "input", "--virtual-in")
            return self._guard(f"creating virtual input {part!r}",
                               lambda: open_rt_input(api, part, receiver, now, virtual=True))
        names = self.input_names()
        if not names:
            raise PortError(f"no MIDI input ports on {self.name}; connect a keyboard or give --in")
        name = self.match(names, part, "input") if part else names[0]
        return self._guard(f"opening input {name!r}", lambda: open_rt_input(api, name, receiver, now, virtual=False))

    def open_output(self, part: str = "", *, virtual_name: str | None = None):
        """The output whose name contains `part`, or a new virtual port `virtual_name`."""
        if self.is_loopback:
            return LoopbackOutput(self.loop, virtual_name or part or "Antiphon")
        if virtual_name:
            if sys.platform.startswith("win") or "WINDOWS_MM" in self.name:
                raise PortError("Windows MIDI has no virtual ports: install a loopback driver such as "
                                "loopMIDI, create a port there and pass --out NAME")
            self._refuse_taken(virtual_name, "output", "--virtual")
            return self._guard(f"creating virtual output {virtual_name!r}",
                               lambda: open_rt_output(self._mido.api, virtual_name, virtual=True))
        name = self.match(self.output_names(), part, "output")
        return self._guard(f"opening output {name!r}", lambda: open_rt_output(self._mido.api, name, virtual=False))
