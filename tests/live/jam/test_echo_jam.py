"""The jam with the session memory, over the real default model on a fake clock (agent/bench/relate.py's rig):
echo 0 is today's agent note for note; echo 1 in the echo form takes up a real call's interval pattern."""
from __future__ import annotations

import pytest

from agent.bench.relate import DEFAULT_MODEL, RIG, Rig, intervals, longest_run, pick_tunes, run_tune, tune_calls

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "vocab.json").exists(), reason="no default model")


@pytest.fixture(scope="module")
def tune():
    """A real 3/4 tune of music21's corpus (the first that relate.py picks)."""
    return next(t for t in pick_tunes(1) if t["metre"] == "3/4")


def session(tune, *, echo: float, memory: bool = True, seed: int = 5) -> list[tuple[float, str, int, int]]:
    """The tune's first call played and answered: every message the agent sent (time, type, note, velocity)."""
    rig = Rig(bpm=100.0, seed=seed, overrides=[*RIG, "timing.beats_per_bar=3", f"jam.echo={echo}"])
    if not memory:  # the sampler as it was before the session memory: nothing attached
        rig.jam.predictor.sampler.memory = None
    t0 = rig.clock.now() + 0.5
    for on_b, length, pitch in tune_calls(tune)[0]:
        rig.run_until(t0 + on_b * 0.6)
        rig.note(pitch, True, t0 + on_b * 0.6)
        rig.note(pitch, False, t0 + (on_b + 0.9 * length) * 0.6)
    rig.run_until(t0 + 15 * 0.6)
    return [(round(t, 9), m.type, m.note, m.velocity) for t, m in rig.out.sent]


def test_echo_zero_sends_the_same_notes_as_the_sampler_without_a_memory(tune):
    today = session(tune, echo=0.0, memory=False)
    assert sum(m[1] == "note_on" for m in today) >= 4  # it answered
    assert session(tune, echo=0.0) == today


def test_echo_one_in_the_echo_form_takes_up_the_calls_interval_pattern(tune):
    first = run_tune(tune, 1.0, "echo", 5, DEFAULT_MODEL, {})[0]
    ans, call = [p for _, p in first["answer"]], [p for _, p in first["call"]]
    assert longest_run(intervals(ans), intervals(call)) >= 6  # 8 of the call's 8 intervals in the recorded run


def test_echo_one_answers_a_soft_call_softly_and_a_loud_one_loudly(tune):
    soft, loud = run_tune(tune, 1.0, "continue", 5, DEFAULT_MODEL, {})  # the calls at velocity 52, then 100
    gap = sum(loud["answer_velocities"]) / len(loud["answer_velocities"]) - sum(
        soft["answer_velocities"]) / len(soft["answer_velocities"])
    assert gap >= 20  # 30.7 in the recorded run (at echo 0 the model's own: 1.7)
