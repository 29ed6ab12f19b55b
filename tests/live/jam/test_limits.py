"""The jam's limits as an object: the note-length rule (shared with `antiphon generate`), stuck keys, re-prime."""
from __future__ import annotations

import math

from scripted import ScriptedPredictor

from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.limits import Limits, limit_ticks, notes_over
from agent.music.tempomap import TempoMap


def make(*sets):
    cfg = load_config(overrides=["timing.bpm=120.0", *sets])
    pred = ScriptedPredictor(cfg.vocab())
    return Limits(pred, LiveControls(cfg), TempoMap(120.0, 0.0), cfg.vocab().resolution), pred


def test_a_note_is_over_the_limit_in_ticks_or_in_seconds_whichever_comes_first():
    assert limit_ticks(4.0, 12) == 48 and limit_ticks(0.01, 12) == 1
    onsets = {60: (0, 10.0), 64: (10, 10.0), 67: (40, 11.0)}
    assert notes_over(onsets, 48, 11.0, 48) == [60]  # offline: ticks only
    assert notes_over(onsets, 48, 12.0, 48, limit_s=2.0) == [60, 64]  # the anchor moved: 64 is 2 s old
    assert notes_over({}, 100, 0.0, 1, math.inf) == []


def test_overlong_closes_at_the_limit_and_says_when_the_next_one_is_due():
    lim, _ = make("sampling.max_note_beats=2.0")  # 24 ticks, 1 s at 120 bpm
    lim.sent(60, 0, 10.0)
    lim.sent(64, 12, 10.5)
    due, next_s = lim.overlong({60, 64}, 24, 11.0, lambda tick: 10.0 + tick / 24)
    assert due == [(60, 11.0)] and next_s == 11.5 and lim.notes_limited == 1
    lim.unsent_after(10.2)  # a rollback dropped the 64 before it sounded: it now counts from the frontier
    due, next_s = lim.overlong({64}, 30, 11.25, lambda tick: 10.0 + tick / 24)
    assert due == [] and next_s == 12.25


def test_stuck_keys_are_named_counted_and_the_next_timeout_returned():
    lim, _ = make("jam.held_note_timeout_s=5.0")
    out, next_s = lim.stuck({50: 0.0, 52: 3.0}, 6.0)
    assert out == [50] and next_s == 8.0 and lim.held_released == 1


def test_a_reprime_starts_in_the_idle_time_and_is_forced_when_the_gaps_never_come():
    lim, pred = make("jam.reprime_tokens=10")
    pred.steps = 10
    lim.reprime_if_due()
    assert pred.repriming and lim.reprimes == 0
    assert not lim.idle_work(0.0, 0.001)  # no slice this close to a deadline
    assert not lim.idle_work(0.0, 1.0) and lim.reprimes == 1 and pred.steps == 0
    pred.steps = 20
    lim.reprime_if_due()
    assert lim.reprimes == 2 and pred.steps == 0
