"""scores.segments: one sweep gives the spans the all-notes scan gave (the scan was quadratic: an
hour's recording, 81k notes, never finished its MusicXML)."""
from __future__ import annotations

import random
from fractions import Fraction

from agent.music.scores import segments


def reference(notes, end):
    """The definition, note by note for every span (the old implementation)."""
    cuts = sorted({0, end} | {a for _, a, _, _ in notes} | {b for _, _, b, _ in notes})
    out = []
    for lo, hi in zip(cuts, cuts[1:]):
        if hi > end:
            break
        sounding = []
        for p, a, b, v in sorted(notes):
            if a <= lo and hi <= b:
                tie = None if (a == lo and b == hi) else "start" if a == lo else "stop" if b == hi else "continue"
                if all(q != p for q, _, _ in sounding):
                    sounding.append((p, v, tie))
        out.append((lo, hi - lo, sounding))
    return out


def test_the_sweep_gives_the_spans_of_the_definition_on_random_overlapping_notes():
    rng = random.Random(7)
    for trial in range(200):
        notes = []
        for _ in range(rng.randint(0, 40)):
            a = Fraction(rng.randint(0, 96), 12)
            b = a + Fraction(rng.randint(0, 30), 12)  # some of no length, many overlapping
            notes.append((rng.choice((60, 62, 64, 67)), a, b, rng.randint(1, 127)))
        end = Fraction(rng.choice((48, 96, 132)), 12)  # notes past the end are cut there
        assert segments(notes, end) == reference(notes, end), trial


def test_a_note_struck_again_while_it_sounds_is_one_voice_with_its_ties():
    notes = [(60, Fraction(0), Fraction(4), 80), (60, Fraction(1), Fraction(2), 90), (64, Fraction(1), Fraction(3), 70)]
    assert segments(notes, Fraction(4)) == [
        (0, 1, [(60, 80, "start")]),
        (1, 1, [(60, 80, "continue"), (64, 70, "start")]),
        (2, 1, [(60, 80, "continue"), (64, 70, "stop")]),
        (3, 1, [(60, 80, "stop")]),
    ]
