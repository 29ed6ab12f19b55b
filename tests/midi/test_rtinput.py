"""ArrivalTimes: rtmidi's exact spacing placed on our clock by the polls that read it."""
from __future__ import annotations

import pytest

from agent.midi.rtinput import ArrivalTimes


def test_a_burst_read_late_keeps_its_spacing_and_its_place_from_an_earlier_prompt_read():
    a = ArrivalTimes()
    a.empty(9.9995)
    assert a.stamp(0.0, 10.0002) == pytest.approx(10.0002)  # read 0.2 ms after it came: close enough
    a.empty(10.5)
    # three messages 10 ms apart arrive at 11.000, 11.010, 11.020; the poller is held up until 11.050
    stamps = [a.stamp(d, 11.05) for d in (0.9998, 0.010, 0.010)]
    assert stamps == pytest.approx([11.0, 11.01, 11.02], abs=1e-3)


def test_a_stamp_is_never_later_than_its_read_nor_earlier_than_the_last_empty_poll():
    a = ArrivalTimes()
    a.stamp(0.0, 5.0)
    a.empty(7.0)
    # rtmidi's deltas lost 3 s (a dropped message): the sum says 6.0, the empty poll says after 7.0
    assert a.stamp(1.0, 7.001) == pytest.approx(7.0)
    assert a.stamp(0.0, 7.002) <= 7.002


def test_the_offset_lets_go_slowly_so_a_drifting_clock_cannot_hold_it():
    a = ArrivalTimes()
    a.stamp(0.0, 0.0)
    # rtmidi's clock runs 100 ppm slow: after 100 s its sum says 99.99 where ours says 100.0
    t = [a.stamp(1.0 - 1e-4, float(k)) for k in range(1, 101)]
    assert t[-1] == pytest.approx(100.0, abs=1e-3)
