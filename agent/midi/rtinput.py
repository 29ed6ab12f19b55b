"""An rtmidi input that never runs Python in JACK's process thread.

mido's rtmidi backend always reads with a Python callback. Under JACK that
callback runs inside JACK's real-time process cycle and must take the GIL
first; when another thread holds the GIL past the cycle, the writer's next
cycle reuses the port buffer while rtmidi is still reading it, and rtmidi
(which ignores `jack_midi_event_get`'s error) hands the callback the first
event of the cycle again in place of the others. Measured here with two
Python threads busy: of 1,500 messages sent in bursts of 5, 1,389 arrived
and only 326 were distinct (tests/realmidi/test_input_burst.py sends such bursts).
A chord becomes one note struck several times, and its note-offs are lost.

So under JACK the port is read the other way rtmidi offers: no callback, the
messages wait in rtmidi's own queue (filled in JACK's thread, C++ only, no
GIL), and a thread of ours polls it every POLL_S. Other APIs (ALSA, CoreMIDI,
WinMM) read on a thread of rtmidi's own that may wait for the GIL safely, so
they keep the callback and its lower latency.

Arrival times: rtmidi gives each message its distance from the one before,
measured in JACK's thread, so the spacing of a burst is exact however late
the poll; `ArrivalTimes` places that spacing on our clock.
"""
from __future__ import annotations

import math
import sys
import threading
from typing import Callable

import mido

POLL_S = 0.0005  # mean added latency under JACK: half of this
QUEUE = 16384  # messages rtmidi holds between polls (a 10,000 msg/s flood for 1.6 s)


class ArrivalTimes:
    """Arrival times, on our clock, of messages read from rtmidi's queue.

    `stamp(delta_s, now)` for each message read at `now`, where delta_s is
    rtmidi's time since the message before. A message read at `now` arrived at
    or before now, and after the last poll that found the queue empty
    (`empty(now)`): the offset between rtmidi's running sum and our clock is
    the earliest placement that every read allows, let go slowly (DRIFT
    seconds per second) so that two clocks drifting apart cannot hold it.
    """

    DRIFT = 2e-4

    def __init__(self) -> None:
        self.sum_s = 0.0
        self.offset: float | None = None
        self._offset_at = 0.0
        self._empty_at = -math.inf

    def empty(self, now: float) -> None:
        self._empty_at = now

    def stamp(self, delta_s: float, now: float) -> float:
        self.sum_s += max(0.0, delta_s)
        latest = now - self.sum_s  # the offset if this message arrived just now
        if self.offset is None:
            self.offset = latest
        else:
            self.offset = min(latest, self.offset + (now - self._offset_at) * self.DRIFT)
        self._offset_at = now
        return max(self._empty_at, self.offset + self.sum_s)


class RtInput:
    """An opened rtmidi input: `.name`, `.close()`, `.closed`, `._rt` (for liveness checks).

    `receiver(msg, t_s)` gets every message the port reads, stamped on `now`.
    """

    def __init__(self, rt, name: str, receiver: Callable[[mido.Message, float], None],
                 now: Callable[[], float], poll: bool) -> None:
        self._rt, self.name, self._receiver, self._now = rt, name, receiver, now
        self.polled = poll
        self.closed = False
        self.undecodable = 0  # bytes mido cannot parse (mido's own port drops them too)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        rt.ignore_types(sysex=False, timing=False, active_sense=True)  # as mido's port does
        if poll:
            self._thread = threading.Thread(target=self._run, name=f"midi-in {name}", daemon=True)
            self._thread.start()
        else:
            rt.set_callback(self._on_message)

    def _deliver(self, data, t_s: float) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except ValueError:
            self.undecodable += 1
            return
        self._receiver(msg, t_s)

    def _on_message(self, item, _data=None) -> None:
        self._deliver(item[0], self._now())

    def _run(self) -> None:
        times = ArrivalTimes()
        rt, now, stop = self._rt, self._now, self._stop
        while not stop.is_set():
            try:
                item = rt.get_message()
                if item is None:
                    times.empty(now())
                    stop.wait(POLL_S)
                    continue
                data, delta_s = item
                self._deliver(data, times.stamp(delta_s, now()))
            except Exception as exc:  # a receiver's bug must not end the input
                print(f"antiphon: MIDI input {self.name!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
                stop.wait(0.01)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        else:
            self._rt.cancel_callback()
        self._rt.close_port()
        self._rt.delete()


def open_port(rt, name: str, virtual: bool) -> None:
    """Open the port `name` on rtmidi's `rt` (a MidiIn or MidiOut), or create the virtual port
    `name`; on failure `rt` is deleted and the error raised (OSError for a name not listed)."""
    try:
        if virtual:
            rt.open_virtual_port(name)
        else:
            names = rt.get_ports()
            if name not in names:
                raise OSError(f"unknown port {name!r}")
            rt.open_port(names.index(name))
    except BaseException:
        rt.delete()
        raise


def open_rt_input(api: str | None, name: str, receiver, now, *, virtual: bool) -> RtInput:
    """Open `name` (or create the virtual input `name`) on rtmidi API `api` ('UNIX_JACK'...; None: default)."""
    import rtmidi

    api_id = getattr(rtmidi, f"API_{api}") if api else rtmidi.API_UNSPECIFIED
    rt = rtmidi.MidiIn(api_id, queue_size_limit=QUEUE)
    open_port(rt, name, virtual)
    return RtInput(rt, name, receiver, now, poll=rt.get_current_api() == rtmidi.API_UNIX_JACK)
