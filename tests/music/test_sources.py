"""Real files through the tokenizer: a Bach chorale, multi-track MIDI files, broken files."""
from __future__ import annotations

import mido
import pytest

from agent.music.tokens import Note, Vocab, decode, encode, quantize
from agent.music.notes import MidiReadError, notes_from_music21, read_midi, to_messages, write_midi

V = Vocab()


def _q(notes):
    return sorted((on, off, p, V.velocity_bin(v)) for on, off, p, v in quantize(notes, V.resolution))


def test_bach_chorale_round_trips(chorale, tmp_path):
    notes = notes_from_music21(chorale)
    assert len(notes) > 100 and {n.pitch for n in notes} >= {57, 64, 73}
    back = decode(encode(notes, V), V)
    assert _q(back) == _q(notes)
    # and through a MIDI file on disk
    out = write_midi(back, tmp_path / "bwv66.mid", bpm=90)
    again = read_midi(out)
    assert again.bpm == pytest.approx(90, abs=0.01)
    assert _q(again.notes) == _q(notes)


@pytest.mark.parametrize("name", ["test03.mid", "test09.mid"])
def test_multitrack_midi_round_trips(music21_midi_dir, tmp_path, name):
    path = music21_midi_dir / name
    mid = mido.MidiFile(path)
    assert len(mid.tracks) >= 3
    piece = read_midi(path)
    sounding = sum(1 for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0 and m.channel != 9)
    assert len(piece.notes) == sounding  # every struck note read, across all tracks
    ids = encode(piece.notes, V)
    out = write_midi(decode(ids, V), tmp_path / name, bpm=piece.bpm)
    assert _q(read_midi(out).notes) == _q([n for n in piece.notes if V.in_range(n.pitch)])


def test_note_on_velocity_zero_is_a_note_off(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=96)
    tr = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                         mido.Message("note_on", note=60, velocity=0, time=48),
                         mido.Message("note_on", note=62, velocity=70, time=0),
                         mido.Message("note_off", note=62, velocity=0, time=96)])
    mid.tracks.append(tr)
    mid.save(tmp_path / "v0.mid")
    notes = read_midi(tmp_path / "v0.mid").notes
    assert [(n.pitch, n.start, n.end, n.velocity) for n in notes] == [(60, 0, 0.5, 90), (62, 0.5, 1.5, 70)]


def test_broken_midi_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\x90")
    with pytest.raises(MidiReadError, match="broken.mid"):
        read_midi(bad)
    with pytest.raises(MidiReadError, match="no such file"):
        read_midi(tmp_path / "nope.mid")


def test_messages_have_beats_and_seconds():
    notes = decode(encode(notes_from_music21(__import__("music21").corpus.parse("bach/bwv66.6")), V), V)
    msgs = to_messages(notes, 120)
    assert all(m.time_s == pytest.approx(m.beat * 0.5) for m in msgs)
    assert [m.beat for m in msgs] == sorted(m.beat for m in msgs)
    ons = sum(m.message.type == "note_on" for m in msgs)
    assert ons == len(notes) == sum(m.message.type == "note_off" for m in msgs)


def test_a_note_of_no_length_is_switched_on_then_off():
    msgs = to_messages([Note(60, 1.0, 1.0, 90), Note(62, 1.0, 2.0, 90)], 120)
    sixty = [m.message.type for m in msgs if m.message.note == 60]
    assert sixty == ["note_on", "note_off"]  # the other order would leave it sounding


def test_one_named_track_is_read_alone(tmp_path):
    a, b = [Note(60, 0.0, 1.0, 80)], [Note(67, 0.5, 2.0, 90), Note(69, 2.0, 3.0, 90)]
    out = write_midi([], tmp_path / "t.mid", bpm=90.0, tracks={"primer": a, "generated": b})
    assert [(n.pitch, n.start, n.end) for n in read_midi(out, track="generated").notes] == [(67, 0.5, 2.0), (69, 2.0, 3.0)]
    assert [n.pitch for n in read_midi(out).notes] == [60, 67, 69]
    with pytest.raises(MidiReadError, match="no track named 'human'"):
        read_midi(out, track="human")
