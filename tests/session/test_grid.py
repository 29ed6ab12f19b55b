"""FollowedBeats (agent/session/grid.py): the followed beat and bar line as sampled, and back to time."""
from __future__ import annotations

import pytest

from agent.session.grid import FollowedBeats


def test_the_bar_line_before_a_time_counts_from_the_followed_bar_beat():
    f = FollowedBeats(4)
    f.add(10.0, 0.0, 120.0, bar_beat=1.0)  # bars at beats 1, 5, 9...
    f.add(14.0, 8.0, 120.0, bar_beat=1.0)
    assert f.bar_before(13.5) == pytest.approx(5.0, abs=1e-9)  # beat 7: in the bar from beat 5
    assert f.bar_before(12.0) == pytest.approx(1.0, abs=1e-9)  # beat 4: in the bar from beat 1
    assert f.bar_before(12.5) == pytest.approx(5.0, abs=1e-9)  # beat 5: a bar line is its own bar's start


def test_time_inverts_beat_between_samples_and_beyond_them():
    f = FollowedBeats(4)
    f.add(10.0, 0.0, 120.0)
    f.add(12.0, 3.0, 90.0)  # the map moved: 3 beats in 2 s between the samples
    for t in (9.0, 10.0, 11.0, 12.0, 13.0):
        assert f.time(f.beat(t)) == pytest.approx(t, abs=1e-9)
    assert f.time(5.0) == pytest.approx(12.0 + 2.0 * 60 / 90, abs=1e-9)  # beyond: at the last tempo


def test_after_a_restart_the_bar_beat_goes_on_with_the_beats():
    f = FollowedBeats(4)
    f.add(0.0, 0.0, 120.0)
    f.add(3.0, 6.0, 120.0)  # beat 6 at 3 s
    f.add(3.5, 0.0, 120.0, bar_beat=0.0)  # a restart: beat 0 again, on from the next whole bar (beat 8)
    assert f.beats[-1] == pytest.approx(8.0, abs=1e-9)
    assert f.bar_before(4.0) == pytest.approx(8.0, abs=1e-9)
