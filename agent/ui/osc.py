"""OSC control in: every REPL command as an address, run by the REPL's own parser and the one setter.

`/antiphon/temp 0.8` runs the REPL line `temp 0.8`; the address's parts
after `/antiphon` and then the arguments are the line's words
(`/antiphon/set sampling.top_p 0.9`, `/antiphon/at/bar/mode accompany`,
`/antiphon/key "D minor"`). So OSC validates and changes exactly what the
REPL and the CCs do (agent/ui/repl/commands.py, agent/live/controls.py):
a bad value changes nothing. Replies go back to the sender's address and
port, from the server's port:

    /antiphon/reply TEXT             one per line the command said
    /antiphon/error TEXT             the command was refused (it names the value); nothing changed
    /antiphon/setting KEY VALUE      every live setting, after /antiphon/status; one for /antiphon/get KEY
    /antiphon/state STATE            after /antiphon/status (agent/live/state_out.py's STATES)
    /antiphon/pong ARGS...           for /antiphon/ping ARGS... (is it there; where do replies go)

For buttons and toggles (TouchOSC, Open Stage Control send 1 on press, 0
on release): a command that takes no argument runs on a non-zero number
and ignores 0; `adaptive` takes a number or a boolean as on/off.

One thread of its own serves the port: it takes every datagram waiting
(python-osc parses them), and a setting that a later message in the same
batch sets again with the same words (a fader's flood) is dropped,
unanswered (`superseded`); the rest run in order. A command is parsed and
validated on this thread, and what touches the model is posted to the
engine thread as the REPL's commands are; nothing here waits on the engine
thread or the output thread.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading

from agent.errors import AntiphonError
from agent.live.controls import live_keys
from agent.live.state_out import jam_state
from agent.ui.repl.commands import Commands
from agent.ui.repl.parse import NO_ARGS, SETTINGS

log = logging.getLogger(__name__)
PREFIX = "/antiphon"
BATCH_S = 0.002  # the most often the server wakes (seconds): a message waits at most this long
TOGGLES = {"adaptive"}  # on/off commands a toggle's 1/0 (or T/F) drives


class OscError(AntiphonError):
    """An OSC message that is not a command; the message is the reply."""


def word(value, toggle: bool = False) -> str:
    """One OSC argument as a REPL word: a float32's shortest digits (0.8, not 0.800000011920929)."""
    if toggle and isinstance(value, (bool, int, float)):
        return "on" if value else "off"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:.7g}"
        f32 = struct.unpack("f", struct.pack("f", value))[0] if abs(value) < 3e38 else None
        return short if f32 == value else repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise OscError(f"an argument of type {type(value).__name__} is not a word a command takes")


def line_of(address: str, args) -> str | None:
    """The REPL line an OSC message says, or None (a button's release: nothing to do)."""
    if address != PREFIX and not address.startswith(PREFIX + "/"):
        raise OscError(f"{address}: not an Antiphon address (say {PREFIX}/COMMAND, e.g. {PREFIX}/temp 0.8)")
    words = [w for w in address[len(PREFIX):].split("/") if w]
    if not words:
        raise OscError(f"{address}: say {PREFIX}/COMMAND, e.g. {PREFIX}/temp 0.8")
    name = words[-1].lower()
    if name in NO_ARGS and len(args) == 1 and isinstance(args[0], (bool, int, float)):
        if not args[0]:
            return None  # a button released
        args = ()
    return " ".join(words + [word(a, toggle=name in TOGGLES) for a in args])


def coalesce(batch: list) -> tuple[list, int]:
    """(client, address, args) in order, less each setting that a later one sets again with the same
    address and words (only its numbers differ): (what to run, how many were dropped)."""
    def key(item):
        client, address, args = item
        words = [w for w in address[len(PREFIX):].split("/") if w]
        if len(words) != 1 or words[0].lower() not in SETTINGS:
            return None  # an action, `at`, a query: each one runs
        return client, address, len(args), tuple(a for a in args if isinstance(a, str))

    last = {key(item): i for i, item in enumerate(batch)}
    keep = [item for i, item in enumerate(batch) if key(item) is None or last[key(item)] == i]
    return keep, len(batch) - len(keep)


def osc_value(value):
    """A setting as an OSC argument (python-osc sends bool, int, float and str as they are)."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class OscControl:
    """Serves `[osc] port` on `[osc] host`: each message is one REPL line run against `engine`."""

    def __init__(self, engine, host: str, port: int) -> None:
        self.engine = engine
        self.received = self.refused = self.superseded = 0  # messages: all, refused, dropped by coalesce
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise AntiphonError(f"[osc] cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()[:2]  # (host, port): the port chosen where 0 was asked
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "OscControl":
        self._thread = threading.Thread(target=self._serve, name="antiphon-osc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.sock.recvfrom(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:  # closed under us: stopping
                return
            batch, dropped = coalesce(self._parse([first, *self._waiting()]))
            self.superseded += dropped
            for client, address, args in batch:
                self._on_message(client, address, *args)
            self._stop.wait(BATCH_S)  # what comes meanwhile is one batch: a flood costs a wake-up a batch

    def _waiting(self, most: int = 100_000) -> list:
        """Every datagram already waiting (up to `most`), without blocking."""
        out = []
        self.sock.setblocking(False)
        try:
            while len(out) < most:
                out.append(self.sock.recvfrom(65536))
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.settimeout(0.1)
        return out

    def _parse(self, datagrams: list) -> list:
        """(client, address, args) for each message in the datagrams (bundles opened, python-osc's parser)."""
        from pythonosc.osc_packet import OscPacket, ParseError

        out = []
        for data, client in datagrams:
            try:
                out += [(client, m.message.address, tuple(m.message.params)) for m in OscPacket(data).messages]
            except ParseError:
                self.received += 1
                self.say_to(client)(f"error: a datagram of {len(data)} bytes that is not OSC; nothing done")
        self.received += len(out)
        return out

    # -- one message -------------------------------------------------------------------
    def reply(self, to, address: str, *args) -> None:
        from pythonosc.osc_message_builder import build_msg

        try:
            self.sock.sendto(build_msg(address, list(args)).dgram, to)
        except OSError as exc:  # the sender is gone: nothing to tell
            log.debug("OSC reply to %s: %s", to, exc)

    def say_to(self, to):
        """The `say` a command's lines go through: /antiphon/error for a refusal, else /antiphon/reply."""
        def say(text: str) -> None:
            for line in str(text).splitlines() or [""]:
                if line.startswith("error: "):
                    self.refused += 1
                    self.reply(to, PREFIX + "/error", line[len("error: "):])
                else:
                    self.reply(to, PREFIX + "/reply", line)
        return say

    def _on_message(self, client, address: str, *args) -> None:
        say = self.say_to(client)
        try:
            line = line_of(address, args)
            if line is None:
                return
            name = line.split()[0].lower()
            if self.engine.stopped.is_set() and name not in ("get", "status", "ping"):
                raise OscError(f"{address}: the session has stopped")
            if name == "ping":
                self.reply(client, PREFIX + "/pong", *args)
            elif name == "get":
                self._get(client, line.split()[1:])
            elif not Commands(self.engine, say=say).run(line):  # `quit`
                self.engine.stopped.set()
            elif name == "status":
                self._settings(client)
        except AntiphonError as exc:
            say(f"error: {exc}")

    def _get(self, to, keys: list[str]) -> None:
        if len(keys) != 1:
            raise OscError(f"say {PREFIX}/get SECTION.KEY, e.g. {PREFIX}/get sampling.temperature")
        self.reply(to, PREFIX + "/setting", keys[0], osc_value(self.engine.controls.get(keys[0])))

    def _settings(self, to) -> None:
        controls = self.engine.controls
        for key in live_keys():
            self.reply(to, PREFIX + "/setting", key, osc_value(controls.get(key)))
        self.reply(to, PREFIX + "/state", jam_state(self.engine.jam))


def osc_control(engine) -> OscControl | None:
    """The OSC server `[osc] port` asks for, started; None when it is 0 (off)."""
    osc = engine.controls.cfg.osc
    return OscControl(engine, osc.host, osc.port).start() if osc.port else None
