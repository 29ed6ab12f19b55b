"""agent/model/predictor.py over a small real export: state carried, sample feeds, snapshot/rollback."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tiny  # noqa: E402

from agent.config import load_config, set_value  # noqa: E402
from agent.music.tokens import encode  # noqa: E402
from agent.model.predictor import Predictor  # noqa: E402
from agent.model.sampler import SamplingControls  # noqa: E402
from agent.music.notes import notes_from_music21  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_model_dir(tmp_path_factory.mktemp("model"), hidden=48)


@pytest.fixture(scope="module")
def chorale_ids(chorale):
    from agent.music.tokens import Vocab

    return encode(notes_from_music21(chorale), Vocab())


def test_feed_carries_state_like_one_forward_pass(model_dir, chorale_ids):
    torch = pytest.importorskip("torch")
    from agent.model.net import load_checkpoint

    model, _ = load_checkpoint(model_dir / "checkpoint.pt")
    ids = chorale_ids[:60]
    with torch.inference_mode():
        full, _ = model(torch.tensor([ids]))
    p = Predictor.load(model_dir, backend="onnx")  # reset() has fed START = ids[0]
    np.testing.assert_allclose(p.logits, full[0, 0].numpy(), atol=1e-4)
    p.feed_many(ids[1:])
    np.testing.assert_allclose(p.logits, full[0, -1].numpy(), atol=1e-4)
    assert p.steps == 60 and list(p.history) == ids


def test_sample_feeds_the_chosen_token(model_dir, chorale_ids):
    p = Predictor.load(model_dir, backend="onnx", seed=3)
    p.prime(chorale_ids[:40])
    before = p.steps
    tok = p.sample(SamplingControls())
    assert p.steps == before + 1 and p.history[-1] == tok
    q = Predictor.load(model_dir, backend="onnx")
    q.prime(chorale_ids[:40] + [tok])
    np.testing.assert_allclose(p.logits, q.logits, atol=1e-6)


def test_same_seed_same_continuation(model_dir, chorale_ids):
    c = SamplingControls(temperature=0.9, top_p=0.95)
    runs = []
    for seed in (5, 5, 6):
        p = Predictor.load(model_dir, backend="onnx", seed=seed)
        p.prime(chorale_ids[:50])
        runs.append([p.sample(c) for _ in range(100)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_snapshot_and_rollback_restore_state_logits_and_bookkeeping(model_dir, chorale_ids):
    p = Predictor.load(model_dir, backend="onnx", seed=1)
    p.prime(chorale_ids[:30])
    snap = p.snapshot()
    logits, hist, sounding, pitches = p.logits.copy(), list(p.history), set(p.sounding), list(p.pitches)
    c = SamplingControls()
    first = [p.sample(c) for _ in range(20)]
    p.rollback(snap)
    np.testing.assert_array_equal(p.logits, logits)
    assert list(p.history) == hist and p.sounding == sounding and list(p.pitches) == pitches
    p.feed_many(first)  # the same tokens again give the same state
    after_first = p.logits.copy()
    p.rollback(snap)  # a snapshot can be used twice
    p.feed_many(first)
    np.testing.assert_array_equal(p.logits, after_first)


def test_sounding_pitches_follow_every_token_fed(model_dir):
    from agent.music.tokens import Vocab

    v = Vocab()
    p = Predictor.load(model_dir, backend="onnx")
    p.feed_many([v.note_on(60), v.note_on(64), v.shift(6), v.note_off(60), v.note_on(67)])
    assert p.sounding == {64, 67} and list(p.pitches) == [60, 64, 67]
    p.feed(v.END)
    assert p.sounding == set()


def test_polyphony_cap_holds_over_a_long_generation(model_dir, chorale_ids):
    """The cap is enforced on the predictor's own tracking, not hoped for."""
    p = Predictor.load(model_dir, backend="onnx", seed=2)
    p.prime(chorale_ids[:40])
    c = SamplingControls(max_polyphony=2, temperature=1.5)
    start = len(p.sounding)
    peak = 0
    for _ in range(400):
        p.sample(c)
        peak = max(peak, len(p.sounding))
    assert peak <= max(2, start)  # new notes only while fewer than the cap sound


def test_prime_resets_and_reprime_rebuilds_from_the_context(model_dir, chorale_ids):
    p = Predictor.load(model_dir, backend="onnx")
    p.prime(chorale_ids[:80])
    logits = p.logits.copy()
    p.feed_many(chorale_ids[80:90])
    p.prime(chorale_ids[:80])
    np.testing.assert_array_equal(p.logits, logits)
    p.reprime()
    np.testing.assert_allclose(p.logits, logits, atol=1e-6)
    p.reset()
    assert p.steps == 1 and list(p.history) == [0] and not p.sounding


def test_a_reprime_in_slices_ends_where_reprime_would_and_leaves_the_live_state_alone(model_dir, chorale_ids):
    p = Predictor.load(model_dir, backend="onnx", context_tokens=64)
    q = Predictor.load(model_dir, backend="onnx", context_tokens=64)
    for pred in (p, q):
        pred.prime(chorale_ids[:100])
    heard = [p.vocab.START, *p._reprime_tokens()]  # the context now: the re-prime starts from it
    p.begin_reprime()
    assert p.repriming
    k = 100
    while True:  # one token fed live, then a slice of 8: the re-prime hears the live tokens too
        p.feed(chorale_ids[k])
        q.feed(chorale_ids[k])
        np.testing.assert_array_equal(p.logits, q.logits)  # the live state is untouched meanwhile
        k += 1
        if p.advance_reprime(8):
            break
    assert not p.repriming and k < 140  # 64 + a few tokens, 8 a slice: it caught up
    q.prime(heard + chorale_ids[100:k])  # a re-prime in one go at the start, then the same tokens
    np.testing.assert_allclose(p.logits, q.logits, atol=1e-5)
    assert p.steps == q.steps and list(p.history) == list(chorale_ids[k - 64:k])


def test_a_rollback_abandons_a_reprime_under_way(model_dir, chorale_ids):
    p = Predictor.load(model_dir, backend="onnx", context_tokens=64)
    p.prime(chorale_ids[:100])
    snap = p.snapshot()
    p.begin_reprime()
    p.feed(chorale_ids[100])
    p.rollback(snap)  # the re-prime heard a token that is now undone
    assert not p.repriming and not p.advance_reprime(8)


def test_from_config_uses_model_section_and_seed(model_dir):
    cfg = set_value(load_config(), "model", "path", str(model_dir))
    cfg = set_value(cfg, "sampling", "seed", 11)
    p = Predictor.from_config(cfg)
    assert p.describe()["backend"] == "onnx" and p.sampler.seed == 11
    assert p.history.maxlen == cfg.jam.context_tokens


def test_bad_token_and_missing_model_are_errors(model_dir, tmp_path):
    from agent.errors import AntiphonError

    p = Predictor.load(model_dir, backend="onnx")
    with pytest.raises(ValueError):
        p.feed(10_000)
    with pytest.raises(AntiphonError):
        Predictor.load(tmp_path / "nothing")
    # quantized is a preference: a folder exported without --int8 plays its float model
    assert Predictor.load(model_dir, backend="onnx", quantized=True).backend.describe()["model"] == "model.onnx"


def test_rollback_keys_the_draws_by_the_seed_and_the_events_not_by_how_far_speculation_ran(model_dir, chorale_ids):
    """A seed repeats whatever was sampled and rolled back: how far speculation ran ahead depends
    on the clock, so draws that were undone must not move the generator; and a resample after a
    different event draws afresh (accompany rolls back at every player event: one replayed stream
    met each with the same first draw, and an unlucky one kept the agent silent)."""
    c = SamplingControls(temperature=1.2)

    def speculated(ran: int, fed: int) -> list[int]:
        p = Predictor.load(model_dir, backend="onnx", seed=9)
        p.prime(chorale_ids[:30])
        snap = p.snapshot()
        for _ in range(ran):  # speculation, then undone
            p.sample(c)
        p.rollback(snap)
        p.feed(fed)  # the player's event
        return [p.sample(c) for _ in range(30)]

    assert speculated(17, chorale_ids[30]) == speculated(3, chorale_ids[30])
    assert speculated(17, chorale_ids[30]) != speculated(17, chorale_ids[31])
    # and one rollback after another to the same point, each followed by the same event, repeats
    p = Predictor.load(model_dir, backend="onnx", seed=9)
    p.prime(chorale_ids[:30])
    snap = p.snapshot()
    runs = []
    for ran in (5, 11):
        for _ in range(ran):
            p.sample(c)
        p.rollback(snap)
        p.feed(chorale_ids[30])
        runs.append([p.sample(c) for _ in range(30)])
        p.rollback(snap)
    assert runs[0] == runs[1] == speculated(3, chorale_ids[30])
