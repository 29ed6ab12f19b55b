"""The echo mixture at the sampler (agent/model/echo.py, Sampler._weights): echo 0 changes nothing,
echo > 0 moves mass toward what the session memory expects within each token group, bad values are named."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from agent.config import ConfigError, load_config
from agent.model.echo import Expectation
from agent.model.sampler import Sampler, SamplingControls, SamplingError
from agent.music.tokens import Vocab

V = Vocab()
BASE = SamplingControls(pitch_min=V.pitch_lo, pitch_max=V.pitch_hi, max_polyphony=88)
ON = np.arange(V.note_on_base, V.note_off_base)
SHIFT = np.arange(V.shift_base, V.velocity_base)
VEL = np.arange(V.velocity_base, V.size)


class FixedMemory:
    """A session memory that always expects the same thing (and keeps what it hears)."""

    def __init__(self, e: Expectation | None) -> None:
        self.e, self.heard = e, []

    def expect(self, form, tick):
        return self.e

    def hear(self, pitch, tick, velocity, part):
        self.heard.append((pitch, tick, part))


def logits(seed=0):
    return np.random.default_rng(seed).normal(0, 2.0, V.size).astype(np.float32)


def sampler(e: Expectation | None, seed=0) -> Sampler:
    s = Sampler(V, seed)
    s.parts = SimpleNamespace(enc=SimpleNamespace(tick=100, velocity_bin=8), player_pitches=(), agent_sounding=set())
    s.memory = FixedMemory(e)
    return s


def test_echo_zero_is_todays_distribution_and_draws_bit_for_bit():
    e = Expectation(pitches={64: 1.0}, wait_ticks=0, register=(60, 67), velocity_bin=3)
    plain, with_memory = Sampler(V, 7), sampler(e, seed=7)
    plain.parts = with_memory.parts
    assert np.array_equal(plain.distribution(logits(), BASE), with_memory.distribution(logits(), BASE))
    draws = [[s.choose(logits(i), BASE) for i in range(50)] for s in (plain, with_memory)]
    assert draws[0] == draws[1]


def test_echo_one_moves_the_note_on_mass_to_the_expected_pitch_and_keeps_the_groups_total():
    e = Expectation(pitches={64: 1.0}, wait_ticks=0)
    p0 = sampler(e).distribution(logits(), BASE)
    p1 = sampler(e).distribution(logits(), BASE.replace(echo=1.0))
    on64 = V.note_on(64)
    assert p1[on64] / p1[ON].sum() > 0.9  # the model's share for E4 among note-ons was a few percent
    assert p0[on64] / p0[ON].sum() < 0.1
    group = np.concatenate([ON, SHIFT])
    assert p1[group].sum() == pytest.approx(p0[group].sum(), rel=1e-9)  # note vs note-off vs velocity: the model's
    rest = np.setdiff1d(np.arange(V.size), group)
    np.testing.assert_allclose(p1[rest], p0[rest], rtol=1e-9)


def test_an_expected_wait_favours_the_shift_that_reaches_it():
    e = Expectation(pitches={64: 1.0}, wait_ticks=6)
    p0 = sampler(e).distribution(logits(), BASE)
    p1 = sampler(e).distribution(logits(), BASE.replace(echo=1.0))
    six = V.shift(6)
    assert p1[six] / p1[SHIFT].sum() > 0.5
    assert p1[ON].sum() < 0.2 * p0[ON].sum()  # not yet: a note now is what the memory does not expect


def test_the_calls_register_and_velocity_pull_at_half_echo_and_a_set_range_is_kept():
    e = Expectation(register=(60, 67), velocity_bin=3)
    p0 = sampler(e).distribution(logits(), BASE)
    p1 = sampler(e).distribution(logits(), BASE.replace(echo=0.5))
    inside = [V.note_on(p) - V.note_on_base for p in range(58, 70)]
    assert p1[ON][inside].sum() / p1[ON].sum() > 2 * p0[ON][inside].sum() / p0[ON].sum()
    assert p1[V.velocity(3)] / p1[VEL].sum() > 2 * p0[V.velocity(3)] / p0[VEL].sum()
    narrowed = BASE.replace(pitch_min=36, pitch_max=96)
    p2 = sampler(e).distribution(logits(), narrowed.replace(echo=0.5))
    p3 = sampler(e).distribution(logits(), narrowed)
    np.testing.assert_allclose(p2[ON] / p2[ON].sum(), p3[ON] / p3[ON].sum(), rtol=1e-9)


def test_the_agents_own_note_ons_are_heard_at_the_streams_frontier():
    s = sampler(None)
    z = np.full(V.size, -50.0, np.float32)
    z[V.note_on(72)] = 50.0
    assert s.choose(z, BASE) == V.note_on(72)
    assert s.memory.heard == [(72, 100, "agent")]


@pytest.mark.parametrize("change,name", [({"echo": 1.5}, "echo"), ({"echo": -0.1}, "echo"),
                                         ({"form": "mirror"}, "form")])
def test_bad_echo_or_form_is_refused_with_its_name(change, name):
    with pytest.raises(SamplingError, match=f"jam.{name} = "):
        BASE.replace(**change)


@pytest.mark.parametrize("override,key", [("jam.echo=2.0", "jam.echo"), ('jam.form="mirror"', "jam.form")])
def test_bad_echo_or_form_in_the_config_is_refused_with_its_key(override, key):
    with pytest.raises(ConfigError, match=key + " = "):
        load_config(overrides=[override])
