"""The token vocabulary, and timed notes <-> token ids.

This is the one place that knows the vocabulary. Time is in *beats*; a tick
is 1/resolution of a beat. Tokens are performance-style events:

    START, END                   piece boundaries
    NOTE_ON(p), NOTE_OFF(p)      p in [pitch_lo, pitch_hi]
    SHIFT(k)                     advance k ticks, 1 <= k <= max_shift
    VEL(b)                       velocity bin b for the note-ons that follow

Encoding is done by one streaming encoder (`StreamEncoder`) that the offline
sources (MIDI files, music21 scores) and the live listener all share, so a
phrase played live becomes exactly the tokens the model was trained on.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

from agent.errors import AntiphonError

START_NAME, END_NAME = "START", "END"


class VocabMismatch(AntiphonError, ValueError):
    """A model's vocabulary differs from the one it is used with."""


@dataclass(frozen=True)
class Token:
    kind: str  # "START" | "END" | "NOTE_ON" | "NOTE_OFF" | "SHIFT" | "VEL"
    value: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind in (START_NAME, END_NAME) else f"{self.kind}({self.value})"


@dataclass(frozen=True)
class Note:
    """One note: MIDI pitch, onset and release in beats, velocity 1..127."""

    pitch: int
    start: float
    end: float
    velocity: int = 80


@dataclass(frozen=True)
class Vocab:
    """Token layout; saved beside every model and checked when it is loaded."""

    resolution: int = 12  # ticks per beat: sixteenths and triplets are exact
    max_shift: int = 48  # ticks in the longest single SHIFT (4 beats at 12)
    pitch_lo: int = 21  # A0
    pitch_hi: int = 108  # C8
    velocity_bins: int = 16

    def __post_init__(self) -> None:
        if self.resolution < 1 or self.max_shift < 1 or self.velocity_bins < 1:
            raise ValueError(f"bad vocabulary {self}")
        if not 0 <= self.pitch_lo <= self.pitch_hi <= 127:
            raise ValueError(f"bad pitch range {self.pitch_lo}..{self.pitch_hi}")

    # -- layout ------------------------------------------------------------
    @property
    def n_pitches(self) -> int:
        return self.pitch_hi - self.pitch_lo + 1

    @property
    def START(self) -> int:  # noqa: N802 - token ids read like constants
        return 0

    @property
    def END(self) -> int:  # noqa: N802
        return 1

    @property
    def note_on_base(self) -> int:
        return 2

    @property
    def note_off_base(self) -> int:
        return 2 + self.n_pitches

    @property
    def shift_base(self) -> int:
        return 2 + 2 * self.n_pitches

    @property
    def velocity_base(self) -> int:
        return self.shift_base + self.max_shift

    @property
    def size(self) -> int:
        return self.velocity_base + self.velocity_bins

    # -- ids <-> tokens ----------------------------------------------------
    def in_range(self, pitch: int) -> bool:
        return self.pitch_lo <= pitch <= self.pitch_hi

    def _pitch(self, pitch: int) -> int:
        if not self.in_range(pitch):
            raise ValueError(f"pitch {pitch} outside the vocabulary's {self.pitch_lo}..{self.pitch_hi}")
        return pitch - self.pitch_lo

    def note_on(self, pitch: int) -> int:
        return self.note_on_base + self._pitch(pitch)

    def note_off(self, pitch: int) -> int:
        return self.note_off_base + self._pitch(pitch)

    def shift(self, ticks: int) -> int:
        if not 1 <= ticks <= self.max_shift:
            raise ValueError(f"shift of {ticks} ticks outside 1..{self.max_shift}")
        return self.shift_base + ticks - 1

    def velocity(self, bin_: int) -> int:
        if not 0 <= bin_ < self.velocity_bins:
            raise ValueError(f"velocity bin {bin_} outside 0..{self.velocity_bins - 1}")
        return self.velocity_base + bin_

    def ticks(self, token_id: int) -> int:
        """The ticks a token advances time by: k for SHIFT(k), 0 for any other token."""
        return token_id - self.shift_base + 1 if self.shift_base <= token_id < self.velocity_base else 0

    def token(self, token_id: int) -> Token:
        i = int(token_id)
        if i == self.START:
            return Token(START_NAME)
        if i == self.END:
            return Token(END_NAME)
        if self.note_on_base <= i < self.note_off_base:
            return Token("NOTE_ON", i - self.note_on_base + self.pitch_lo)
        if self.note_off_base <= i < self.shift_base:
            return Token("NOTE_OFF", i - self.note_off_base + self.pitch_lo)
        if self.shift_base <= i < self.velocity_base:
            return Token("SHIFT", i - self.shift_base + 1)
        if self.velocity_base <= i < self.size:
            return Token("VEL", i - self.velocity_base)
        raise ValueError(f"token id {i} outside the vocabulary (size {self.size})")

    def id(self, token: Token) -> int:
        maker = {
            START_NAME: lambda v: self.START,
            END_NAME: lambda v: self.END,
            "NOTE_ON": self.note_on,
            "NOTE_OFF": self.note_off,
            "SHIFT": self.shift,
            "VEL": self.velocity,
        }.get(token.kind)
        if maker is None:
            raise ValueError(f"unknown token kind {token.kind!r}")
        return maker(token.value)

    def name(self, token_id: int) -> str:
        return str(self.token(token_id))

    def names(self, ids: Iterable[int]) -> str:
        return " ".join(self.name(i) for i in ids)

    # -- velocity bins -----------------------------------------------------
    def velocity_bin(self, velocity: int) -> int:
        v = min(max(int(velocity), 1), 127)
        return min(self.velocity_bins - 1, v * self.velocity_bins // 128)

    def bin_velocity(self, bin_: int) -> int:
        """The velocity a bin decodes to: the middle of the bin's range."""
        lo = -(-bin_ * 128 // self.velocity_bins)  # ceil
        hi = -(-(bin_ + 1) * 128 // self.velocity_bins) - 1
        return min(max((max(lo, 1) + min(hi, 127)) // 2, 1), 127)

    # -- persistence -------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = self.size
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        """A layout from its fields (as to_dict writes them; a field left out takes its default)."""
        if not isinstance(d, dict):
            raise VocabMismatch(f"a vocabulary is a table of fields, not {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = set(d) - set(names) - {"size"}
        if unknown:
            raise VocabMismatch(f"unknown vocabulary fields {sorted(unknown)}")
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise VocabMismatch(f"bad vocabulary: {k} must be a whole number, not {v!r}")
        try:
            vocab = cls(**{k: v for k, v in d.items() if k in names})
        except ValueError as exc:  # a layout __post_init__ refuses
            raise VocabMismatch(str(exc)) from None
        if "size" in d and d["size"] != vocab.size:
            raise VocabMismatch(f"it says size {d['size']} but its layout gives {vocab.size}")
        return vocab

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """A vocab.json; any fault is one line naming the file."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VocabMismatch(f"{path}: cannot read vocabulary: {exc}") from None
        try:
            return cls.from_dict(d)
        except VocabMismatch as exc:
            raise VocabMismatch(f"{path}: {exc}") from None

    def check_same(self, other: "Vocab", where: str = "") -> None:
        """Raise VocabMismatch naming every field that differs."""
        diffs = [
            f"{f.name}: {getattr(self, f.name)} != {getattr(other, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        if diffs:
            at = f" ({where})" if where else ""
            raise VocabMismatch(f"vocabulary mismatch{at}: " + "; ".join(diffs))


class StreamEncoder:
    """Turns note events in time order into tokens, one event at a time.

    Time is given in ticks (absolute). A NOTE_ON for a pitch already sounding
    first closes it; a NOTE_OFF for a pitch not sounding is dropped; pitches
    outside the vocabulary are dropped and counted in `dropped`.
    """

    def __init__(self, vocab: Vocab, start_tick: int = 0) -> None:
        self.vocab = vocab
        self.tick = start_tick
        self.velocity_bin: int | None = None
        self.sounding: set[int] = set()
        self.dropped = 0

    def advance(self, tick: int) -> list[int]:
        """SHIFT tokens from the current tick to `tick` (never backwards)."""
        out: list[int] = []
        gap = tick - self.tick
        while gap > 0:
            step = min(gap, self.vocab.max_shift)
            out.append(self.vocab.shift(step))
            gap -= step
        self.tick = max(self.tick, tick)
        return out

    def note_on(self, pitch: int, velocity: int, tick: int) -> list[int]:
        if not self.vocab.in_range(pitch):
            self.dropped += 1
            return self.advance(tick)
        out = self.advance(tick)
        if pitch in self.sounding:
            out.append(self.vocab.note_off(pitch))
        b = self.vocab.velocity_bin(velocity)
        if b != self.velocity_bin:
            out.append(self.vocab.velocity(b))
            self.velocity_bin = b
        out.append(self.vocab.note_on(pitch))
        self.sounding.add(pitch)
        return out

    def note_off(self, pitch: int, tick: int) -> list[int]:
        out = self.advance(tick)
        if pitch in self.sounding:
            out.append(self.vocab.note_off(pitch))
            self.sounding.discard(pitch)
        return out

    def close_all(self, tick: int) -> list[int]:
        out = self.advance(tick)
        for p in sorted(self.sounding):
            out.append(self.vocab.note_off(p))
        self.sounding.clear()
        return out


def quantize(notes: Iterable[Note], resolution: int) -> list[tuple[int, int, int, int]]:
    """Notes -> (on_tick, off_tick, pitch, velocity) on the tick grid.

    Every note lasts at least one tick. Overlapping notes of one pitch are
    resolved the way a keyboard would play them: the earlier one is released
    when the later one starts; two onsets of one pitch on the same tick merge.
    """
    by_pitch: dict[int, list[list[int]]] = {}
    for n in notes:
        on = round(n.start * resolution)
        off = max(round(n.end * resolution), on + 1)
        by_pitch.setdefault(int(n.pitch), []).append([on, off, int(n.velocity)])
    out: list[tuple[int, int, int, int]] = []
    for pitch, ns in by_pitch.items():
        ns.sort()
        kept: list[list[int]] = []
        for on, off, vel in ns:
            if kept and kept[-1][0] == on:  # same onset: one note, the longer (sorted: this one)
                kept[-1][1:] = [off, vel]
                continue
            if kept and kept[-1][1] > on:
                kept[-1][1] = on
            kept.append([on, off, vel])
        out.extend((on, off, pitch, vel) for on, off, vel in kept)
    return out


def encode(notes: Iterable[Note], vocab: Vocab, *, boundaries: bool = True) -> list[int]:
    """Notes (beats) -> token ids. With `boundaries`, wrapped in START ... END."""
    events: list[tuple[int, int, int, int]] = []  # (tick, order, pitch, velocity)
    for on, off, pitch, vel in quantize(notes, vocab.resolution):
        events.append((on, 1, pitch, vel))
        events.append((off, 0, pitch, 0))  # offs sort before ons at one tick
    events.sort()
    enc = StreamEncoder(vocab)
    out = [vocab.START] if boundaries else []
    for tick, order, pitch, vel in events:
        out += enc.note_on(pitch, vel, tick) if order else enc.note_off(pitch, tick)
    out += enc.close_all(enc.tick)
    if boundaries:
        out.append(vocab.END)
    return out


def decode(ids: Iterable[int], vocab: Vocab, *, start_tick: int = 0) -> list[Note]:
    """Token ids -> notes in beats, sorted by onset then pitch.

    Tolerant of what a sampler may produce: a NOTE_ON of a sounding pitch
    restarts it, a stray NOTE_OFF is ignored, notes still open at END or at
    the end of the stream are closed there (at least one tick long).
    """
    res = vocab.resolution
    tick = start_tick
    vel = 64
    open_: dict[int, tuple[int, int]] = {}
    notes: list[Note] = []

    def close(pitch: int, at: int) -> None:
        on, v = open_.pop(pitch)
        notes.append(Note(pitch, on / res, max(at, on + 1) / res, v))

    for i in ids:
        t = vocab.token(i)
        if t.kind == "SHIFT":
            tick += t.value
        elif t.kind == "VEL":
            vel = vocab.bin_velocity(t.value)
        elif t.kind == "NOTE_ON":
            if t.value in open_:
                close(t.value, tick)
            open_[t.value] = (tick, vel)
        elif t.kind == "NOTE_OFF":
            if t.value in open_:
                close(t.value, tick)
        elif t.kind == END_NAME:
            for p in list(open_):
                close(p, tick)
    for p in list(open_):
        close(p, tick)
    notes.sort(key=lambda n: (n.start, n.pitch, n.end))
    return notes


def duration_ticks(ids: Iterable[int], vocab: Vocab) -> int:
    """Total SHIFT ticks in a token stream."""
    return sum(vocab.ticks(i) for i in ids)


def token_ids_from_names(text: str, vocab: Vocab) -> list[int]:
    """Parse 'NOTE_ON(60) SHIFT(3) ...' back into ids (inverse of Vocab.names)."""
    out = []
    for word in text.split():
        if "(" in word:
            kind, _, rest = word.partition("(")
            out.append(vocab.id(Token(kind, int(rest.rstrip(")")))))
        else:
            out.append(vocab.id(Token(word)))
    return out

