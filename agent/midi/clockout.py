"""MIDI clock out: 24 pulses a beat at the tempo Antiphon follows, on its beat, from a thread of its own.

`[sync] clock_out = PORT` sends MIDI clock to a DAW, a drum machine or an
arpeggiator, so that they follow the player as the agent does. Nothing here
keeps a time of its own: the pulses are the engine's tempo map (the tempo and
beat followed from the player, from incoming MIDI clock, or given).

Timing: pulse n of a run that began on beat b0 is due when the map says beat
b0 + n/24 falls. Each pulse is planned from the one before at the map's
current tempo (a tempo change reaches the clock at the next pulse, the one
in flight included), plus a phase correction towards the map's beat that
keeps the interval within SLEW of the map's tempo, or, for two beats after the
follower changed the tempo by a ratio R of at least CHANGE (4 %: the player
changed it; the follower's nudges are smaller), within R of the new tempo and
of the interval before: when the follower moves the beat (by up to half a beat,
mostly as the tempo changes) the clock catches up rather than jumping, within
two beats after a change, and no interval jumps further than the follower's
own change (or SLEW). The thread sleeps to absolute
targets (a condition wait, so a command or a tempo change wakes it), then
spins the last `spin_s` (as the scheduler does); a pulse sent
late is still sent (a receiver counts pulses: skipping one would move its
beat), and counted in `late`.

Transport: `play()` (the session starts) arms Start (0xFA) on the map's next
bar line, the receiver's bar 1; the first pulse goes with it, as MIDI says.
`jump()` (a start, continue or song position heard on clock in) sends Stop at
once and arms Song Position Pointer + Continue (Start at position 0) on the
map's next whole beat, at the map's song position; `halt()` sends Stop. The
follower moving the player's bar line later does not move the receiver's.
`close()` sends Stop if playing and closes the port: the engine calls it at
every exit, Ctrl-C included. Commands may come from any thread; every send
happens on the clock's thread (or, after it has ended, in close()).
"""
from __future__ import annotations

import logging
import math
import os
import threading
from collections import deque
from typing import Callable

import mido

from agent.midi.ports import find_port, port_part

log = logging.getLogger(__name__)
PPQ = 24
SLEW = 0.01  # the phase correction per pulse, at most this fraction of a pulse interval
GAIN = 0.5  # of the phase error corrected per pulse, within SLEW (a small error halves at each pulse)
CATCH_UP_BEATS = 2  # after a tempo change, the phase it moved is caught up within this many beats
CHANGE = 1.04  # a tempo change by at least this ratio is the player's (a nudge of the follower's is smaller)
LEAD_S = 0.005  # a start is armed on a beat at least this far ahead (time to plan and send)
LATE_S = 0.002  # a pulse sent this much after it was due is counted late
CLOCK, START, CONTINUE, STOP = (mido.Message(k) for k in ("clock", "start", "continue", "stop"))


def open_clock_port(ports, spec: str, *, virtual_name: str, exclude=()):
    """The port `[sync] clock_out` names: "virtual" makes "<virtual_name> Clock"; else the first output
    whose name contains `spec` (not one of ours: `exclude`, by port_part), else a new virtual port `spec`."""
    if spec == "virtual":
        return ports.open_output(virtual_name=f"{virtual_name} Clock")
    found = find_port([n for n in ports.output_names() if port_part(n) not in set(exclude)], spec)
    return ports.open_output(found) if found else ports.open_output(virtual_name=spec)


class ClockOut:
    """24 ppq MIDI clock on `output`, following `tempo` (a TempoMap) on `clock`'s time."""

    def __init__(self, output, tempo, clock, *, spin_s: float = 0.001, rt_priority: int = 0,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.output, self.tempo, self.clock = output, tempo, clock
        self.spin_s, self.rt_priority, self.on_error = spin_s, rt_priority, on_error
        self._cond = threading.Condition()  # guards the commands; never held across a send
        self._commands: deque[str] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.playing = False  # Start/Continue sent, pulses going out
        self._armed: float | None = None  # the song position (beats) of a start waiting for its beat
        self._b0, self._n = 0.0, 0  # the map's beat of pulse 0 of this run; pulses sent in it
        self._last_due = 0.0  # when the last pulse was due
        self._interval = 0.0  # the last interval between pulses
        self._bpm: float | None = None  # the map's tempo at the last plan
        self._ratio, self._until = 1.0, 0  # the map's last tempo change (a ratio >= 1), caught up until pulse n
        self.pulses = self.late = 0
        self.sent: deque[tuple[float, float, int]] = deque(maxlen=100_000)  # (due_s, sent_s, status byte)
        self.off_beat: deque[float] = deque(maxlen=100_000)  # each pulse's due time minus its beat's on the map, s
        self.error: Exception | None = None

    # -- commands (any thread) ----------------------------------------------------------
    def play(self) -> None:
        self._post("play")

    def jump(self) -> None:
        self._post("jump")

    def halt(self) -> None:
        self._post("halt")

    def _post(self, cmd: str) -> None:
        with self._cond:
            self._commands.append(cmd)
        self._wake()

    # -- the work (the clock thread; tests call pump with a fake clock) -----------------
    def pump(self, now_s: float | None = None) -> float | None:
        """Act on the commands, then send what is due by now_s (default: the clock's now).
        Returns when the next message is due (None: nothing armed or playing)."""
        now = self.clock.now() if now_s is None else now_s
        with self._cond:
            commands, self._commands = list(self._commands), deque()
        for cmd in commands:
            if cmd == "halt" or cmd == "jump" and self.playing:
                self._stop()
            if cmd == "jump" or cmd == "play" and not self.playing and self._armed is None:
                self._arm(now, bar=cmd == "play")
        while (due := self.next_due()) is not None and due <= now:
            self._pulse(due)
        return due

    def next_due(self) -> float | None:
        """When the next pulse is due, planned from the last one on the map as it is now (None: stopped):
        a start waits for its beat wherever the map puts it; a pulse comes one interval at the map's
        tempo after the one before, moved towards the map's beat by GAIN of the way, its interval kept
        within SLEW of the map's tempo; for CATCH_UP_BEATS after the map's tempo changed by a ratio R
        of at least CHANGE (the player's change, not a nudge of the follower's), within R of it and of
        the interval before (so the phase a change moved, up to half a beat, is
        caught up by then, and no interval jumps further than the follower's own change)."""
        if self._armed is not None:
            return self.tempo.time(self._b0)
        if not self.playing:
            return None
        bpm = self.tempo.bpm
        if bpm != self._bpm:  # the follower's change (and one still being caught up)
            change = max(bpm, self._bpm or bpm) / min(bpm, self._bpm or bpm)
            if change >= CHANGE:
                self._ratio = max(change, self._ratio if self._n < self._until else 1.0)
                self._until = self._n + CATCH_UP_BEATS * PPQ
            self._bpm = bpm
        nominal = 60.0 / (bpm * PPQ)
        error = self.tempo.time(self._b0 + self._n / PPQ) - (self._last_due + nominal)  # > 0: the map is later
        r = 1 + SLEW
        lo, hi = nominal / r, nominal * r
        if self._n < self._until:
            r = max(r, self._ratio)
            lo, hi = max(nominal / r, self._interval / r), min(nominal * r, self._interval * r)
        return self._last_due + max(lo, min(max(lo, hi), nominal + GAIN * error))

    def _stop(self) -> None:
        if self.playing:
            self._send(STOP, self.clock.now())
        self.playing, self._armed = False, None

    def _arm(self, now: float, bar: bool) -> None:
        """A start at least LEAD_S ahead: `bar` (the session's start), on the map's next bar line, as
        the song's beginning (Start); else (a jump) on its next whole beat, at the map's song position
        (its beat from the bar line of position 0: the clock in's song position when following it)."""
        t = now + LEAD_S
        b = round(self.tempo.beat(self.tempo.next_bar(t))) if bar else math.ceil(self.tempo.beat(t) - 1e-9)
        position = 0.0 if bar else b - self.tempo.bar_beat
        if position < 0:
            position %= self.tempo.beats_per_bar
        self._b0, self._n, self._armed = float(b), 0, position

    def _pulse(self, due: float) -> None:
        if self._armed is not None:  # the start goes with the run's first pulse
            if self._armed == 0:
                self._send(START, due)
            else:
                self._send(mido.Message("songpos", pos=min(16383, round(self._armed * 4))), due)
                self._send(CONTINUE, due)
            self._armed, self.playing = None, True
        self._send(CLOCK, due)
        self.off_beat.append(due - self.tempo.time(self._b0 + self._n / PPQ))
        self.pulses += 1
        self._n += 1
        self._interval = due - self._last_due if self._n > 1 else 60.0 / (self.tempo.bpm * PPQ)
        self._last_due = due

    def _send(self, msg: mido.Message, due: float) -> None:
        self.output.send(msg)
        sent = self.clock.now()
        self.late += msg is CLOCK and sent - due > LATE_S
        self.sent.append((due, sent, msg.bytes()[0]))

    # -- thread --------------------------------------------------------------------------
    def start(self) -> "ClockOut":
        self.tempo.listeners.append(self._wake)
        self._thread = threading.Thread(target=self._run, name="antiphon-clock-out", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 0.5) -> None:
        """Stop the thread, send Stop if the clock was playing, close the port. Safe to call twice."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._wake in self.tempo.listeners:
            self.tempo.listeners.remove(self._wake)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)
        if self._thread is None or not self._thread.is_alive():
            try:
                self._stop()
            except Exception as exc:  # the port is gone: nothing more to tell it
                log.error("MIDI clock out: stop could not be sent: %s", exc)
        try:
            self.output.close()
        except Exception as exc:
            log.error("closing MIDI clock out %s: %s", getattr(self.output, "name", ""), exc)

    def _wake(self, *_) -> None:
        """A command, or the tempo map changed (its listeners): plan the next pulse again now."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        self._realtime()
        while True:
            with self._cond:
                if self._closing:
                    return
                due = self.next_due()
                if not self._commands:
                    wait = None if due is None else due - self.clock.now() - self.spin_s
                    if wait is None or wait > 0:
                        self._cond.wait(wait)
                        continue  # woken by a command or a tempo change, or near the pulse: look again
            while due is not None and not self._commands and self.clock.now() < due:
                pass  # spin the last spin_s without the lock
            try:
                self.pump()
            except Exception as exc:  # a lost port: the clock stops, the music goes on
                self.error = exc
                log.error("MIDI clock out stopped: %s: %s", type(exc).__name__, exc)
                if self.on_error is not None:
                    self.on_error(exc)
                return

    def _realtime(self) -> None:
        """SCHED_FIFO for this thread where allowed (as the scheduler's): it then wakes on time."""
        if self.rt_priority > 0 and hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
            except OSError as exc:
                log.info("no real-time priority for the clock out thread (%s)", exc)


def start_clock_out(engine, cfg) -> ClockOut:
    """`[sync] clock_out` for an engine that has started its threads: the port opened (never the engine's own
    virtual input), the thread started, and playing from the session's start, unless the engine follows
    MIDI clock in (then the sender's start or continue starts it, and its stop stops it)."""
    ours = [engine.input_name] if engine.virtual_input else []
    port = open_clock_port(engine.ports, cfg.sync.clock_out, virtual_name=engine.virtual_name or cfg.midi.virtual_name,
                           exclude=ours)
    out = ClockOut(port, engine.tempo, engine.clock, spin_s=cfg.scheduler.spin_ms / 1000,
                   rt_priority=cfg.scheduler.rt_priority,
                   on_error=lambda exc: engine.report(f"MIDI clock out stopped: {exc}")).start()
    engine.report(f"MIDI clock out on {port.name!r}")
    if cfg.timing.source != "clock":
        out.play()
    return out
