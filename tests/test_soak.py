"""The soak's figures (agent/bench/soakfigures.py): segments cut where they should be, last over
first, and a recording read back by mido and music21. The hour itself is scripts/soak.py's."""
from __future__ import annotations

from collections import deque

import pytest

from agent.bench import soakfigures as sf
from agent.music.tempomap import FakeClock
from agent.session.recorder import Recorder


def test_segments_bucket_each_series_by_time_and_the_last_takes_what_comes_after():
    start, seg = 100.0, 60.0
    # errors in seconds: segment 1 all 1 ms, segment 2 all 3 ms, one late straggler past the end
    errors = [(100.0 + k * 0.5, 0.001) for k in range(100)] + [(160.0 + k * 0.5, 0.003) for k in range(100)]
    errors.append((400.0, 0.010))  # after the last segment's end: counted in the last
    steps = [(130.0, 0.0002), (170.0, 0.0004)]
    flushes = [(105.0, 0.002), (110.0, 0.004), (115.0, 0.006), (165.0, 0.008)]
    rss = [(110.0, 150.0), (150.0, 151.0), (170.0, 152.5)]
    load = [(110.0, 1.0), (150.0, 2.0), (170.0, 3.0)]
    segs = sf.segments(start, seg, 2, errors, steps, flushes, rss, load)
    assert [s["notes_paired"] for s in segs] == [100, 101]
    assert segs[0]["sched_p99_ms"] == pytest.approx(1.0, abs=1e-9)
    assert segs[1]["sched_p99_ms"] == pytest.approx(3.0, abs=1e-9)  # nearest rank: 0.99*100 -> the 100th of 101
    assert segs[1]["sched_p50_ms"] == pytest.approx(3.0, abs=1e-9)
    assert segs[0]["step_p99_ms"] == pytest.approx(0.2, abs=1e-9)
    assert segs[0]["flush_p50_ms"] == pytest.approx(4.0, abs=1e-9)
    assert segs[0]["flush_max_ms"] == pytest.approx(6.0, abs=1e-9)
    assert segs[1]["flushes"] == 1
    assert segs[0]["rss_mb"] == pytest.approx(151.0, abs=1e-9)  # the segment's last sample
    assert segs[0]["load1"] == pytest.approx(1.5, abs=1e-9)
    assert segs[1]["minutes"] == "1-2"
    ratios = sf.flat(segs)
    assert ratios["sched_p99_ms"] == pytest.approx(3.0, abs=1e-3)
    assert ratios["step_p99_ms"] == pytest.approx(2.0, abs=1e-3)
    assert ratios["flush_p50_ms"] == pytest.approx(2.0, abs=1e-3)


def test_a_segment_without_data_gives_no_ratio():
    segs = sf.segments(0.0, 10.0, 2, [(1.0, 0.001)], [], [], [], [])
    assert segs[1]["sched_p99_ms"] is None
    assert sf.flat(segs)["sched_p99_ms"] is None


def test_drain_takes_everything_handed_over_once():
    q = deque([(1.0, 0.1), (2.0, 0.2)])
    assert sf.drain(q) == [(1.0, 0.1), (2.0, 0.2)]
    assert sf.drain(q) == []


def test_timed_flushes_keep_each_flush_and_its_result(tmp_path):
    clock = FakeClock()
    rec = Recorder(120.0, clock=clock, flush_s=0)
    rec.start(tmp_path / "s.mid")
    kept: deque = deque()
    sf.time_flushes(rec, kept)
    assert rec.flush() is True
    assert len(kept) == 1
    assert kept[0][1] >= 0.0


def test_a_recording_is_read_back_by_mido_and_music21(tmp_path):
    clock = FakeClock(1000.0)
    rec = Recorder(120.0, clock=clock, flush_s=0)
    path = tmp_path / "session.mid"
    rec.start(path)
    for k, pitch in enumerate((60, 62, 64)):  # the player: three quarter notes
        rec.note("human", pitch, 80, 1000.0 + k * 0.5)
        rec.note("human", pitch, 0, 1000.0 + k * 0.5 + 0.4)
    for k, pitch in enumerate((67, 65)):  # the agent: two
        rec.note("agent", pitch, 70, 1002.0 + k * 0.5)
        rec.note("agent", pitch, 0, 1002.0 + k * 0.5 + 0.4)
    clock.set(1004.0)
    rec.stop()
    got = sf.read_recording(path)
    assert got["mido_note_ons"] == {"tempo": 0, "human": 3, "agent": 2}
    assert got["music21_mid_notes"] == [3, 2]
    assert got["music21_xml_notes"] == [3, 2]
    assert got["png_bytes"] > 1000


def test_a_recording_that_is_not_midi_is_named_not_raised(tmp_path):
    path = tmp_path / "bad.mid"
    path.write_bytes(b"not a midi file")
    got = sf.read_recording(path)
    assert got["mido_error"].startswith("OSError")
    assert "mido_note_ons" not in got
