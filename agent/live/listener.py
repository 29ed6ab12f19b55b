"""The input side: the MIDI callback stamps and enqueues; one thread does the rest.

`Listener.receive(msg, t_s)` is the port callback: it only puts
`(message, arrival perf_counter seconds)` on a queue. The listener thread
(the engine thread: it is also the one thread that owns the predictor) takes
messages off the queue and turns them into calls on the jam policy:

- note-on/off -> `jam.player_note(pitch, velocity, on, t_s)` after the
  sustain pedal (CC64: a note released while the pedal is down keeps sounding
  until the pedal comes up) and the echo filter (our own output coming back
  through a MIDI loop is not the player's);
- the end-of-phrase CC -> `jam.phrase_end(t_s)`; the temperature CC ->
  `on_control`; MIDI clock (0xF8, 24 ppq) -> `on_tempo` when its tempo moves and
  `on_pulse(song beat, t_s)` while the sender runs; start, continue, stop and
  song position -> the clock in (agent/midi/clockin.py), then `on_transport`;
- everything else (active sensing, sysex, aftertouch, program changes...) is
  ignored on purpose and counted, never raised.

Between messages the thread wakes at the time the jam policy asks for
(`jam.tick(now)` returns its next deadline), so a phrase end is detected
within the queue's wake-up latency, not a polling period.

Bounds: the inbox holds at most INBOX_MAX messages; in a flood the port's
thread never blocks: once the inbox is full, until the engine thread has
emptied it, note-offs and pedal releases are kept aside in order (at most
SPILL_MAX) and handled after the backlog, and everything else is dropped and
counted (`overflow`). A flood costs the agent some of the player's notes,
never a note stuck on in its context. An exception on the thread cuts the agent's notes, re-primes the
model and goes on (`jam.recover`); only one that keeps coming back (see
faults.Fuse) stops the engine.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import Counter, deque
from typing import Callable

import mido

from agent.midi.clockin import MidiClockIn
from agent.live.faults import Fuse

log = logging.getLogger(__name__)
_WAKE = object()  # put on the queue to make the thread look at its controls now
MAX_IDLE_S = 0.05  # the thread looks at stop requests and controls at least this often
INBOX_MAX = 2048  # messages waiting for the engine thread; a flood beyond this is dropped and counted
MAX_BATCH = 256  # messages handled before the jam ticks again
CALL_WAIT_S = 1.0  # call() waits this long for room in a full inbox
SPILL_MAX = 4096  # releases kept aside while the inbox is full (16 channels x 128 keys, twice)


def _is_release(msg: mido.Message) -> bool:
    """A message that ends something: a note-off, or the sustain pedal going up."""
    kind = msg.type
    return (kind == "note_off" or kind == "note_on" and msg.velocity == 0
            or kind == "control_change" and msg.control == 64 and msg.value < 64)


class EchoFilter:
    """Recognises input that is the agent's own output coming back.

    The scheduler reports every note message just before it sends it
    (`sending`). An incoming note-on of the same pitch within `window_s`
    after a sent note-on is taken to be that message echoed, and so is an
    incoming release (note-off, or note-on at velocity 0) of the same pitch
    within `window_s` after a sent note-off; each send is consumed by one
    echo. The channel and velocity are not compared: a MIDI thru in a DAW
    may move the notes to its track's channel and put them through a
    velocity curve, and it is still our note. A MIDI loop brings a message
    back in about one period (JACK: ~1.3 ms; a DAW's thru: a buffer), so the
    window is short (default 20 ms): a player's unison with the agent is
    only lost if it lands within it. A player's note-off is never taken for
    the echo of an agent's note-on, nor a note-on for a note-off's.
    """

    def __init__(self, window_s: float = 0.02) -> None:
        self.window_s = window_s
        # (sent_s, on, note); bounded: at most this many sends in one window
        self._sent: deque[tuple[float, bool, int]] = deque(maxlen=512)
        self._lock = threading.Lock()
        self.echoes = 0

    def sending(self, msg: mido.Message, t_s: float) -> None:
        """The scheduler is about to send msg (called before the send, so the echo can never come first)."""
        if msg.type in ("note_on", "note_off"):
            on = msg.type == "note_on" and msg.velocity > 0
            with self._lock:
                self._sent.append((t_s, on, msg.note))

    def is_echo(self, msg: mido.Message, t_s: float) -> bool:
        want = (msg.type == "note_on" and msg.velocity > 0, msg.note)
        with self._lock:
            while self._sent and t_s - self._sent[0][0] > self.window_s:  # too old to come back now
                self._sent.popleft()
            for i, (ts, *key) in enumerate(self._sent):
                if tuple(key) == want and -0.001 <= t_s - ts <= self.window_s:
                    del self._sent[i]
                    self.echoes += 1
                    return True
        return False


class Listener:
    """Input queue + the engine thread. `jam` needs player_note, phrase_end, tick, cut."""

    def __init__(self, jam, clock, *, echo: EchoFilter | None = None, end_phrase_cc: int = -1,
                 on_control: Callable[[int, int, float], None] | None = None,
                 on_tempo: Callable[[float, float], None] | None = None,
                 on_transport: Callable[[str, float], None] | None = None,
                 on_pulse: Callable[[float, float], None] | None = None, midi_clock: MidiClockIn | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 on_fault: Callable[[Exception], None] | None = None) -> None:
        self.jam = jam
        self.clock = clock
        self.echo = echo
        self.end_phrase_cc = end_phrase_cc
        self.on_control = on_control
        self.on_tempo = on_tempo
        self.on_transport = on_transport
        self.on_pulse = on_pulse  # (the pulse's song position in beats, t_s), while the clock's sender runs
        self.on_error = on_error  # the engine thread gave up (the error kept coming back)
        self.on_fault = on_fault  # an error the thread survived (notes cut, model re-primed)
        self.inbox: queue.Queue = queue.Queue(maxsize=INBOX_MAX)
        self.overflow = 0  # messages dropped because the inbox was full
        self._spill: deque | None = None  # set while the inbox is full: the releases that came meanwhile
        self._spill_lock = threading.Lock()
        self.faults = 0
        self.fuse = Fuse()
        self.midi_clock = midi_clock or MidiClockIn()
        self.pedal_down = False
        self.held_by_pedal: set[int] = set()
        self.ignored: Counter[str] = Counter()
        self.received = 0
        self.notes_in = 0
        self.player_hooks: list[Callable[[mido.Message, float], None]] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    # -- the callback: stamp (already done by the port) and enqueue, nothing else
    def receive(self, msg: mido.Message, t_s: float) -> None:
        if self._spill is None:
            try:
                self.inbox.put_nowait((msg, t_s))
                return
            except queue.Full:  # a flood: never block the MIDI thread
                with self._spill_lock:
                    self._spill = deque()
        # spilling (until the thread has emptied the inbox): releases are kept, in order, so no
        # player note or pedal sticks in the context; everything else is dropped and counted
        with self._spill_lock:
            if self._spill is not None and _is_release(msg) and len(self._spill) < SPILL_MAX:
                self._spill.append((msg, t_s))
                return
            if self._spill is None:  # the thread ended the spill just now: there is room again
                try:
                    self.inbox.put_nowait((msg, t_s))
                    return
                except queue.Full:
                    pass
        self.overflow += 1

    def _end_spill(self) -> None:
        """The inbox is empty: handle the releases kept during the flood (in order), then take input again."""
        with self._spill_lock:
            spill, self._spill = self._spill, None
        for msg, t_s in spill or ():
            self.handle(msg, t_s)

    def wake(self) -> None:
        try:
            self.inbox.put_nowait(_WAKE)
        except queue.Full:
            pass  # the thread has plenty to wake it

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the engine thread (the predictor's and the jam's owner), soon."""
        try:
            self.inbox.put(fn, timeout=CALL_WAIT_S)
        except queue.Full:
            log.error("engine thread busy: %s dropped", getattr(fn, "__name__", fn))

    # -- message handling (engine thread) -------------------------------------
    def _note(self, pitch: int, velocity: int, on: bool, t_s: float, msg: mido.Message) -> None:
        if on:
            self.held_by_pedal.discard(pitch)
        elif self.pedal_down:
            self.held_by_pedal.add(pitch)  # still sounding until the pedal lifts
            return
        self.notes_in += 1
        for h in self.player_hooks:
            h(msg, t_s)
        self.jam.player_note(pitch, velocity, on, t_s)

    def handle(self, msg: mido.Message, t_s: float) -> None:
        self.received += 1
        kind = msg.type
        if kind in ("note_on", "note_off"):
            if self.echo is not None and self.echo.is_echo(msg, t_s):
                return
            on = kind == "note_on" and msg.velocity > 0
            self._note(msg.note, msg.velocity, on, t_s, msg)
        elif kind == "control_change":
            if msg.control == 64:
                down = msg.value >= 64
                if self.pedal_down and not down:
                    self.pedal_down = False
                    for p in sorted(self.held_by_pedal):
                        self._note(p, 0, False, t_s, mido.Message("note_off", channel=msg.channel, note=p))
                    self.held_by_pedal.clear()
                self.pedal_down = down
            if msg.control == self.end_phrase_cc and msg.value >= 64:
                self.jam.phrase_end(t_s)
            if self.on_control:
                self.on_control(msg.control, msg.value, t_s)
        elif kind == "clock":
            bpm = self.midi_clock.pulse(t_s)
            if bpm is not None and self.on_tempo:
                self.on_tempo(bpm, t_s)
            if self.midi_clock.beat is not None and self.on_pulse:
                self.on_pulse(self.midi_clock.beat, t_s)
        elif kind in ("start", "continue", "stop", "songpos"):
            self.midi_clock.transport(kind, getattr(msg, "pos", 0))
            if self.on_transport:
                self.on_transport(kind, t_s)
        else:
            self.ignored[kind] += 1  # active_sensing, sysex, aftertouch...: deliberately not ours

    def step(self, timeout_s: float) -> None:
        """Handle what is queued (waiting up to timeout_s for the first), then tick the jam."""
        try:
            item = self.inbox.get(timeout=max(0.0, timeout_s))
            for n in range(1, MAX_BATCH + 1):  # then tick: in a flood the agent keeps playing
                if callable(item):
                    item()
                elif item is not _WAKE:
                    self.handle(*item)
                if n == MAX_BATCH or (not self._running and self._thread is not None):
                    return  # stop() is heard within one message, not after the backlog
                item = self.inbox.get_nowait()
        except queue.Empty:
            if self._spill is not None:
                self._end_spill()

    # -- thread ---------------------------------------------------------------
    def start(self) -> "Listener":
        self._running = True
        self._thread = threading.Thread(target=self._run, name="antiphon-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 0.4) -> None:
        self._running = False
        self.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        wake_at = self.clock.now()
        while self._running:
            try:
                self.step(min(wake_at - self.clock.now(), MAX_IDLE_S))
                if not self._running:
                    break
                wake_at = self.jam.tick(self.clock.now())
                idle = getattr(self.jam, "idle_work", None)  # a policy may have background work (a re-prime)
                while idle is not None and self.inbox.empty() and idle(self.clock.now(), wake_at):
                    pass  # one slice at a time, while nothing else is due
            except Exception as exc:  # stop the voice, not the show (unless it keeps failing)
                now = self.clock.now()
                self.faults += 1
                log.exception("engine thread: %s", exc)
                if self.fuse.blow(now) or not self._recover(now):
                    self.error = exc
                    log.error("engine thread stopped: the error keeps coming back")
                    if self.on_error:
                        self.on_error(exc)
                    return
                if self.on_fault:
                    self.on_fault(exc)
                wake_at = now

    def _recover(self, now: float) -> bool:
        try:
            self.jam.recover(now)
            return True
        except Exception:
            log.exception("engine thread: recovering failed")
            return False
