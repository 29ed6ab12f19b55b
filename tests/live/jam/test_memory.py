"""agent/live/jam/memory.py: the session memory's index, call and answer, and each form's expectation.

The material is real: the first call of a corpus tune (agent/bench/relate.py's pick, a 4/4 tune of
music21's corpus), its onsets at the stream's ticks (12 a beat).
"""
from __future__ import annotations

import pytest

from agent.bench.relate import pick_tunes, tune_calls
from agent.live.jam.memory import SessionMemory
from agent.music.tokens import Vocab

V = Vocab()


@pytest.fixture(scope="module")
def call():
    """[(tick, pitch)] of a real call: the first 4/4 tune's first two bars."""
    tune = next(t for t in pick_tunes(1) if t["metre"] == "4/4")
    return [(round(b * 12), p) for b, _, p in tune_calls(tune)[0]]


def heard(call, start=0):
    m = SessionMemory(V)
    for tick, pitch in call:
        m.hear(pitch, start + tick, 80, "player")
    return m


def unique_context(call, order=3):
    """The first index i whose `order` units before it (interval, inter-onset ticks) occur once in the call."""
    units = [(b[1] - a[1], b[0] - a[0]) for a, b in zip(call, call[1:])]
    for i in range(order, len(units)):
        ctx = units[i - order:i]
        if sum(units[j - order:j] == ctx for j in range(order, len(units) + 1)) == 1:
            return i
    raise AssertionError("no unique context in the call")


def test_a_motif_played_then_heard_transposed_predicts_its_continuation(call):
    m = heard(call)
    i = unique_context(call)  # units i-3..i-1 lead to call[i] -> call[i + 1]
    shift, later = 5, 10 * 48  # the agent plays call[i-3..i] a fourth up, ten bars later
    for tick, pitch in call[i - 3:i + 1]:
        m.hear(pitch + shift, later + tick, 80, "agent")
    last_tick = later + call[i][0]
    e = m.expect("continue", last_tick)
    want_pitch, want_wait = call[i + 1][1] + shift, call[i + 1][0] - call[i][0]
    assert max(e.pitches, key=e.pitches.get) == want_pitch
    assert e.wait_ticks == want_wait
    e2 = m.expect("continue", last_tick + 1)  # a tick later: one tick less to wait
    assert e2.wait_ticks == want_wait - 1


def test_echo_form_follows_the_calls_intervals_and_rhythm_from_the_answers_first_note(call):
    m = heard(call)
    end = call[-1][0] + 24
    m.hear(67, end, 80, "agent")  # the answer's first note, wherever the model put it
    e = m.expect("echo", end)
    di, ioi = call[1][1] - call[0][1], call[1][0] - call[0][0]
    assert max(e.pitches, key=e.pitches.get) == 67 + di
    assert e.pitches[67 + di + 1] == pytest.approx(0.35)  # a semitone off weighs less: the key may pick it
    assert e.wait_ticks == ioi
    assert e.register == (min(p for _, p in call), max(p for _, p in call))


def test_vary_keeps_the_calls_rhythm_and_contour_with_other_intervals(call):
    m = heard(call)
    j = next(k for k in range(1, len(call)) if call[k][1] != call[k - 1][1])  # the first unit that moves
    end = call[-1][0] + 24
    for k in range(j):
        m.hear(60, end + 12 * k, 80, "agent")
    e = m.expect("vary", end + 12 * (j - 1))
    di = call[j][1] - call[j - 1][1]
    up = di > 0
    assert all((p > 60) == up for p in e.pitches)  # the call's direction
    assert e.pitches[60 + di] == pytest.approx(0.3)  # its own interval is the least likely of them
    assert e.wait_ticks == call[j][0] - call[j - 1][0]


def test_contrast_avoids_the_calls_register_and_inter_onset_times(call):
    m = heard(call)
    end = call[-1][0] + 24
    m.hear(90, end, 80, "agent")
    e = m.expect("contrast", end + 6)
    assert e.contrast
    assert e.register == (min(p for _, p in call), max(p for _, p in call))
    assert e.avoid_waits == frozenset(b[0] - a[0] for a, b in zip(call, call[1:]) if b[0] > a[0])
    assert e.elapsed_ticks == 6


def test_a_rolled_back_agent_onset_is_forgotten_and_a_new_call_starts_after_an_answer(call):
    m = heard(call)
    end = call[-1][0] + 24
    m.hear(70, end, 80, "agent")
    m.hear(72, end + 12, 80, "agent")
    m.expect("echo", end + 6)  # the stream's frontier went back before the second onset
    assert [o.pitch for o in m.answer()] == [70]
    m.hear(72, end + 12, 80, "agent")
    assert m.related is not None
    m.hear(60, end + 48, 80, "player")  # the player again, after the answer: a new call
    assert [o.pitch for o in m.call()] == [60]
    assert m.answer() == []


def test_no_call_no_expectation_and_a_bad_form_or_part_is_named():
    m = SessionMemory(V)
    assert m.expect("echo", 0) is None
    with pytest.raises(ValueError, match="answer form 'mirror'"):
        m.expect("mirror", 0)
    with pytest.raises(ValueError, match="part 'drums'"):
        m.hear(60, 0, 80, "drums")


def test_related_is_one_on_the_calls_pitch_classes_and_zero_on_pitch_classes_it_never_played(call):
    m = heard(call)
    end = call[-1][0] + 24
    for k, (_, pitch) in enumerate(call):
        m.hear(pitch + 12, end + 6 * k, 80, "agent")  # the call an octave up
    assert m.related == pytest.approx(1.0, abs=1e-3)
    m2 = heard(call)
    pcs = {p % 12 for _, p in call}
    off = [p for p in range(60, 72) if p % 12 not in pcs]
    for k, pitch in enumerate(off):
        m2.hear(pitch, end + 6 * k, 80, "agent")  # only pitch classes the call never played
    assert m2.related == pytest.approx(0.0, abs=1e-3)


def test_accompanying_notes_between_the_players_do_not_cut_the_call(call):
    m = SessionMemory(V)
    for k, (tick, pitch) in enumerate(call):
        m.hear(pitch, tick, 80, "player")
        if k + 1 < len(call) and call[k + 1][0] > tick + 1:
            m.hear(pitch - 12, tick + 1, 80, "agent")  # the agent plays along, a tick after each note
    assert [o.pitch for o in m.call()] == [p for _, p in call][-32:]


def test_after_four_notes_copied_as_they_were_the_next_comes_an_eighth_later(call):
    m = heard(call)
    end = call[-1][0] + 24
    for tick, pitch in call[:4]:  # the call's first four notes, as they were
        m.hear(pitch, end + tick - call[0][0], 80, "agent")
    last = end + call[3][0] - call[0][0]
    e = m.expect("echo", last)
    assert max(e.pitches, key=e.pitches.get) == call[4][1]  # still the call's pitch
    assert e.wait_ticks == call[4][0] - call[3][0] + 6  # but not its rhythm: no fifth note copied
    m2 = heard(call)
    for tick, pitch in call[:3]:  # three copied: the fourth may be
        m2.hear(pitch, end + tick - call[0][0], 80, "agent")
    assert m2.expect("echo", end + call[2][0] - call[0][0]).wait_ticks == call[3][0] - call[2][0]
