"""scripts/prepare_data.py on real corpus pieces and a real MIDI folder with broken files in it."""
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset
from agent.training import splits
from agent.music.tokens import Vocab, decode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prep():
    return importlib.import_module("agent.training.prepare")


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory):
    """Two real MIDI files (chorales written with write_midi), one garbage, one truncated."""
    from music21 import corpus

    from agent.music.notes import notes_from_music21, write_midi

    d = tmp_path_factory.mktemp("midi")
    (d / "nested").mkdir()
    write_midi(notes_from_music21(corpus.parse("bach/bwv66.6")), d / "bwv66.mid", bpm=90)
    good = write_midi(notes_from_music21(corpus.parse("bach/bwv269")), d / "nested" / "bwv269.MIDI")
    (d / "garbage.mid").write_bytes(b"this is not a MIDI file\n" * 20)
    (d / "truncated.mid").write_bytes(good.read_bytes()[:300])
    (d / "notes.txt").write_text("not a MIDI suffix: ignored\n")
    return d


def test_prepare_corpus_and_midi_folder_then_reuse_cache(prep, midi_folder, tmp_path, capsys, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--corpus", "ryans,bach", "--limit", "6", "--midi-dir", str(midi_folder), "--out", str(out),
            "--cache", str(cache), "--workers", "2", "--valid", "0.2", "--test", "0.2", "--min-notes", "4"]
    assert prep.main(argv) == 0
    err = capsys.readouterr().err
    # the broken files are named in the report and in the manifest; the run went on
    assert "garbage.mid" in err and "truncated.mid" in err
    m = dataset.load_manifest(out)
    skipped = {Path(s["file"]).name: s["reason"] for s in m["skipped"]}
    assert set(skipped) == {"garbage.mid", "truncated.mid"}
    assert "MThd" in skipped["garbage.mid"] or "MIDI" in skipped["garbage.mid"]
    midi_src = prep.midi_source_name(midi_folder)
    counts = m["counts"]["sources"]
    assert counts[midi_src]["files"] == 4 and counts[midi_src]["pieces"] == 2
    assert counts[midi_src]["skipped_files"] == 2
    assert counts["ryans"]["pieces"] >= 5 and counts["bach"]["pieces"] == 6
    assert Vocab.from_dict(m["vocab"]) == dataset.vocab_of(out)

    # splits: every piece once, START ... END, no piece name in two splits
    vocab = dataset.vocab_of(out)
    seen: set[str] = set()
    total = 0
    for split in dataset.SPLITS:
        pieces = dataset.load_split(out, split)
        names = m["pieces"][split]
        assert len(pieces) == len(names) == m["counts"]["splits"][split]["pieces"]
        assert not seen & set(names)
        seen |= set(names)
        total += len(pieces)
        for p in pieces:
            assert p[0] == vocab.START and p[-1] == vocab.END and p.dtype == np.int32
            assert len(decode(p, vocab)) >= 4
    assert total == sum(c["pieces"] for c in counts.values())
    assert any(n.endswith("bwv66.mid") for n in seen) and any("bwv269.MIDI" in n for n in seen)
    assert {p.name for p in cache.iterdir()} == {"ryans.npz", "bach.npz", f"{midi_src}.npz"}

    # second run: nothing is parsed again (a parser that fails would show), same result
    def no_parsing(job):
        raise AssertionError(f"reparsed {job[1]}")

    monkeypatch.setattr(prep, "parse_file", no_parsing)
    first = {s: np.load(out / f"{s}.tokens.npy") for s in dataset.SPLITS}
    assert prep.main(argv[:-6] + ["--workers", "1", "--valid", "0.2", "--test", "0.2", "--min-notes", "4"]) == 0
    err = capsys.readouterr().err
    assert "0 to parse" in err and "truncated.mid" in err
    for s in dataset.SPLITS:
        np.testing.assert_array_equal(first[s], np.load(out / f"{s}.tokens.npy"))
    assert json.loads((out / "manifest.json").read_text())["pieces"] == m["pieces"]


def test_split_is_stable_and_roughly_proportional(prep):
    import hashlib

    digests = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(4000)]
    got = [splits.split_of(d, 1234, 0.1, 0.1) for d in digests]
    assert got == [splits.split_of(d, 1234, 0.1, 0.1) for d in digests]
    assert 300 < got.count("test") < 500 and 300 < got.count("valid") < 500
    assert got != [splits.split_of(d, 99, 0.1, 0.1) for d in digests]


def test_grid_check(prep):
    from agent.music.tokens import Note

    assert not prep.off_grid([Note(60, 0.25, 1 / 3)], 12)
    assert prep.off_grid([Note(60, 0.1, 0.5)], 12)


def test_essen_test_and_variant_files_are_skipped(prep):
    names = [p.name for p in prep.corpus_files("essen")]
    assert len(names) == 26 and not [n for n in names if n.startswith(("test", "variant"))]
    assert not [p for p in prep.corpus_files("bach") if p.suffix == ".rntxt"]


def test_transposed_twins_share_a_split(prep, tmp_path):
    """Training transposes pieces, so a tune and its transposition in another book must not straddle splits."""
    import argparse
    import hashlib

    from agent.music.tokens import Note, encode

    vocab = Vocab()
    tune = np.asarray(encode([Note(60 + d, i, i + 1) for i, d in enumerate((0, 2, 4, 5, 7, 5, 4, 2, 0))], vocab),
                      np.int32)
    twin = dataset.transpose(tune, 5, vocab)
    other = dataset.transpose(encode([Note(60, i, i + 1) for i in range(9)], vocab), 0, vocab)
    digest = {n: hashlib.sha1(np.asarray(a, np.int32).tobytes()).hexdigest()
              for n, a in (("tune", tune), ("twin", twin), ("other", other))}
    # a seed under which the two would land in different splits if each were split by its own hash
    seed = next(s for s in range(1000) if splits.split_of(digest["tune"], s, 0.3, 0.3)
                != splits.split_of(digest["twin"], s, 0.3, 0.3))
    piece = lambda name, ids: {"name": name, "ids": ids, "notes": 9, "off_grid": False}  # noqa: E731
    sources = {"a": {"a/1": {"stat": [0, 0], "error": None, "pieces": [piece("tune", tune), piece("other", other)]}},
               "b": {"b/1": {"stat": [0, 0], "error": None, "pieces": [piece("twin", twin)]}}}
    args = argparse.Namespace(min_notes=4, grid_filter=False, seed=seed, valid=0.3, test=0.3, out=str(tmp_path))
    m = splits.assemble(sources, args, vocab)
    where = {n: s for s in dataset.SPLITS for n in m["pieces"][s]}
    assert where["tune"] == where["twin"] == splits.split_of(min(digest["tune"], digest["twin"]), seed, 0.3, 0.3)
    assert where["other"] == splits.split_of(digest["other"], seed, 0.3, 0.3)  # no twin: its own hash, as before
    assert sum(len(v) for v in m["pieces"].values()) == 3 and m["filtered"]["duplicate"] == 0


def test_prepare_reports_every_kind_of_bad_midi_file_by_name_and_goes_on(prep, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "tests"))
    import badfiles

    from agent.music.notes import notes_from_music21, write_midi
    from music21 import corpus

    d = tmp_path / "midi"
    d.mkdir()
    write_midi(notes_from_music21(corpus.parse("bach/bwv66.6")), d / "good.mid", bpm=90)
    bad = {badfiles.write_midi_kind(k, d).name for k in badfiles.MIDI_KINDS}
    out = tmp_path / "out"
    argv = ["--corpus", "", "--midi-dir", str(d), "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--workers", "1", "--valid", "0", "--test", "0", "--min-notes", "4"]
    assert prep.main(argv) == 0
    err = capsys.readouterr().err
    assert all(name in err for name in bad), err
    m = dataset.load_manifest(out)
    assert {Path(s["file"]).name for s in m["skipped"]} == bad
    assert m["counts"]["sources"][prep.midi_source_name(d)]["pieces"] == 1  # the good file went through
