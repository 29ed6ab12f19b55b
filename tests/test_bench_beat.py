"""bench_beat --quick: real corpus tunes in every metre, the new tracker and the 4730ef6 baseline in one run.

Builds data/beat_tunes.json from music21's corpus on first use (about a minute), then runs in well
under a minute.
"""
from __future__ import annotations

import json

from agent.bench import beat as bench_beat

GROUPS = ("12/8", "2/2", "2/4", "2/4 swung", "3/4", "4/4", "4/4 swung", "6/8", "9/8", "chorale")


def test_quick_run_scores_every_metre_plain_and_rubato_for_both_trackers(tmp_path):
    out = tmp_path / "beat.json"
    assert bench_beat.main(["--quick", "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    keys = {tuple(k.split("|")) for k in s["rows"]}
    expected = {(g, v, n) for g in GROUPS for v in ("plain", "rubato") for n in ("new", "baseline")}
    assert keys == expected
    assert set(s["cost_ms"]) == {"new", "baseline"}
    assert len(s["calibration"]["new"]) == 5
    row = s["rows"]["6/8|plain|new"]
    assert 0.0 <= row["late_tempo"] <= 1.0
