"""Lost devices: a port that goes away is reported, its notes closed where they still can be, and it
is reopened by name when it comes back; the engine plays on meanwhile.

The watcher thread polls every `midi.port_check_s` seconds (rtmidi gives no
disconnect callback). What it watches:

- the input (a keyboard unplugged, the keyboard's JACK client restarted):
  the player's held notes and the pedal are released in the context, so the
  agent is not left waiting on them; when a port matching the same name is
  listed again it is opened again. Our own virtual input cannot go away.
- the output, when it is an existing port we send to (`--out`: a DAW or a
  synth): the agent's open notes are closed where the port still takes
  them, later messages are dropped (counted in `Muted.dropped`) and, once
  the port is back, all-notes-off (CC123) goes out on the agent's channel
  before it plays on. A send that finds the port gone (PortLost: the
  loopback, and rtmidi where the backend reports a failed send, see
  agent/midi/rtoutput.py) tells the watcher at once rather than at the next
  poll; under JACK a send never fails, and the poll finds the loss. Our own
  virtual output cannot go away.
"""
from __future__ import annotations

import logging
import threading

import mido

from agent.errors import PortError
from agent.midi.ports import find_port

log = logging.getLogger(__name__)


class Muted:
    """Stands in for a lost output: drops what is sent and counts it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0

    def send(self, msg) -> None:
        self.dropped += 1

    def close(self) -> None:
        pass


class PortWatcher:
    """Watches an Engine's input and output; see the module docstring."""

    def __init__(self, engine, every_s: float) -> None:
        self.engine = engine
        self.every_s = every_s
        self.input_lost = False
        self.output_lost = False
        self.input_name = ""  # the exact name to look for again
        self.output_name = ""
        self.losses = 0
        self.reconnects = 0
        self._lost_now = threading.Event()  # a send found the output gone: look now, not at the next poll
        self._thread: threading.Thread | None = None

    def start(self) -> "PortWatcher":
        """Look at the engine's ports from now on (again: the names are taken afresh, one thread)."""
        e = self.engine
        self.input_name = getattr(e.input, "name", "") or e.input_name
        self.output_name = getattr(e.main_output, "name", "") or e.output_name
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="antiphon-port-watch", daemon=True)
            self._thread.start()
        return self

    def output_failed(self, exc: Exception) -> None:
        """Called by the scheduler thread when a send raised PortLost."""
        self._lost_now.set()

    def _run(self) -> None:
        e = self.engine
        while not e.stopped.is_set():
            self._lost_now.wait(self.every_s)
            self._lost_now.clear()
            try:
                if not e.virtual_input and not self._check_input():
                    return
                if e.output_name and not self._check_output():
                    return
            except Exception as exc:  # a watcher that dies would leave a lost port lost for good
                log.exception("port watcher: %s", exc)

    # The engine's port lock is held only to look at the engine's own ports (cheap: the port's own
    # client) and to swap one in; listing and opening ports (a new client under JACK: 70-90 ms)
    # happen outside it, because the engine thread takes the same lock (`connect out`).
    # Each check returns False when the engine is closing.

    # -- input ----------------------------------------------------------------
    def _check_input(self) -> bool:
        e = self.engine
        if not self.input_lost:
            with e._port_lock:
                if e._closing:
                    return False
                if e.ports.input_alive(e.input):
                    return True
                self.input_lost, self.losses = True, self.losses + 1
                old, e.input = e.input, None
            try:
                old.close()
            except Exception as exc:
                log.info("closing the lost input: %s", exc)
            e.report(f"input port {self.input_name!r} is gone: playing on, will reconnect when it is back")
            e.listener.call(self._release_player)
            return True
        port = self._reopen_input()
        if port is None:
            return True
        with e._port_lock:
            closing = e._closing
            if not closing and self.input_lost:  # `connect in` may have given it another port meanwhile
                e.input, self.input_lost, self.reconnects, port = port, False, self.reconnects + 1, None
        if port is not None:
            port.close()
        else:
            e.report(f"input port {self.input_name!r} is back: listening again")
        return not closing

    def _reopen_input(self):
        e = self.engine
        try:
            names = e.ports.input_names()
            name = reopen_name(names, self.input_name, e.input_name)
            if name is None:
                return None
            return e.ports.open_input(name, e.listener.receive, clock=e.clock)
        except PortError as exc:
            log.info("input not back yet: %s", exc)
            return None

    def _release_player(self) -> None:
        """On the engine thread: the lost keyboard's held keys and pedal are let go."""
        e = self.engine
        now = e.clock.now()
        li, jam = e.listener, e.jam
        if li.pedal_down:
            li.handle(mido.Message("control_change", control=64, value=0), now)
        for p in sorted(jam.player_onset):
            jam.player_note(p, 0, False, now)

    # -- output ---------------------------------------------------------------
    def _check_output(self) -> bool:
        e = self.engine
        if not self.output_lost:
            with e._port_lock:
                if e._closing:
                    return False
                if e.ports.output_alive(e.main_output):
                    return True
                self.output_lost, self.losses = True, self.losses + 1
                old = e.main_output
                e.scheduler.cut()  # note-offs where they still go (a Tee's others); those that fail are counted
                e.set_main_output(Muted(self.output_name))
            try:
                old.close()
            except Exception as exc:
                log.info("closing the lost output: %s", exc)
            e.report(f"output port {self.output_name!r} is gone: notes cut, will reconnect when it is back")
            return True
        try:
            name = reopen_name(e.ports.output_names(), self.output_name, e.output_name)
            port = e.ports.open_output(name) if name is not None else None
        except PortError as exc:
            log.info("output not back yet: %s", exc)
            port = None
        if port is None:
            return True
        ch = e.cfg.midi.channel - 1
        try:
            port.send(mido.Message("control_change", channel=ch, control=123, value=0))  # whatever it held
        except Exception as exc:
            log.info("all-notes-off to the returned output: %s", exc)
        with e._port_lock:
            closing = e._closing
            if not closing and self.output_lost:  # `connect out` may have given it another port meanwhile
                e.set_main_output(port)
                self.output_lost, self.reconnects, port = False, self.reconnects + 1, None
        if port is not None:
            port.close()
        else:
            e.report(f"output port {self.output_name!r} is back: playing on it again")
        return not closing


def reopen_name(names: list[str], exact: str, part: str) -> str | None:
    """The port to reopen: the same exact name if listed, else the first containing `part`, else None."""
    if exact in names:
        return exact
    return find_port(names, part) if part else None


__all__ = ["PortWatcher", "Muted", "reopen_name"]
