"""agent/bench/relate.py's measures on hand-made answers (the run itself: tests/live/jam/test_echo_jam.py)."""
from __future__ import annotations

from collections import Counter

import pytest

from agent.bench.relate import in_key, intervals, longest_run, ngram_overlap, related, verbatim

CALL = [(0, 60), (12, 62), (24, 64), (36, 65), (48, 67)]  # C D E F G, a beat apart (12 ticks)


def test_the_call_transposed_shares_every_interval_but_copies_no_note():
    up = [(t + 100, p + 1) for t, p in CALL]
    cp, ap = [p for _, p in CALL], [p for _, p in up]
    assert longest_run(intervals(ap), intervals(cp)) == 4
    assert ngram_overlap(intervals(ap), intervals(cp)) == pytest.approx(1.0)
    assert verbatim(up, CALL) == 1  # F is the call's too, alone


def test_verbatim_counts_notes_copied_with_their_rhythm():
    same_pitches_other_rhythm = [(0, 60), (6, 62), (12, 64), (18, 65)]
    assert verbatim(same_pitches_other_rhythm, CALL) == 1
    assert verbatim([(200, 62), (212, 64), (224, 65), (230, 70)], CALL) == 3


def test_related_is_own_cosine_minus_the_mean_of_the_others():
    own, other = Counter({0: 1, 4: 1}), Counter({1: 1, 6: 1})
    assert related(own, [other], Counter({0: 2, 4: 2})) == pytest.approx(1.0)
    assert related(own, [other], Counter({1: 1, 6: 1})) == pytest.approx(-1.0)


def test_in_key_is_the_share_of_notes_in_the_calls_key():
    c_major_call = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    assert in_key([60, 61, 62, 64], c_major_call) == pytest.approx(0.75)
