"""The interaction benchmark's own arithmetic: the player's schedule and the figures, on made-up runs."""
from __future__ import annotations

import pytest

from agent.bench import interaction as B

NOTES = [(67, 0.0, 1.0), (67, 1.0, 1.0), (69, 2.0, 1.0), (71, 3.0, 1.0), (72, 4.0, 1.0), (67, 5.0, 2.0)]
PHRASES = [{"notes": NOTES, "breath": 2}, {"notes": NOTES, "breath": 3}]


def test_the_schedule_puts_phrases_on_whole_bars_with_the_breath_cut_short():
    events, facts = B.schedule(PHRASES, 120.0, 10.0, seed=1)
    spb = 0.5
    assert facts[0]["start_s"] == 10.0 and facts[1]["start_s"] == 10.0 + 16 * spb  # 7 beats + 7 of room -> 4 bars
    ons = [t for t, d in events if d[0] == 0x90]
    assert len(ons) == 12 and all(abs((t - 10.0) / spb - round((t - 10.0) / spb)) <= 0.05 for t in ons)
    f = facts[0]
    assert (f["resume_s"] - f["breath_s"]) / spb == pytest.approx(0.5, abs=0.1)  # half a beat of breath
    assert (f["end_s"] - 10.0) / spb == pytest.approx(5 + 2 * B.HOLD, abs=0.06)


def test_score_counts_delay_in_beats_breath_triggers_and_the_grid():
    facts = [{"start_s": 0.0, "breath_s": 1.2, "resume_s": 1.5, "end_s": 3.4, "next_s": 8.0},
             {"start_s": 8.0, "breath_s": 9.25, "resume_s": 9.5, "end_s": 11.4, "next_s": 16.0}]
    got = [(1.25, [0x90, 60, 70]), (1.4, [0x80, 60, 0]),  # phrase 1: an answer in the breath (on the grid)
           (3.5, [0x90, 62, 70]), (3.75, [0x90, 64, 70]),  # then the answer: 0.2 beat late, on the eighths
           (11.62, [0x90, 65, 70])]  # phrase 2: 0.44 beat after its end, 0.24 beat off the eighth grid
    row = B.score({"bpm": 120.0, "facts": facts, "got": got, "grid0_s": 0.0,
                   "responses": [{"bpm": 123.0}, {"bpm": 117.0}]})
    assert row["answered"] == 2 and row["false_trigger_rate"] == 0.5 and row["early_rate"] == 0.5
    assert row["delay_p50_beats"] == pytest.approx(0.2) and row["delay_max_beats"] == pytest.approx(0.44)
    assert row["grid_adherence"] == pytest.approx(3 / 4) and row["off_grid_at_beats"] == [23.24]
    assert row["tempo_error_pct"] == pytest.approx(2.5)
