"""`antiphon generate`: MIDI, MusicXML and a piano roll from a real primer; same seed, same file."""
from __future__ import annotations

import sys
from pathlib import Path

import mido
import pytest

import tiny  # noqa: E402

from agent.ui.cli import main  # noqa: E402
from agent.music.notes import notes_from_music21, read_midi, write_midi  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_model_dir(tmp_path_factory.mktemp("model"), hidden=48)


@pytest.fixture(scope="module")
def primer(tmp_path_factory, chorale):
    """BWV 66.6 from music21's corpus, as a MIDI file at 90 bpm."""
    path = tmp_path_factory.mktemp("primer") / "bwv66_6.mid"
    return write_midi(notes_from_music21(chorale), path, bpm=90)


def gen(model_dir, out: Path, *extra: str) -> int:
    return main(["generate", "--model", str(model_dir), "--out", str(out), *extra])


def test_writes_midi_musicxml_and_pianoroll_from_a_real_primer(model_dir, primer, tmp_path, capsys):
    out, xml, png = tmp_path / "out.mid", tmp_path / "out.musicxml", tmp_path / "out.png"
    assert gen(model_dir, out, "--prime", str(primer), "--bars", "4", "--seed", "1",
               "--musicxml", str(xml), "--pianoroll", str(png), "--max-polyphony", "4") == 0
    assert "wrote" in capsys.readouterr().out
    mid = mido.MidiFile(out)
    names = [t.name for t in mid.tracks]
    assert names[1:] == ["primer", "generated"]
    prim = read_midi(primer).notes
    piece = read_midi(out)
    assert piece.bpm == pytest.approx(90, abs=0.01)
    primer_end = max(n.end for n in prim)
    new = [n for n in piece.notes if n.start >= primer_end]
    assert new, "the model added notes after the primer"
    assert max(n.start for n in new) <= primer_end + 4 * 4  # four bars of 4/4 and no more

    from music21 import clef, converter

    score = converter.parse(str(xml))
    assert len(score.parts) == 2
    clefs = [type(p.recurse().getElementsByClass(clef.Clef)[0]) for p in score.parts]
    assert clefs == [clef.TrebleClef, clef.BassClef]
    assert len(score.flatten().pitches) >= len(prim)
    measures = [m for part in score.parts for m in part.getElementsByClass("Measure")]
    assert measures and not any(m.voices for m in measures)  # one voice per staff: chords and ties
    assert {p.midi for p in score.flatten().pitches} == {n.pitch for n in piece.notes}
    first = {p.midi for el in score.parts[1].getElementsByClass("Measure")[0].notes if el.offset == 0
             for p in el.pitches}
    assert first == {n.pitch for n in prim if n.start == 0 and n.pitch < 60}  # the bass of the first beat
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_same_seed_same_file_other_seed_other_file(model_dir, primer, tmp_path):
    files = []
    for i, seed in enumerate(("7", "7", "8")):
        out = tmp_path / f"{i}.mid"
        assert gen(model_dir, out, "--prime", str(primer), "--bars", "8", "--seed", seed, "--temp", "0.9") == 0
        files.append(out.read_bytes())
    assert files[0] == files[1]
    assert files[0] != files[2]


def test_from_nothing_with_controls(model_dir, tmp_path):
    out = tmp_path / "solo.mid"
    assert gen(model_dir, out, "--bars", "2", "--seed", "3", "--pitch-min", "60", "--pitch-max", "72",
               "--key", "C major", "--key-strength", "100") == 0
    notes = read_midi(out).notes
    assert all(60 <= n.pitch <= 72 and n.pitch % 12 in (0, 2, 4, 5, 7, 9, 11) for n in notes)


def test_bad_control_is_a_user_error(model_dir, tmp_path, capsys):
    assert gen(model_dir, tmp_path / "x.mid", "--temp", "0") == 2
    assert "temperature" in capsys.readouterr().err
    assert gen(model_dir, tmp_path / "x.mid", "--prime", str(tmp_path / "missing.mid")) == 2


DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default"


@pytest.mark.skipif(not (DEFAULT / "model.onnx").exists(), reason="models/default has no model.onnx")
def test_the_shipped_model_continues_a_chorale(primer, tmp_path):
    out = tmp_path / "default.mid"
    assert main(["generate", "--model", str(DEFAULT), "--prime", str(primer), "--prime-bars", "4", "--bars", "4",
                 "--seed", "1", "--out", str(out), "--musicxml", str(tmp_path / "d.musicxml")]) == 0
    notes = read_midi(out).notes
    new = [n for n in notes if n.start >= 16]
    assert len(new) >= 4  # a trained model plays notes, not just rests


def test_new_notes_keep_the_primers_velocity_until_the_model_changes_it():
    """VEL is sent only on a change, so a continuation without VEL plays at the primer's velocity."""
    from scripted import ScriptedPredictor

    from agent.ui.commands.generate import generate
    from agent.music.tokens import Note, Vocab
    from agent.model.sampler import SamplingControls

    v = Vocab()
    pred = ScriptedPredictor(v, "NOTE_ON(67) SHIFT(12) NOTE_OFF(67)")
    g = generate(pred, SamplingControls(), [Note(60, 0, 1, 110)], bars=0.25, beats_per_bar=4)
    assert [(n.pitch, n.start, n.velocity) for n in g.primer] == [(60, 0, v.bin_velocity(v.velocity_bin(110)))]
    assert [(n.pitch, n.start, n.velocity) for n in g.generated] == [(67, 1, v.bin_velocity(v.velocity_bin(110)))]
    assert g.start_beat == 1


def test_bad_bpm_is_a_user_error(model_dir, tmp_path, capsys):
    assert gen(model_dir, tmp_path / "x.mid", "--bpm", "-90") == 2
    assert "--bpm" in capsys.readouterr().err


def test_a_held_note_is_closed_at_max_note_beats_as_the_live_agent_closes_it():
    """A model that never releases (a hot temperature's failure) must not write a note minutes long."""
    from scripted import ScriptedPredictor

    from agent.ui.commands.generate import generate
    from agent.music.tokens import Note, Vocab
    from agent.model.sampler import SamplingControls

    v = Vocab()
    pred = ScriptedPredictor(v, "NOTE_ON(67) SHIFT(36) SHIFT(36) SHIFT(36) NOTE_ON(69) SHIFT(12)")
    g = generate(pred, SamplingControls(), [Note(60, 0, 1, 90)], bars=2, beats_per_bar=4, max_note_beats=4.0)
    assert g.generated[0].pitch == 67 and g.generated[0].end - g.generated[0].start == 4.0
    # the model was told: its NOTE_OFF was fed after the shift that crossed the limit, not before
    fed = [v.name(t) for t in pred.fed]
    assert fed.index("NOTE_OFF(67)") == fed.index("SHIFT(36)") + 2
    assert all(n.end - n.start <= 4.0 for n in g.generated)
    # without the limit the same script holds the note for the whole continuation
    g = generate(ScriptedPredictor(v, "NOTE_ON(67) SHIFT(36) SHIFT(36) SHIFT(36) NOTE_ON(69) SHIFT(12)"),
                 SamplingControls(), [Note(60, 0, 1, 90)], bars=2, beats_per_bar=4)
    assert max(n.end - n.start for n in g.generated) > 4.0
