"""agent/music/keys.py: key names, and the one estimator (the sampler's "auto" key and evaluation use it)."""
from __future__ import annotations

import numpy as np
import pytest

from agent.music.keys import KEYS, KK_MAJOR, KK_MINOR, KeyNameError, best_key, estimate_key, key_name, parse_key, scale_pitch_classes


@pytest.mark.parametrize("text,want", [("D minor", (2, "minor")), ("Bb major", (10, "major")),
                                       ("f#", (6, "major")), ("none", None), ("auto", "auto")])
def test_parse_key(text, want):
    assert parse_key(text) == want


@pytest.mark.parametrize("bad", ["H major", "C dorian", "Cx"])
def test_a_bad_key_name_says_what_is_expected(bad):
    with pytest.raises(KeyNameError, match=f"key {bad!r}"):
        parse_key(bad)


def test_key_names_and_scales():
    assert key_name((10, "major")) == "Bb major" and key_name((9, "minor")) == "A minor"
    assert scale_pitch_classes((9, "minor")) == {9, 11, 0, 2, 4, 5, 7, 8}  # with the leading tone G#
    assert len(KEYS) == 24 and KEYS[0] == (0, "major") and KEYS[12] == (0, "minor")


def test_best_key_is_the_pearson_correlation_with_the_rotated_profiles():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = rng.integers(0, 30, 12)
        tonic, mode, r = best_key(counts)
        want = max(((float(np.corrcoef(counts, np.roll(prof, t))[0, 1]), (t, m))
                    for m, prof in (("major", KK_MAJOR), ("minor", KK_MINOR)) for t in range(12)),
                   key=lambda x: x[0])
        assert (tonic, mode) == want[1] and r == pytest.approx(want[0])
    assert best_key(np.zeros(12)) == (0, "major", 0.0) and best_key(np.ones(12)) == (0, "major", 0.0)


def test_estimate_key_needs_enough_notes_and_pitch_classes():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    assert estimate_key(c_major) == (0, "major")
    assert estimate_key(c_major[:7]) is None  # fewer than KEY_MIN_NOTES
    assert estimate_key([60, 67] * 8) is None  # one interval: no key to speak of
