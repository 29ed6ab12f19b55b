"""agent/training/fingerprint.py on real corpus tunes: one tune in two keys and with a changed note is one group;
two different chorales are two; scripts/prepare_data.py puts a whole group in one split and reports it."""
import argparse
import dataclasses
import hashlib
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset
from agent.training import splits
from agent.training import fingerprint as fp
from agent.music.tokens import Vocab, decode, encode

ROOT = Path(__file__).resolve().parents[2]
VOCAB = Vocab()


def _ids(name: str) -> np.ndarray:
    from music21 import corpus

    from agent.music.notes import notes_from_music21

    return np.asarray(encode(notes_from_music21(corpus.parse(name)), VOCAB), np.int32)


def _one_note_changed(ids: np.ndarray) -> np.ndarray:
    """The same tune with the pitch of one note in the middle raised a tone."""
    notes = decode(ids, VOCAB)
    k = len(notes) // 2
    notes[k] = dataclasses.replace(notes[k], pitch=notes[k].pitch + 2)
    return np.asarray(encode(notes, VOCAB), np.int32)


@pytest.fixture(scope="module")
def pieces() -> dict[str, np.ndarray]:
    reel = _ids("ryansMammoth/AcaciaReel.abc")
    return {"reel": reel, "reel_up_a_fourth": dataset.transpose(reel, 5, VOCAB),
            "reel_variant": _one_note_changed(dataset.transpose(reel, -3, VOCAB)),
            "chorale_a": _ids("bach/bwv66.6"), "chorale_b": _ids("bach/bwv269")}


def test_top_line_of_a_chorale_is_its_soprano():
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")
    soprano = [n.pitch.midi for n in score.parts[0].flatten().notes]
    merged = [p for i, p in enumerate(soprano) if i == 0 or p != soprano[i - 1]]  # repeats are one step
    assert fp.top_line(_ids("bach/bwv66.6"), VOCAB).tolist() == merged


def test_transposition_invariant_and_near_variant_and_different_tunes(pieces):
    f = {k: fp.fingerprint(v, VOCAB) for k, v in pieces.items()}
    assert len(f["reel"].shingles) > 40 and f["reel"].head is not None
    assert np.array_equal(f["reel"].shingles, f["reel_up_a_fourth"].shingles)  # exactly invariant
    assert f["reel"].head == f["reel_up_a_fourth"].head
    j_variant = fp.jaccard(f["reel"].shingles, f["reel_variant"].shingles)
    assert fp.THRESHOLD <= j_variant < 1.0  # changed, but still one tune
    assert fp.jaccard(f["chorale_a"].shingles, f["chorale_b"].shingles) < 0.2
    assert fp.jaccard(f["reel"].shingles, f["chorale_a"].shingles) < 0.2


def test_groups(pieces):
    names = list(pieces)
    groups = fp.group([fp.fingerprint(pieces[n], VOCAB) for n in names])
    g = dict(zip(names, groups))
    assert g["reel"] == g["reel_up_a_fourth"] == g["reel_variant"]
    assert len({g["reel"], g["chorale_a"], g["chorale_b"]}) == 3
    # the same fingerprints with the Jaccard test made impossible: the variant is held only by its head
    assert fp.group([fp.fingerprint(pieces[n], VOCAB) for n in names], threshold=1.01)[2] == g["reel"]


def test_minhash_candidates_find_a_similar_pair_among_many():
    """LSH must not miss a near-duplicate pair hidden among unrelated random melodies."""
    rng = np.random.default_rng(0)
    melodies = [np.cumsum(rng.integers(-4, 5, 80)) + 60 for _ in range(300)]
    twin = melodies[17].copy()
    twin[40] += 1  # one note changed
    fps = []
    for m in melodies + [twin]:
        iv = (np.diff(m) + 128).astype(np.uint64)
        w = np.lib.stride_tricks.sliding_window_view(iv, fp.NGRAM)
        sh = np.unique(np.bitwise_or.reduce(w << (np.arange(fp.NGRAM, dtype=np.uint64) * np.uint64(8)), axis=1))
        fps.append(fp.Fingerprint(None, sh))
    pairs = fp.near_duplicate_pairs(fps)
    assert pairs == {(17, 300)}


def _prep():
    return importlib.import_module("agent.training.prepare")


def test_prepare_puts_a_group_in_one_split_and_reports_it(pieces, tmp_path):
    prep = _prep()
    digest = {n: hashlib.sha1(np.asarray(a, np.int32).tobytes()).hexdigest() for n, a in pieces.items()}
    # a seed under which the variant would land apart from the reel if each were split by its own hash
    seed = next(s for s in range(1000) if splits.split_of(digest["reel"], s, 0.3, 0.3)
                != splits.split_of(digest["reel_variant"], s, 0.3, 0.3))

    def piece(name):
        return {"name": name, "ids": pieces[name], "notes": 40, "off_grid": False}

    sources = {"ryans": {"r/1": {"stat": [0, 0], "error": None, "pieces": [piece("reel"), piece("chorale_a")]}},
               "oneills": {"o/1": {"stat": [0, 0], "error": None,
                                   "pieces": [piece("reel_variant"), piece("reel_up_a_fourth")]}},
               "bach": {"b/1": {"stat": [0, 0], "error": None, "pieces": [piece("chorale_b")]}}}
    args = argparse.Namespace(min_notes=4, grid_filter=False, seed=seed, valid=0.3, test=0.3, out=str(tmp_path))
    m = splits.assemble(sources, args, VOCAB)
    where = {n: s for s in dataset.SPLITS for n in m["pieces"][s]}
    reel_digests = [digest[n] for n in ("reel", "reel_up_a_fourth", "reel_variant")]
    assert where["reel"] == where["reel_variant"] == where["reel_up_a_fourth"] \
        == splits.split_of(min(reel_digests), seed, 0.3, 0.3)
    assert where["chorale_b"] == splits.split_of(digest["chorale_b"], seed, 0.3, 0.3)  # alone: its own hash
    g = m["grouping"]
    assert g["merged_groups"] == 1 and g["pieces_in_merged_groups"] == 3 and g["cross_source_groups"] == 1
    assert g["per_source"] == {"ryans": {"merged_groups": 1, "pieces_in_merged_groups": 1},
                               "oneills": {"merged_groups": 1, "pieces_in_merged_groups": 2}}
    # each piece's source and group, aligned with the names
    for s in dataset.SPLITS:
        assert len(m["piece_sources"][s]) == len(m["piece_groups"][s]) == len(m["pieces"][s])
    src = {n: m["piece_sources"][s][i] for s in dataset.SPLITS for i, n in enumerate(m["pieces"][s])}
    grp = {n: m["piece_groups"][s][i] for s in dataset.SPLITS for i, n in enumerate(m["pieces"][s])}
    assert src["reel_variant"] == "oneills" and src["chorale_b"] == "bach"
    assert grp["reel"] == grp["reel_variant"] != grp["chorale_a"]
