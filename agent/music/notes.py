"""Where notes come from and go to: MIDI files, music21 scores, timed messages.

Everything here speaks `tokens.Note` (times in beats). Tokens are made by
`tokens.encode`; this module only reads and writes the outside formats.
music21 is imported inside the functions that use it: it is slow to import
and the live path does not need it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import mido

from agent.errors import AntiphonError
from agent.music.tokens import Note

DRUM_CHANNEL = 9  # MIDI channel 10, zero-based
MAX_MIDI_BYTES = 32 * 1024 * 1024  # the largest real performances are a few MB: beyond this, refuse
MAX_BEATS = 100_000.0  # ~14 hours at 120 bpm: a file longer than this has absurd tick values
TEMPO_RANGE_BPM = (1.0, 2000.0)  # a set_tempo outside this is corrupt, not music


class MidiReadError(AntiphonError, ValueError):
    """A MIDI file could not be read; the message names the file."""


@dataclass(frozen=True)
class TimedMessage:
    """A MIDI message with its time in beats and in seconds (at one tempo)."""

    beat: float
    time_s: float
    message: mido.Message


@dataclass
class MidiPiece:
    notes: list[Note]
    bpm: float  # the file's first tempo (120 if it sets none)
    ticks_per_beat: int


def read_midi(path: str | Path, *, drums: bool = False, track: str | None = None) -> MidiPiece:
    """Read every track of a MIDI file (or only the one named `track`), merged, as notes in beats.

    Beats are the file's ticks / ticks_per_beat; the tempo map only turns
    beats into seconds, so only the first tempo is kept (as `bpm`). A note-on
    with velocity 0 is a note-off. Overlapping notes of one pitch on one
    channel are paired first-in, first-out; notes never released end at the
    file's last tick. Drum-channel notes are skipped unless `drums`.
    """
    path = Path(path)
    mid = _open_midi(path)
    tpb = mid.ticks_per_beat
    bpm = None
    pending: dict[tuple[int, int], list[tuple[int, int]]] = {}
    notes: list[Note] = []
    last_tick = 0
    for tick, msg in _merged_events(path, mid, track):
        last_tick = max(last_tick, tick)
        if msg.type == "set_tempo":
            lo, hi = TEMPO_RANGE_BPM
            if not mido.bpm2tempo(hi) <= msg.tempo <= mido.bpm2tempo(lo):
                raise MidiReadError(f"{path}: tempo of {msg.tempo} microseconds a beat at tick {tick} "
                                    f"(outside {lo:g}..{hi:g} bpm)")
            if bpm is None:
                bpm = mido.tempo2bpm(msg.tempo)
        if msg.type not in ("note_on", "note_off"):
            continue
        if msg.channel == DRUM_CHANNEL and not drums:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            pending.setdefault(key, []).append((tick, msg.velocity))
        elif pending.get(key):
            on, vel = pending[key].pop(0)
            notes.append(Note(msg.note, on / tpb, tick / tpb, vel))
    for (ch, pitch), ons in pending.items():
        for on, vel in ons:
            notes.append(Note(pitch, on / tpb, max(last_tick, on + 1) / tpb, vel))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return MidiPiece(notes, bpm or 120.0, tpb)


def _open_midi(path: Path) -> mido.MidiFile:
    """The file parsed by mido, or MidiReadError: missing, unreadable, too big, or SMPTE-timed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MidiReadError(f"{path}: no such file") from None
    except OSError as exc:
        raise MidiReadError(f"{path}: cannot read it ({exc})") from None
    if size > MAX_MIDI_BYTES:
        raise MidiReadError(f"{path}: {size / 2**20:.0f} MB is too big for a MIDI file "
                            f"(the limit is {MAX_MIDI_BYTES // 2**20} MB); refused without reading it")
    try:
        mid = mido.MidiFile(path, clip=True)
    except FileNotFoundError:
        raise MidiReadError(f"{path}: no such file") from None
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError...
        raise MidiReadError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {exc})") from None
    tpb = mid.ticks_per_beat
    if not isinstance(tpb, int) or tpb <= 0:
        raise MidiReadError(f"{path}: ticks per beat is {tpb} (must be a positive number; SMPTE time is not supported)")
    return mid


def _merged_events(path: Path, mid: mido.MidiFile, track: str | None) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) of every track (or the one named `track`), in time order; each
    track's own order kept at one tick. MidiReadError for a missing track or absurd tick values."""
    tracks = [t for t in mid.tracks if track is None or t.name == track]
    if not tracks:
        raise MidiReadError(f"{path}: no track named {track!r} (it has {', '.join(repr(t.name) for t in mid.tracks)})")
    events = []
    for trk in tracks:
        tick = 0
        for msg in trk:
            tick += msg.time
            events.append((tick, msg))
    events.sort(key=lambda e: e[0])  # stable: keeps each track's order at one tick
    tpb = mid.ticks_per_beat
    if events and events[-1][0] / tpb > MAX_BEATS:
        raise MidiReadError(f"{path}: {events[-1][0] / tpb:.0f} beats long (absurd tick values; "
                            f"the limit is {MAX_BEATS:.0f} beats)")
    return events


def notes_from_music21(score) -> list[Note]:
    """A music21 Score/Part/Stream -> notes in beats (quarter notes).

    Ties are merged into one note; chords give one note per pitch; grace
    notes (no duration) and unpitched notes are skipped.
    """
    s = score.stripTies(inPlace=False)
    notes: list[Note] = []
    for el in s.flatten().notes:
        length = float(el.quarterLength)
        if length <= 0:
            continue
        start = float(el.offset)
        vel = el.volume.velocity if el.volume.velocity is not None else 80
        for p in getattr(el, "pitches", ()):
            notes.append(Note(int(p.midi), start, start + length, int(vel)))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def to_messages(notes: Iterable[Note], bpm: float, *, channel: int = 0, offset_beats: float = 0.0) -> list[TimedMessage]:
    """Notes -> note_on/note_off messages with times in beats and seconds.

    At one instant note-offs come before note-ons, so a repeated pitch is
    released before it sounds again; a note of no length (end <= start) is
    the exception: its own note-off follows its note-on, or it would never end.
    """
    spb = 60.0 / bpm
    evs = []
    for n in notes:
        evs.append((n.start, 1, n.pitch, n.velocity))
        evs.append((n.end, 0, n.pitch, 0) if n.end > n.start else (n.start, 2, n.pitch, 0))
    evs.sort()
    out = []
    for beat, order, pitch, vel in evs:
        b = beat + offset_beats
        kind = "note_on" if order == 1 else "note_off"
        msg = mido.Message(kind, channel=channel, note=pitch, velocity=vel)
        out.append(TimedMessage(b, b * spb, msg))
    return out


def write_midi(notes: Iterable[Note], path: str | Path, *, bpm: float = 120.0, ticks_per_beat: int = 480,
               tracks: dict[str, Iterable[Note]] | None = None, channel: int = 0) -> Path:
    """Write notes (or several named tracks of notes) as a type-1 MIDI file."""
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo_track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    mid.tracks.append(tempo_track)
    for name, ns in (tracks or {"notes": notes}).items():
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last = 0
        for tm in to_messages(ns, bpm, channel=channel):
            tick = round(tm.beat * ticks_per_beat)
            track.append(tm.message.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    path = Path(path)
    mid.save(path)
    return path
