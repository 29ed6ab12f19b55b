"""scripts/listen.py (agent/training/listen.py): continuations of the same primers from several models, measured as a listener would."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
import tiny
from agent.music.tokens import Note, Vocab
from agent.training import listen

PRIMERS = ROOT / "examples" / "primers"


def test_describe_measures_what_a_listener_checks():
    primer = [Note(p, i * 0.5, i * 0.5 + 0.5, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    cont = [Note(60, 4.0, 5.0, 80), Note(64, 4.0, 5.0, 80), Note(67, 4.0, 8.0, 80),  # a chord, its fifth held
            Note(61, 5.25, 5.5, 80)]  # off the eighth grid and out of C major
    d = listen.describe(primer, cont, Vocab())
    assert d["notes"] == 4 and d["distinct_pitches"] == 4 and d["pitch_range"] == [60, 67]
    assert d["key"] == "C major" and d["in_key"] == pytest.approx(0.75)
    assert d["on_eighth_grid"] == pytest.approx(0.75) and d["longest_note_beats"] == 4.0
    assert d["polyphony"] > 1.5 and d["beats"] == 4.0  # three notes for a beat, then one or two
    assert listen.describe(primer, [], Vocab()) == {"notes": 0}


def test_primers_are_the_corpus_openings():
    from agent.music.notes import read_midi

    chorale, folk = read_midi(PRIMERS / "chorale.mid").notes, read_midi(PRIMERS / "folk.mid").notes
    assert max(n.end for n in chorale) <= 16 and max(n.end for n in folk) <= 16  # four bars each
    assert len({n.start for n in chorale}) < len(chorale) / 3  # four voices: chords, not a line
    assert min(n.pitch for n in folk) < 55 < max(n.pitch for n in folk)  # a left hand under the tune


def test_two_models_side_by_side(tmp_path, capsys):
    a = tiny.make_model_dir(tmp_path / "a", hidden=32, seed=1)
    b = tiny.make_model_dir(tmp_path / "b", hidden=32, seed=2)
    out = tmp_path / "listening"
    rc = listen.main(["--model", f"a={a}", "--model", f"b={b}", "--primer", str(PRIMERS / "folk.mid"),
                      "--seeds", "1", "2", "--bars", "2", "--no-wav", "--out", str(out), "--json", str(out / "l.json")])
    assert rc == 0
    runs = json.loads((out / "l.json").read_text())["runs"]
    assert [(r["model"], r["seed"]) for r in runs] == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    for r in runs:
        mid = Path(r["midi"])
        assert mid.exists() and mid.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
        assert r["notes"] == len(listen.track_notes(mid, "generated"))
    assert "on_eighth_grid" in capsys.readouterr().out


def test_bad_arguments_are_named(tmp_path, capsys):
    assert listen.main(["--model", f"x={tmp_path / 'none'}", "--primer", str(PRIMERS / "folk.mid")]) == 2
    assert "--model" in capsys.readouterr().err
    assert listen.main(["--model", f"x={tmp_path}", "--primer", str(tmp_path / "no.mid")]) == 2
    assert "--primer" in capsys.readouterr().err
