"""Music a keyboard player plays, from the data there is offline: helpers for data preparation (agent/training/prepare.py).

- `chord_accompaniment`: a lead sheet's chord symbols (ABC "D", "Em", "A7", "Am/c") realised as a simple
  left hand: a close triad over the chord's bass in a low octave, held until the next symbol.
- `roll_notes`: a piano-roll piece (frames x 88, the polyphonic benchmark's Nottingham set) as notes;
  its chords are already in the roll.
- `skip_reason`: a parse error message -> a short reason to count skipped files by.

music21 is imported inside the functions that use it (slow to import; the live path never needs it).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from agent.music.tokens import Note, Vocab

# The left hand's bass note is put in [BASS_LO, BASS_LO + 11] (F2..E3); the other chord tones stack
# closely above it, so the highest is at most an octave and a sixth above F2 (D4): under a folk melody.
BASS_LO = 41

# Layout of the benchmark rolls (see agent/training/rollcard.py, which works these out from the data):
# frames per beat, and the MIDI pitch of key 0.
ROLL_LAYOUT = {"Nottingham": (2.0, 21), "JSB_Chorales": (1.0, 9)}


def close_voicing(bass_pc: int, pcs: Sequence[int], *, bass_lo: int = BASS_LO) -> list[int]:
    """MIDI pitches: `bass_pc` in [bass_lo, bass_lo + 11], then each other pitch class at its first
    pitch above the bass (close position), lowest first."""
    bass = bass_lo + (bass_pc - bass_lo) % 12
    out = [bass]
    for pc in pcs:
        if pc % 12 != bass_pc % 12:
            out.append(bass + (pc - bass) % 12)
    return sorted(set(out))


def triad(symbol) -> list[int]:
    """Pitch classes of a ChordSymbol's root, third and fifth (a sus chord's second or fourth for its third;
    a seventh or ninth is left out: a simple left hand)."""
    root = symbol.root().pitchClass
    above = {(p.pitchClass - root) % 12 for p in symbol.pitches}
    third = next((i for i in (4, 3, 5, 2) if i in above), None)
    fifth = next((i for i in (7, 6, 8) if i in above), None)
    return [root] + [(root + i) % 12 for i in (third, fifth) if i is not None]


def chord_pitches(symbol, *, bass_lo: int = BASS_LO) -> list[int]:
    """A music21 ChordSymbol -> the left hand's MIDI pitches (empty for "no chord" or no pitches).

    A slash chord's bass is played under the triad (Am/G: G A C E) unless it lies a semitone from a chord
    tone (a misread symbol: music21 reads the Nottingham "D/f+" as F under D F# A#); then the root is."""
    from music21 import harmony

    if isinstance(symbol, harmony.NoChord) or not symbol.pitches:
        return []
    pcs = triad(symbol)
    bass = symbol.bass().pitchClass if symbol.bass() is not None else pcs[0]
    if any((bass - pc) % 12 in (1, 11) for pc in pcs):
        bass = pcs[0]
    return close_voicing(bass, pcs, bass_lo=bass_lo)


def chord_accompaniment(score, *, velocity: int = 80, bass_lo: int = BASS_LO) -> list[Note]:
    """The chord symbols of a music21 score as left-hand notes (beats), each chord held until the next
    symbol (a "no chord" symbol ends the one before) or the end of the last note."""
    from music21 import harmony

    flat = score.flatten()
    symbols = sorted(flat.getElementsByClass(harmony.ChordSymbol), key=lambda c: float(c.offset))
    if not symbols:
        return []
    ends = [float(n.offset + n.quarterLength) for n in flat.notes if not isinstance(n, harmony.ChordSymbol)]
    piece_end = max(ends, default=float(flat.highestTime))
    notes = []
    for i, cs in enumerate(symbols):
        start = float(cs.offset)
        end = float(symbols[i + 1].offset) if i + 1 < len(symbols) else piece_end
        if end <= start:
            continue  # two symbols at one offset: the later one wins
        notes += [Note(p, start, end, velocity) for p in chord_pitches(cs, bass_lo=bass_lo)]
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def roll_notes(frames: np.ndarray, frames_per_beat: float, lowest: int, *, velocity: int = 80) -> list[Note]:
    """A (frames x 88) roll piece as notes (beats). A key held over consecutive frames is one note:
    a roll cannot tell a repeated note from a held one."""
    from agent.model.roll import frames_to_notes

    return frames_to_notes(frames, frames_per_beat, velocity=velocity, lowest=lowest)


def skip_reason(error: str) -> str:
    """A parse error ("path: ExcType: message" or "ExcType: message") -> a short reason to count by."""
    head = error.split(":", 1)[0].strip()
    if head.isidentifier():
        return f"parse error ({head})"
    parts = [p.strip() for p in error.split(":")]
    kind = next((p for p in parts[1:] if p.isidentifier()), "")
    return f"parse error ({kind})" if kind else "parse error"
