"""Keys: names, scales and the one key estimator (Krumhansl-Schmuckler), used live and in evaluation.

A key is (tonic pitch class, mode): (2, "minor") is D minor. The estimate
correlates a pitch-class histogram with the 24 rotated Krumhansl-Kessler
profiles; `estimate_key` is what the sampler's "auto" key and the demo's
report use, `best_key` the same correlation with its strength, for
evaluation over whole pieces.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from agent.errors import AntiphonError

KEY_MIN_NOTES = 8  # fewer note-ons than this and there is no key to speak of
NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    # natural minor plus the raised 7th: the leading tone is in nearly every minor-key cadence
    "minor": (0, 2, 3, 5, 7, 8, 10, 11),
}
# Krumhansl-Kessler key profiles (C major, C minor).
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class KeyNameError(AntiphonError, ValueError):
    """A key name that is not one ('H major', 'C dorian'); the message says what is expected."""


def parse_key(text: str) -> tuple[int, str] | str | None:
    """'none' -> None, 'auto' -> 'auto', 'D minor' / 'Bb major' / 'f#' -> (tonic pitch class, mode)."""
    t = text.strip().lower()
    if t in ("none", "off", ""):
        return None
    if t == "auto":
        return "auto"
    name, _, mode = t.partition(" ")
    mode = mode.strip() or "major"
    if not name or name[0] not in NOTE_NAMES or mode not in SCALES:
        raise KeyNameError(f"key {text!r}: expected 'none', 'auto' or e.g. 'D minor', 'Bb major'")
    pc = NOTE_NAMES[name[0]]
    for acc in name[1:]:
        if acc == "#":
            pc += 1
        elif acc == "b":
            pc -= 1
        else:
            raise KeyNameError(f"key {text!r}: {name!r} is not a note name (C, F#, Bb, ...)")
    return pc % 12, mode


def key_name(key: tuple[int, str]) -> str:
    """(2, 'minor') -> 'D minor'."""
    return f"{PC_NAMES[key[0] % 12]} {key[1]}"


def scale_pitch_classes(key: tuple[int, str]) -> frozenset[int]:
    """The pitch classes of a key's scale (SCALES: minor has the raised 7th as well)."""
    return frozenset((key[0] + d) % 12 for d in SCALES[key[1]])


def _key_profiles() -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The 24 rotated profiles, each standardised, so correlation is one matrix product."""
    rows, keys = [], []
    for mode, prof in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = np.roll(prof, tonic)
            rows.append((r - r.mean()) / r.std())
            keys.append((tonic, mode))
    return np.array(rows), keys


_PROFILES, KEYS = _key_profiles()  # KEYS: the 24 keys, majors then minors, tonic 0..11


def correlations(pc_counts: Sequence[float]) -> np.ndarray | None:
    """Pearson r of a pitch-class histogram [12] with each of the 24 KEYS' profiles; None when
    the histogram is flat (every pitch class alike, or none): it correlates with nothing."""
    hist = np.asarray(pc_counts, dtype=np.float64)
    centred = hist - hist.mean()
    spread = math.sqrt(float(centred @ centred))
    if spread == 0:
        return None
    return _PROFILES @ (centred / spread) / math.sqrt(12)  # profiles standardised: this is r


def best_key(pc_counts: Sequence[float]) -> tuple[int, str, float]:
    """(tonic, mode, r) of the best-correlated key; a flat histogram gives C major with r = 0."""
    r = correlations(pc_counts)
    if r is None:
        return 0, "major", 0.0
    i = int(np.argmax(r))
    return KEYS[i] + (float(r[i]),)


def estimate_key(pitches: Sequence[int]) -> tuple[int, str] | None:
    """The key of these MIDI pitches, or None with fewer than KEY_MIN_NOTES of them or fewer
    than three pitch classes (a drone or one interval has no key to speak of)."""
    if len(pitches) < KEY_MIN_NOTES:
        return None
    hist = np.bincount(np.asarray(pitches, dtype=np.int64) % 12, minlength=12)
    r = correlations(hist)
    if np.count_nonzero(hist) < 3 or r is None:
        return None
    return KEYS[int(np.argmax(r))]
