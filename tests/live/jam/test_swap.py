"""A model loaded while playing: primed beside the live one in slices, whatever the live one does meanwhile."""
from __future__ import annotations

import numpy as np
import pytest

import tiny
from agent.live.jam.swap import Swap
from agent.model.predictor import Predictor
from agent.music.notes import notes_from_music21
from agent.music.tokens import Vocab, encode


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    return (tiny.make_model_dir(tmp_path_factory.mktemp("old"), hidden=32, embedding=16, seed=0),
            tiny.make_model_dir(tmp_path_factory.mktemp("new"), hidden=48, embedding=16, seed=1))


@pytest.fixture(scope="module")
def ids(chorale):
    return encode(notes_from_music21(chorale), Vocab())


def primed_like(model_dir, tokens):
    q = Predictor.load(model_dir, backend="onnx", context_tokens=64)
    q.prime(tokens)
    return q


def test_a_swap_primes_in_slices_beside_the_live_model_and_ends_where_a_prime_would(model_dirs, ids):
    """Issue 21 item 6: the swap's prime ran whole on the engine thread (100-300 ms) in any gap."""
    old = Predictor.load(model_dirs[0], backend="onnx", context_tokens=64)
    new = Predictor.load(model_dirs[1], backend="onnx", context_tokens=64)
    old.prime(ids[:100])
    live = primed_like(model_dirs[0], ids[:100])
    context = [old.vocab.START, *old._reprime_tokens()]
    swap = Swap(old, new, old.vocab)
    assert new.steps <= 1  # beginning it costs nothing
    k = 100
    while True:  # a token live, then a slice of 8: never more than 8 new-model steps at a time
        old.feed(ids[k])
        live.feed(ids[k])
        k += 1
        before = new.steps
        swap.advance(8)
        assert new.steps - before <= 8
        if swap.caught_up:
            break
    np.testing.assert_array_equal(old.logits, live.logits)  # the live model untouched
    assert k < 130
    want = primed_like(model_dirs[1], context + list(ids[100:k]))
    np.testing.assert_allclose(new.logits, want.logits, atol=1e-5)


def test_a_swap_follows_the_live_model_through_rollbacks_and_a_reset(model_dirs, ids):
    old = Predictor.load(model_dirs[0], backend="onnx", context_tokens=64)
    new = Predictor.load(model_dirs[1], backend="onnx", context_tokens=64)
    old.prime(ids[:100])
    swap = Swap(old, new, old.vocab)
    while not swap.caught_up:
        swap.advance(8)
    context = [old.vocab.START, *old._reprime_tokens()]
    snap = old.snapshot()
    old.feed_many(ids[100:110])
    swap.advance(4)
    swap.advance(4)  # the new model heard 8 tokens the live one is about to undo
    old.rollback(snap)  # accompany: the player came in, what was sampled ahead is undone
    old.feed_many(ids[120:125])
    while not swap.caught_up:
        swap.advance(8)
    assert swap.restarts == 0  # it rolled back to its own mark, not begun again
    want = primed_like(model_dirs[1], context + list(ids[120:125]))
    np.testing.assert_allclose(new.logits, want.logits, atol=1e-5)
    old.reset()  # `reset` in the REPL: nothing of the old context is left to follow
    old.feed_many(ids[:5])
    while not swap.caught_up:
        swap.advance(8)
    assert swap.restarts == 1
    np.testing.assert_allclose(new.logits, primed_like(model_dirs[1], [old.vocab.START, *ids[:5]]).logits, atol=1e-5)
