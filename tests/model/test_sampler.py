"""agent/model/sampler.py: each control's effect on the distribution, validation, seeding."""
from __future__ import annotations

import numpy as np
import pytest

from agent.config import load_config, set_value
from agent.music.tokens import Vocab
from agent.model.sampler import Sampler, SamplingContext, SamplingControls, SamplingError
from agent.music.keys import estimate_key, key_name
from fakes import context_from_tokens

V = Vocab()
BASE = SamplingControls(pitch_min=V.pitch_lo, pitch_max=V.pitch_hi, max_polyphony=88)


def logits(seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, V.size).astype(np.float32)


def on(p):
    return V.note_on(p)


def dist(c=BASE, ctx=SamplingContext(), z=None):
    return Sampler(V, 0).distribution(logits() if z is None else z, c, ctx)


# -- validation ---------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"temperature": 0.0}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.01}, {"top_k": -1},
    {"adaptive_min": 2.0, "adaptive_max": 1.0}, {"key": "H major"}, {"key": "C dorian"},
    {"key_strength": -1.0}, {"pitch_min": 80, "pitch_max": 60}, {"max_polyphony": 0},
    {"repeat_penalty": -0.5}, {"repeat_window": 0}, {"temperature": float("nan")}, {"no_such": 1},
])
def test_bad_values_are_refused_with_the_name(bad):
    with pytest.raises(SamplingError) as e:
        BASE.replace(**bad)
    assert next(iter(bad)) in str(e.value)


def test_from_config_copies_the_sampling_section():
    cfg = set_value(load_config(), "sampling", "temperature", 0.7)
    c = SamplingControls.from_config(cfg.sampling)
    assert c.temperature == 0.7 and c.top_p == cfg.sampling.top_p and c.key == cfg.sampling.key
    assert c.replace(top_k=5).top_k == 5 and c.top_k == cfg.sampling.top_k  # frozen: replace copies


# -- the draw -----------------------------------------------------------------
def test_temperature_one_is_the_softmax_and_lower_is_sharper():
    z = logits()
    p = np.exp(z - z.max())
    p[V.note_off_base:V.shift_base] = 0  # nothing sounds: no NOTE_OFF to give
    np.testing.assert_allclose(dist(z=z), p / p.sum(), rtol=1e-6)
    cold, hot = dist(BASE.replace(temperature=0.5), z=z), dist(BASE.replace(temperature=2.0), z=z)
    ent = [-(q[q > 0] * np.log(q[q > 0])).sum() for q in (cold, dist(z=z), hot)]
    assert ent[0] < ent[1] < ent[2]
    assert cold.argmax() == hot.argmax() == z.argmax()


def test_top_k_keeps_exactly_the_k_likeliest():
    z = logits()
    p = dist(BASE.replace(top_k=5), z=z)
    assert set(np.flatnonzero(p)) == set(np.argsort(-z)[:5])


def test_top_p_keeps_the_smallest_set_with_that_mass():
    z = logits()
    full = dist(z=z)
    p = dist(BASE.replace(top_p=0.6), z=z)
    kept = np.flatnonzero(p)
    order = np.argsort(-full)
    assert set(kept) == set(order[:len(kept)])  # the likeliest ones
    assert full[kept].sum() >= 0.6 and full[kept].sum() - full[kept].min() < 0.6  # and no more than needed
    np.testing.assert_allclose(p[kept], full[kept] / full[kept].sum())


def test_adaptive_temperature_is_hot_when_confident_and_cool_when_unsure():
    c = BASE.replace(adaptive=True, adaptive_min=0.6, adaptive_max=1.5)
    s = Sampler(V, 0)
    confident = np.full(V.size, -20.0)
    confident[V.shift(12)] = 20.0
    s.distribution(confident, c)
    assert s.last_temperature == pytest.approx(1.5, abs=1e-3)
    s.distribution(np.zeros(V.size), c)  # flat: maximum entropy
    assert s.last_temperature == pytest.approx(0.6, abs=1e-6)
    s.distribution(logits(), c)
    assert 0.6 < s.last_temperature < 1.5
    s.distribution(logits(), c.replace(temperature=2.0))  # temperature still scales it
    assert 1.2 < s.last_temperature < 3.0


def test_seeded_draws_repeat_and_follow_the_distribution():
    z = np.full(V.size, -50.0)
    z[[on(60), on(64), on(67)]] = np.log([0.5, 0.3, 0.2])
    a = [Sampler(V, 7).choose(z, BASE) for _ in range(1)]
    s1, s2, s3 = Sampler(V, 7), Sampler(V, 7), Sampler(V, 8)
    d1 = [s1.choose(z, BASE) for _ in range(200)]
    assert d1 == [s2.choose(z, BASE) for _ in range(200)] and d1[:1] == a
    assert d1 != [s3.choose(z, BASE) for _ in range(200)]
    draws = np.array([s1.choose(z, BASE) for _ in range(20000)])
    for tok, want in ((on(60), 0.5), (on(64), 0.3), (on(67), 0.2)):
        assert abs((draws == tok).mean() - want) < 0.02


# -- the bias ----------------------------------------------------------------
def test_token_bias_scales_odds_by_exp_of_the_offset():
    z = logits()
    p0, p1 = dist(z=z), dist(BASE.replace(token_bias=((V.END, -2.0),)), z=z)
    ratio0 = p0[V.END] / p0[V.shift(1)]
    assert p1[V.END] / p1[V.shift(1)] == pytest.approx(ratio0 * np.exp(-2.0), rel=1e-6)
    with pytest.raises(SamplingError):
        dist(BASE.replace(token_bias=((V.size, 1.0),)))


def test_rest_bias_moves_only_shifts_of_a_beat_or_more():
    z = logits()
    p0, p1 = dist(z=z), dist(BASE.replace(rest_bias=-3.0), z=z)
    short, beat, long_ = V.shift(3), V.shift(V.resolution), V.shift(V.max_shift)
    assert p1[short] / p1[on(60)] == pytest.approx(p0[short] / p0[on(60)])
    for t in (beat, long_):
        assert p1[t] / p1[on(60)] == pytest.approx(p0[t] / p0[on(60)] * np.exp(-3.0))


def test_pitch_range_masks_note_ons_outside_it():
    p = dist(BASE.replace(pitch_min=48, pitch_max=72))
    ons = {p_: p[on(p_)] for p_ in range(V.pitch_lo, V.pitch_hi + 1)}
    assert all(v == 0 for k, v in ons.items() if not 48 <= k <= 72)
    assert all(v > 0 for k, v in ons.items() if 48 <= k <= 72)


def test_key_soft_penalty_and_hard_mask():
    z = logits()
    p0 = dist(z=z)
    soft = dist(BASE.replace(key="C major", key_strength=2.0), z=z)
    hard = dist(BASE.replace(key="C major", key_strength=100.0), z=z)
    # F# is outside C major, G inside: the odds of F# against G drop by e^2, then to zero
    assert soft[on(66)] / soft[on(67)] == pytest.approx(p0[on(66)] / p0[on(67)] * np.exp(-2.0))
    assert hard[on(66)] == 0 and hard[on(61)] == 0 and hard[on(67)] > 0 and hard[on(60)] > 0
    minor = dist(BASE.replace(key="A minor", key_strength=100.0), z=z)
    assert minor[on(68)] > 0 and minor[on(66)] == 0  # G# (leading tone) allowed, F# not


def test_auto_key_is_estimated_from_a_real_chorale(chorale):
    """BWV 66.6: the estimate agrees with music21's own key analysis, and masks by it."""
    from agent.music.notes import notes_from_music21

    pitches = [n.pitch for n in notes_from_music21(chorale)]
    want = chorale.analyze("key")
    got = estimate_key(pitches[-64:])
    assert got is not None and got[0] == want.tonic.pitchClass and got[1] == want.mode, (key_name(got), want)
    ctx = SamplingContext(tuple(pitches), frozenset())
    p = dist(BASE.replace(key="auto", key_strength=100.0), ctx)
    scale = {(got[0] + s) % 12 for s in ((0, 2, 4, 5, 7, 9, 11) if got[1] == "major" else (0, 2, 3, 5, 7, 8, 10, 11))}
    for pitch in range(48, 84):
        assert (p[on(pitch)] > 0) == (pitch % 12 in scale)
    assert estimate_key([60, 60, 60]) is None  # too little to tell


def test_polyphony_cap_allows_only_sounding_pitches_at_the_cap():
    ctx = SamplingContext((60, 64, 67), frozenset({60, 64, 67}))
    below = dist(BASE.replace(max_polyphony=4), ctx)
    at = dist(BASE.replace(max_polyphony=3), ctx)
    assert below[on(72)] > 0
    assert at[on(72)] == 0 and at[on(60)] > 0 and at[V.note_off(60)] > 0 and at[V.shift(1)] > 0


def test_note_offs_only_for_sounding_pitches():
    p = dist(ctx=SamplingContext((60,), frozenset({60})))
    assert p[V.note_off(60)] > 0 and p[V.note_off(61)] == 0


def test_repeat_penalty_per_recent_repeat_within_the_window():
    z = logits()
    ctx = SamplingContext((62, 60, 60, 60, 64), frozenset())
    p0 = dist(z=z, ctx=ctx)
    p1 = dist(BASE.replace(repeat_penalty=1.0, repeat_window=16), ctx, z)
    ref = V.shift(1)  # untouched
    assert p1[on(60)] / p1[ref] == pytest.approx(p0[on(60)] / p0[ref] * np.exp(-3.0))
    assert p1[on(62)] / p1[ref] == pytest.approx(p0[on(62)] / p0[ref] * np.exp(-1.0))
    assert p1[on(65)] / p1[ref] == pytest.approx(p0[on(65)] / p0[ref])
    p2 = dist(BASE.replace(repeat_penalty=1.0, repeat_window=1), ctx, z)  # only the last note-on counts
    assert p2[on(60)] / p2[ref] == pytest.approx(p0[on(60)] / p0[ref])


def test_context_from_tokens_tracks_sounding_and_recent_pitches():
    ids = [V.START, on(60), on(64), V.shift(6), V.note_off(60), on(67)]
    ctx = context_from_tokens(ids, V)
    assert ctx.pitches == (60, 64, 67) and ctx.sounding == {64, 67}


def test_auto_key_works_however_it_is_spelt():
    ctx = SamplingContext((60, 62, 64, 65, 67, 69, 71, 72) * 2, frozenset())
    for spelling in ("auto", "Auto", " AUTO "):
        p = dist(BASE.replace(key=spelling, key_strength=100.0), ctx)
        assert p[on(61)] == 0 and p[on(62)] > 0, spelling
