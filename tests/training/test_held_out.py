"""scripts/held_out.py end to end on tiny real data: two collections held out in turn, a tiny model each,
the collection's near-duplicates in another source kept out of training, figures into card.json."""
import argparse
import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset
from agent.training import splits

from agent.training import metrics
from agent.music.tokens import Vocab, encode

ROOT = Path(__file__).resolve().parents[2]
VOCAB = Vocab()
TINY = ["--hidden", "32", "--embedding", "16", "--layers", "1", "--batch", "4", "--chunk", "64",
        "--lr", "1e-2", "--warmup", "5", "--epochs", "1", "--quiet", "--threads", "1"]


def _script(name):
    return importlib.import_module(f"agent.training.{name}")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 chorales (bach), 8 reels and hornpipes (ryans), and in a third source one ryans tune transposed."""
    from music21 import corpus

    from agent.music.notes import notes_from_music21

    prep = _script("prepare")
    ids = lambda path: np.asarray(encode(notes_from_music21(corpus.parse(str(path))), VOCAB), np.int32)  # noqa: E731
    piece = lambda name, a: {"name": name, "ids": a, "notes": 40, "off_grid": False}  # noqa: E731
    sources = {}
    for src in ("bach", "ryans"):
        files = prep.corpus_files(src)[:8]
        sources[src] = {str(f): {"stat": [0, 0], "error": None, "pieces": [piece(f"{src}/{f.name}", ids(f))]}
                        for f in files}
    reel = next(iter(sources["ryans"].values()))["pieces"][0]
    sources["oneills"] = {"o/1": {"stat": [0, 0], "error": None,
                                  "pieces": [piece("oneills/twin", dataset.transpose(reel["ids"], 2, VOCAB)),
                                             piece("oneills/other", ids(prep.corpus_files("bach")[9]))]}}
    d = tmp_path_factory.mktemp("held") / "prepared"
    args = argparse.Namespace(min_notes=4, grid_filter=False, seed=1234, valid=0.2, test=0.2, out=str(d))
    dataset.write_manifest(d, splits.assemble(sources, args, VOCAB))
    return d


def test_leave_one_collection_out_end_to_end(prepared, tmp_path):
    ho, scoring = _script("held_out"), _script("scoring")
    card_dir = tmp_path / "model"
    card_dir.mkdir()
    (card_dir / "card.json").write_text(json.dumps({"name": "model", "test_nll": 1.0}))
    assert ho.main(["--data", str(prepared), "--hold-out", "bach,ryans", "--out", str(tmp_path / "work"),
                    "--card", str(card_dir), "--", *TINY]) == 0
    m = dataset.load_manifest(prepared)
    n_of = lambda src: sum(s == src for split in dataset.SPLITS for s in m["piece_sources"][split])  # noqa: E731
    report = json.loads((tmp_path / "work" / "held_out.json").read_text())["collections"]
    for c in ("bach", "ryans"):
        r = report[c]
        work = tmp_path / "work" / f"without-{c}" / "data"
        wm = dataset.load_manifest(work)
        assert r["pieces"]["test"] == n_of(c) and set(wm["piece_sources"]["test"]) == {c}
        assert c not in wm["piece_sources"]["train"] + wm["piece_sources"]["valid"]
        assert 0 < r["test_nll"] < math.log(VOCAB.size) + 3 and r["ngram_test_nll"] > 0
        # the baselines are fitted on the pieces the model trained on and scored on the held-out collection
        uni = metrics.UnigramModel(VOCAB.size)
        uni.fit(dataset.load_split(work, "train"))
        lp, _, _ = scoring.score_counts(uni, dataset.load_split(work, "test"), VOCAB)
        assert r["unigram_test_nll"] == round(-lp.mean(), 4)
        assert r["targets"] == sum(len(p) - 1 for p in dataset.load_split(work, "test"))
        assert r["model_args"]["hidden"] == 32 and r["test_nll_humanised"] > 0
    # the ryans tune's transposed twin in O'Neill's is kept out of the model trained without ryans
    wm = dataset.load_manifest(tmp_path / "work" / "without-ryans" / "data")
    assert "oneills/twin" not in wm["pieces"]["train"] + wm["pieces"]["valid"]
    assert report["ryans"]["dropped_near_duplicates"] >= (
        1 if "oneills/twin" in m["pieces"]["train"] + m["pieces"]["valid"] else 0)
    assert "oneills/other" in sum(dataset.load_manifest(tmp_path / "work" / "without-bach" / "data")["pieces"].values(),
                                  [])
    card = json.loads((card_dir / "card.json").read_text())
    assert card["test_nll"] == 1.0 and set(card["held_out_collections"]) == {"bach", "ryans"}
    assert card["held_out_collections"]["bach"]["ngram_test_nll"] == report["bach"]["ngram_test_nll"]


def test_unknown_collection_is_one_clear_error(prepared, tmp_path, capsys):
    ho = _script("held_out")
    assert ho.main(["--data", str(prepared), "--hold-out", "palestrina", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "palestrina" in err[0] and "bach, oneills, ryans" in err[0]
    assert not (tmp_path / "held_out.json").exists()


def test_compare_models_per_source_and_whole_collections(prepared, tmp_path, capsys):
    """scripts/compare_models.py: per-source NLL adds up to the whole, a uniform model scores log(V)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_evaluate import write_model

    cm = _script("compare")
    a, u = write_model(tmp_path / "a", seed=1), write_model(tmp_path / "u", uniform=True)
    out = tmp_path / "cmp.json"
    assert cm.main(["--model", f"a={a}", "--model", f"u={u}", "--data", str(prepared), "--on", "bach",
                    "--threads", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["models"]
    test = dataset.load_split(prepared, "test")
    assert r["a"]["test"]["all"]["targets"] == sum(len(p) - 1 for p in test)
    parts = [v for k, v in r["a"]["test"].items() if k != "all"]
    assert sum(v["targets"] for v in parts) == r["a"]["test"]["all"]["targets"]
    mean = sum(v["nll"] * v["targets"] for v in parts) / r["a"]["test"]["all"]["targets"]
    assert mean == pytest.approx(r["a"]["test"]["all"]["nll"], abs=1e-3)
    assert r["u"]["test"]["all"]["nll"] == pytest.approx(math.log(VOCAB.size), abs=1e-3)
    # "all of bach": every chorale of the three splits, and only chorales
    m = dataset.load_manifest(prepared)
    n_bach = sum(src == "bach" for s in dataset.SPLITS for src in m["piece_sources"][s])
    assert list(r["a"]["all of bach"]) == ["all", "bach"] and n_bach == 8
    assert r["a"]["all of bach, humanised"]["bach"]["targets"] > r["a"]["all of bach"]["bach"]["targets"]
    assert "all of bach" in capsys.readouterr().out
    # a collection the data does not have is named, nothing is scored
    assert cm.main(["--model", f"a={a}", "--data", str(prepared), "--on", "essen"]) == 2
    assert "--on essen" in capsys.readouterr().err
