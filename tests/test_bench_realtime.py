"""scripts/bench_realtime.py's bookkeeping: pairing by identity and stuck notes counted at the reader."""
from __future__ import annotations

from agent.bench import realtime as bench

ON, OFF = 0x90, 0x80


def test_one_lost_message_does_not_misalign_the_pairs():
    sent = [((ON, 60, 64), 1.0, 1.0), ((OFF, 60, 0), 2.0, 2.0), ((ON, 62, 64), 3.0, 3.0), ((OFF, 62, 0), 4.0, 4.0)]
    got = [(1.001, (ON, 60, 64)), (3.001, (ON, 62, 64)), (4.001, (OFF, 62, 0))]  # 60's note-off lost
    pairs, lost = bench.pair_by_identity(sent, got)
    assert lost == 1
    assert all(abs(g[0] - s[1] - 0.001) < 1e-9 for s, g in pairs)  # each with its own, 1 ms late


def test_a_note_stop_closes_is_still_stuck_before_the_stop():
    got = [(1.0, (ON, 60, 64)), (2.0, (ON, 62, 64)), (2.5, (OFF, 62, 0)), (9.0, (OFF, 60, 0))]  # 9.0: stop()
    assert bench.sounding(got[:3]) == {(0, 60)} and bench.sounding(got) == set()


def test_all_notes_off_ends_every_note_of_its_channel_only():
    cc = 0xB0
    got = [(1.0, (ON, 60, 64)), (1.0, (ON | 1, 62, 64)), (2.0, (cc, 123, 0))]
    assert bench.sounding(got) == {(1, 62)}
    assert bench.sounding(got + [(2.1, (cc | 1, 120, 0))]) == set()
