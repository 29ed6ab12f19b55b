"""The polyphonic sources of scripts/prepare_data.py on real pieces: Palestrina, a piano piece, Nottingham."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset
from agent.training.corpora import chord_pitches, close_voicing, skip_reason
from agent.training.metrics import polyphony, polyphony_ticks
from agent.music.tokens import Note, Vocab, decode, encode

ROOT = Path(__file__).resolve().parents[2]
VOCAB = Vocab()


@pytest.fixture(scope="module")
def prep():
    return importlib.import_module("agent.training.prepare")


def _parse(prep, kind: str, path) -> list[dict]:
    got_path, pieces, error = prep.parse_file((kind, str(path), "x", VOCAB.to_dict()))
    assert error is None and got_path == str(path)
    return pieces


def _m21(name: str) -> Path:
    """A file of music21's corpus by its path there."""
    import music21

    path = Path(music21.__file__).parent / "corpus" / name
    assert path.is_file(), path
    return path


def test_polyphony_of_token_streams():
    line = encode([Note(60 + i, i, i + 1) for i in range(4)], VOCAB)  # one voice, no overlap
    assert polyphony_ticks(line, VOCAB) == (48, 48) and polyphony([line], VOCAB) == 1.0
    # a held C under four quarter notes, then a rest of 2 beats, then one note: rests don't count
    chordal = encode([Note(48, 0, 4), *[Note(60 + i, i, i + 1) for i in range(4)], Note(50, 6, 7)], VOCAB)
    note_t, sound_t = polyphony_ticks(chordal, VOCAB)
    assert (note_t, sound_t) == (12 * 9, 12 * 5)
    assert polyphony([line, chordal], VOCAB) == pytest.approx((48 + 108) / (48 + 60))
    assert polyphony([], VOCAB) == 0.0


def test_palestrina_piece_is_one_polyphonic_stream(prep):
    from music21 import converter

    path = _m21("palestrina/Agnus_01.krn")
    [piece] = _parse(prep, "music21", path)
    score = converter.parse(path)
    parts = score.parts
    assert len(parts) >= 4
    # every voice's notes are in the one stream (ties merged per voice, as notes_from_music21 does)
    voice_notes = sum(len([n for n in p.stripTies().flatten().notes if n.quarterLength > 0]) for p in parts)
    assert piece["notes"] == voice_notes
    assert polyphony([piece["ids"]], VOCAB) > 2.5
    notes = decode(piece["ids"], VOCAB)
    assert len({n.pitch for n in notes}) > 15 and min(n.pitch for n in notes) < 55 < max(n.pitch for n in notes)


def test_piano_piece_is_polyphonic(prep):
    [piece] = _parse(prep, "music21", _m21("chopin/mazurka06-2.krn"))
    assert piece["notes"] > 300
    assert polyphony([piece["ids"]], VOCAB) > 2.0
    # both hands: chords in the left hand below 60 while the right hand sounds above
    notes = decode(piece["ids"], VOCAB)
    assert any(n.pitch < 55 for n in notes) and any(n.pitch > 72 for n in notes)


def test_nottingham_tune_gets_its_chords_as_a_left_hand(prep):
    from music21 import converter, harmony

    path = _m21("nottingham-dataset/reelsa-c.abc")
    plain = _parse(prep, "music21", path)
    accompanied = _parse(prep, "music21+chords", path)
    assert [p["name"] for p in plain] == [p["name"] for p in accompanied] == ["x#80", "x#81"]
    tune = converter.parse(path).scores[0]  # "Cuckoo's Nest", in D: "D" "Em" "A" "C" ...
    symbols = list(tune.flatten().getElementsByClass(harmony.ChordSymbol))
    melody = decode(plain[0]["ids"], VOCAB)
    both = decode(accompanied[0]["ids"], VOCAB)
    assert polyphony([plain[0]["ids"]], VOCAB) == 1.0 and polyphony([accompanied[0]["ids"]], VOCAB) > 3.0
    left = sorted(set(both) - set(melody), key=lambda n: (n.start, n.pitch))
    assert set(melody) <= set(both)
    # one close triad per symbol (seventh left out), held from its symbol to the next
    starts = sorted({n.start for n in left})
    assert starts == [float(c.offset) for c in symbols]
    first = [n for n in left if n.start == 1.0]
    assert {n.pitch % 12 for n in first} == {2, 6, 9}  # D major: D F# A
    assert all(n.end == float(symbols[1].offset) for n in first)
    a7 = [n for n in left if n.start == float(next(c.offset for c in symbols if c.figure == "A7"))]
    assert {n.pitch % 12 for n in a7} == {9, 1, 4}  # A C# E: no G
    # under the melody: every left-hand note is below every melody note sounding with it
    for n in left:
        over = [m.pitch for m in melody if m.start < n.end and m.end > n.start]
        assert over and n.pitch < min(over)
        assert 41 <= n.pitch <= 64


def test_close_voicing_and_inversions():
    from music21 import harmony

    assert close_voicing(9, [9, 0, 4]) == [45, 48, 52]  # A minor, bass A2
    assert close_voicing(0, [9, 0, 4]) == [48, 52, 57]  # A minor over C: C3 E3 A3
    assert chord_pitches(harmony.ChordSymbol("Am/C")) == [48, 52, 57]
    assert chord_pitches(harmony.ChordSymbol("G7")) == [43, 47, 50]
    assert chord_pitches(harmony.ChordSymbol("Am/G")) == [43, 45, 48, 52]  # a bass outside the triad, under it
    assert chord_pitches(harmony.ChordSymbol("Dsus4")) == [50, 55, 57]
    assert chord_pitches(harmony.ChordSymbol("C/C#")) == [48, 52, 55]  # a semitone from C: the root instead
    assert chord_pitches(harmony.NoChord()) == []


@pytest.mark.skipif(not (ROOT.parent / "shared/data/poly_music/Nottingham.mat").is_file()
                    and not (ROOT.parent.parent / "shared/data/poly_music/Nottingham.mat").is_file(),
                    reason="the benchmark rolls (../shared/data/poly_music) are not beside this checkout")
def test_nottingham_roll_frames_become_melody_and_chords(prep):
    from agent.training.corpora import ROLL_LAYOUT, roll_notes
    from agent.model.roll import load_mat

    fpb, lowest = ROLL_LAYOUT["Nottingham"]
    frames = load_mat(prep.POLY_MUSIC / "Nottingham.mat")["test"][0]
    notes = roll_notes(frames, fpb, lowest)
    ids = encode(notes, VOCAB)
    assert polyphony([ids], VOCAB) > 2.0
    # the chords lie under the tune: the highest note of each frame is the melody's
    top = [max(n.pitch for n in notes if n.start <= t < n.end) for t in np.arange(0, len(frames) / fpb, 1 / fpb)
           if any(n.start <= t < n.end for n in notes)]
    assert np.median(top) > 64 > min(n.pitch for n in notes)
    assert len(notes) == sum(int(np.sum(np.diff(np.concatenate([[0], frames[:, k], [0]])) == 1)) for k in range(88))


def test_source_lists(prep):
    assert prep.expand_sources("palestrina,renaissance,bach") == ["palestrina", "monteverdi", "trecento",
                                                                  "josquin", "bach"]
    poly = prep.expand_sources("poly")
    assert "nottingham" in poly and "beethoven" in poly and "essen" not in poly
    beethoven = prep.corpus_files("beethoven")
    stems = [p.with_suffix("") for p in beethoven]
    assert len(stems) == len(set(stems)) == 22  # opus 18 no 1 is there as .krn and .mxl: once
    assert not [p for p in prep.corpus_files("monteverdi") if "_old" in p.name or p.suffix == ".rntxt"]
    assert {p.parent.name for p in prep.corpus_files("schumann")} >= {"schumann_robert", "schumann_clara"} or \
        {p.parent.parent.name for p in prep.corpus_files("schumann")} >= {"schumann_robert", "schumann_clara"}
    assert len(prep.corpus_files("palestrina")) > 1300


def test_skip_reasons():
    assert skip_reason("IndexError: list index out of range") == "parse error (IndexError)"
    assert skip_reason("essen/a.abc#3: ValueError: bad; essen/a.abc#4: ValueError: bad") == "parse error (ValueError)"
    assert skip_reason("MidiReadError: x.mid: not a readable MIDI file") == "parse error (MidiReadError)"


def test_report_counts_skips_by_reason_and_names_the_malformed_file(prep, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "broken.abc"
    bad.write_text('X:1\nT:broken\nM:4/4\nK:Zz\n|: [[[ "E7 ((( \n')
    real = prep.corpus_files  # the real Nottingham ABC file and a malformed one beside it

    def files(name):
        return [*real(name), bad] if name == "nottingham-abc" else real(name)

    monkeypatch.setattr(prep, "corpus_files", files)
    out = tmp_path / "out"
    argv = ["--corpus", "nottingham-abc,chopin", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--workers", "1", "--valid", "0", "--test", "0", "--min-notes", "300"]
    assert prep.main(argv) == 0
    captured = capsys.readouterr()
    assert "broken.abc" in captured.err
    m = dataset.load_manifest(out)
    assert [Path(s["file"]).name for s in m["skipped"]] == ["broken.abc"]
    rep = m["sources"]
    # the two Nottingham tunes are under 300 notes: filtered as too short; the mazurka is kept
    assert rep["nottingham-abc"]["skipped"] == {"parse error (IndexError)": 1, "too short": 2}
    assert rep["nottingham-abc"]["pieces"] == 0 and rep["nottingham-abc"]["files"] == 2
    assert rep["chopin"]["pieces"] == 1 and rep["chopin"]["skipped"] == {} and rep["chopin"]["style"] == "piano"
    assert rep["chopin"]["tokens"] == m["counts"]["sources"]["chopin"]["tokens"]
    assert rep["chopin"]["polyphony"] > 2.0
    table = captured.out.split(" source ", 1)[1]  # the per-source table after its header
    row = next(line for line in table.splitlines() if line.strip().startswith("nottingham-abc"))
    assert "1 parse error (IndexError)" in row and "2 too short" in row


def test_a_stopped_parse_resumes_from_its_saved_cache(prep, tmp_path, monkeypatch, capsys):
    """A long parse saves its cache as it goes: stopped half way, the next run parses only the rest."""
    real = prep.parse_file
    done = []

    def stopped_after_two(job):
        if len(done) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would
        done.append(job[1])
        return real(job)

    monkeypatch.setattr(prep, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(prep, "parse_file", stopped_after_two)
    argv = ["--corpus", "josquin", "--limit", "5", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
            "--workers", "1", "--valid", "0", "--test", "0"]
    with pytest.raises(KeyboardInterrupt):
        prep.main(argv)
    capsys.readouterr()
    parsed_again = []
    monkeypatch.setattr(prep, "parse_file", lambda job: parsed_again.append(job[1]) or real(job))
    assert prep.main(argv) == 0
    assert "josquin: 5 files, 2 from cache, 3 to parse" in capsys.readouterr().err
    assert len(parsed_again) == 3 and not set(parsed_again) & set(done)
    m = dataset.load_manifest(tmp_path / "out")
    assert m["sources"]["josquin"]["pieces"] == 5 and m["sources"]["josquin"]["polyphony"] > 2.0


def test_a_missing_roll_file_or_unknown_source_is_one_clear_error(prep, tmp_path, capsys):
    for argv, said in ((["--corpus", "nottingham", "--poly-music", str(tmp_path)], f"no {tmp_path}/Nottingham.mat"),
                       (["--corpus", "poly,palestrna"], "unknown corpus part(s) palestrna")):
        with pytest.raises(SystemExit) as exc:
            prep.main([*argv, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
        assert exc.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
