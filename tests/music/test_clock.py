"""Tempo map, bar lines, the recording's tick map, and the fake clock."""
from __future__ import annotations

import pytest

from agent.music.tempomap import FakeClock, TempoMap, TickMap


def test_tempo_map_round_trip_and_continuity_across_a_change():
    tm = TempoMap(120, origin_s=10.0)
    assert tm.beat(11.0) == pytest.approx(2.0)
    assert tm.time(2.0) == pytest.approx(11.0)
    tm.set_bpm(60, at_s=11.0)
    assert tm.beat(11.0) == pytest.approx(2.0)  # no jump at the change
    assert tm.beat(12.0) == pytest.approx(3.0)


def test_next_bar():
    tm = TempoMap(120, origin_s=0.0, beats_per_bar=4)  # a bar is 2 s
    assert tm.next_bar(0.0) == pytest.approx(0.0)
    assert tm.next_bar(0.1) == pytest.approx(2.0)
    assert tm.next_bar(3.999) == pytest.approx(4.0)


def test_restart_makes_beat_zero_now():
    tm = TempoMap(90, origin_s=0.0)
    tm.restart(5.0)
    assert tm.beat(5.0) == 0.0


def test_fake_clock_only_moves_forward():
    c = FakeClock(1.0)
    c.sleep_until(3.0)
    c.set(2.0)
    assert c.now() == 3.0 and c.advance(0.5) == 3.5


def test_tick_map_counts_ticks_through_tempo_changes():
    tm = TickMap([(0.0, 120.0), (1.0, 60.0)], ticks_per_beat=480)  # 2 beats in the first second, then 1 a second
    assert tm.tick(0.5) == 480 and tm.tick(1.0) == 960 and tm.tick(2.0) == 1440
    assert tm.beat(1.5) == pytest.approx(2.5)


def test_align_with_a_downbeat_moves_the_bar_lines_not_the_beat_count():
    tm = TempoMap(120, 0.0, beats_per_bar=4)
    assert tm.next_bar(0.1) == pytest.approx(2.0)  # beat 4
    tm.align(120, 1.5, downbeat_s=1.5)  # the player's bar line is on beat 3
    assert tm.beat(1.5) == pytest.approx(3.0)
    assert tm.bar_beat == 3.0
    assert tm.next_bar(0.1) == pytest.approx(1.5)
    assert tm.next_bar(1.6) == pytest.approx(3.5)
    assert tm.bar_position(2.0) == pytest.approx(1.0)
    tm.align(120, 1.5, downbeat_s=1.5, beats_per_bar=3, division=3, swing=1.0)
    assert (tm.beats_per_bar, tm.division) == (3, 3)
    assert tm.next_bar(1.6) == pytest.approx(3.0)
    tm.restart(10.0)
    assert tm.bar_beat == 0.0 and tm.next_bar(10.1) == pytest.approx(11.5)
