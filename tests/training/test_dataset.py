"""agent.training.data: the prepared-data format round-trips; transposition keeps the grammar."""
import json

import numpy as np
import pytest

from agent.training import data as dataset
from agent.music.tokens import Note, Vocab, decode, encode
from agent.music.notes import notes_from_music21


@pytest.fixture(scope="module")
def chorale_ids():
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")
    vocab = Vocab()
    return vocab, np.array(encode(notes_from_music21(score), vocab), dtype=np.int32)


def test_write_and_load_split_round_trip(tmp_path, chorale_ids):
    vocab, ids = chorale_ids
    pieces = [ids, ids[:1].tolist() + ids[5:40].tolist() + [vocab.END], ids]
    n, total = dataset.write_split(tmp_path, "train", pieces)
    assert (n, total) == (3, sum(len(p) for p in pieces))
    tokens = np.load(tmp_path / "train.tokens.npy")
    offsets = np.load(tmp_path / "train.offsets.npy")
    assert tokens.dtype == np.int32 and offsets.dtype == np.int64
    assert offsets[0] == 0 and offsets[-1] == len(tokens) and len(offsets) == 4
    back = dataset.load_split(tmp_path, "train")
    assert len(back) == 3
    for a, b in zip(pieces, back):
        np.testing.assert_array_equal(np.asarray(a), b)
        assert b[0] == vocab.START and b[-1] == vocab.END


def test_empty_split_and_manifest(tmp_path):
    vocab = Vocab(resolution=4)
    dataset.write_split(tmp_path, "valid", [])
    assert dataset.load_split(tmp_path, "valid") == []
    dataset.write_manifest(tmp_path, {"vocab": vocab.to_dict(), "seed": 7})
    assert dataset.load_manifest(tmp_path)["seed"] == 7
    assert dataset.vocab_of(tmp_path) == vocab
    assert json.loads((tmp_path / "manifest.json").read_text())["vocab"]["size"] == vocab.size


def test_missing_data_is_a_named_error(tmp_path):
    with pytest.raises(dataset.DataError, match="no test split"):
        dataset.load_split(tmp_path, "test")
    with pytest.raises(dataset.DataError, match="no manifest"):
        dataset.load_manifest(tmp_path)
    with pytest.raises(dataset.DataError, match="unknown split"):
        dataset.load_split(tmp_path, "dev")


def test_transpose_moves_pitches_only(chorale_ids):
    vocab, ids = chorale_ids
    up = dataset.transpose(ids, 3, vocab)
    assert up.dtype == ids.dtype and len(up) == len(ids)
    before, after = decode(ids, vocab), decode(up, vocab)
    assert [(n.start, n.end, n.velocity) for n in before] == [(n.start, n.end, n.velocity) for n in after]
    assert [n.pitch + 3 for n in before] == [n.pitch for n in after]
    # SHIFT / VEL / START / END untouched
    not_pitch = (ids < vocab.note_on_base) | (ids >= vocab.shift_base)
    np.testing.assert_array_equal(ids[not_pitch], up[not_pitch])
    np.testing.assert_array_equal(dataset.transpose(up, -3, vocab), ids)
    np.testing.assert_array_equal(dataset.transpose(ids, 0, vocab), ids)


def test_transpose_refuses_to_leave_the_range():
    vocab = Vocab(pitch_lo=48, pitch_hi=72)
    ids = np.array(encode([Note(50, 0, 1), Note(70, 1, 2)], vocab))
    assert dataset.transpose(ids, 2, vocab) is not None
    assert dataset.transpose(ids, 3, vocab) is None
    assert dataset.transpose(ids, -2, vocab) is not None
    assert dataset.transpose(ids, -3, vocab) is None
    assert dataset.pitch_span(ids, vocab) == (50, 70)
    assert dataset.allowed_shifts(ids, vocab, 6) == [-2, -1, 0, 1, 2]


def test_quick_data_is_built_from_real_chorales_when_there_is_none(tmp_path):
    missing, quick = tmp_path / "no-such-prepared", tmp_path / "quick"
    lines = []
    got = dataset.data_for_quick(missing, log=lines.append, quick_dir=quick, chorales=24)
    assert got == quick.resolve() and "building" in lines[0]
    manifest = dataset.load_manifest(got)
    assert manifest["counts"]["sources"]["bach"]["pieces"] >= 20  # real chorales, parsed by music21
    train = dataset.load_split(got, "train")
    assert train and all(p[0] == Vocab().START and p[-1] == Vocab().END for p in train)
    # a second call reuses what was built; a folder with its own manifest is used as it is
    assert dataset.data_for_quick(missing, log=lines.append, quick_dir=quick) == got and len(lines) == 1
    assert dataset.data_for_quick(got, log=lines.append, quick_dir=tmp_path / "other") == got


def test_quick_data_says_why_it_could_not_be_built(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(dataset.DataError, match="could not build"):
        dataset.data_for_quick(tmp_path / "none", quick_dir=blocker / "quick", chorales=2)
