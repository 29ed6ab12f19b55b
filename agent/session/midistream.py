"""A Standard MIDI File written as the session goes: each part's track is encoded event by event as
the events arrive, so a flush writes the bytes it has (plus the closing of notes still sounding)
instead of sorting and encoding the whole session again.

Events are taken in time order (the recorder hands them over in batches sorted by time); one that
comes later than its track's last event is placed at that event's tick. Every note-on is kept:
a pitch struck again within the tick its note began (the scheduler's re-strike, a note of no
length) is moved one tick later, where the note before it ends, so the file holds as many
note-ons as reached the port.
"""
from __future__ import annotations

import struct


def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, most significant first."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + vlq(len(data)) + data


END_OF_TRACK = b"\x00" + meta(0x2F, b"")


def track_bytes(events) -> bytes:
    """(tick, order, event bytes) -> track data with delta times and end-of-track; at one tick, order decides."""
    out, last = [], 0
    for tick, _, ev in sorted(events, key=lambda e: (e[0], e[1])):
        out += [vlq(tick - last), ev]
        last = tick
    out.append(END_OF_TRACK)
    return b"".join(out)


def chunk(data: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(data)) + data


def header(tracks: int, ticks_per_beat: int) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, 1, tracks, ticks_per_beat)


class NoteTrack:
    """One part's track, encoded as its notes come: `note(tick, pitch, velocity)` in time order."""

    def __init__(self, name: str, channel: int, program: int) -> None:
        self.channel = channel
        self.body = bytearray(vlq(0) + meta(0x03, name.encode()) + vlq(0) + bytes([0xC0 | channel, program]))
        self.last = 0  # the tick of the last event encoded
        self.sounding: dict[int, int] = {}  # pitch -> the tick its note began
        self.note_ons = 0

    def _add(self, tick: int, ev: bytes) -> None:
        self.body += vlq(tick - self.last) + ev
        self.last = tick

    def note(self, tick: int, pitch: int, velocity: int) -> None:
        """A note-on (velocity > 0) or note-off (0). A re-strike ends the note sounding first; a
        note lasts at least one tick; a note-off for a pitch not sounding is ignored."""
        tick = max(tick, self.last)
        began = self.sounding.pop(pitch, None)
        if began is not None:
            tick = max(tick, began + 1)
            self._add(tick, bytes([0x80 | self.channel, pitch, 0]))
        if velocity > 0:
            self._add(tick, bytes([0x90 | self.channel, pitch, velocity]))
            self.sounding[pitch] = tick
            self.note_ons += 1

    def chunk(self, end_tick: int) -> bytes:
        """The track as a chunk, the notes still sounding closed at end_tick (this file only)."""
        data, last = bytearray(self.body), self.last
        for pitch, began in sorted(self.sounding.items(), key=lambda x: (x[1], x[0])):
            tick = max(end_tick, began + 1, last)
            data += vlq(tick - last) + bytes([0x80 | self.channel, pitch, 0])
            last = tick
        return chunk(bytes(data) + END_OF_TRACK)
