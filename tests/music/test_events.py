"""The vocabulary and encode/decode: properties over any note list, plus edge cases."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.music.tokens import Note, StreamEncoder, Token, Vocab, VocabMismatch, decode, encode, quantize, token_ids_from_names

V = Vocab()

note_st = st.builds(
    lambda pitch, start, dur, vel: Note(pitch, start, start + dur, vel),
    st.integers(V.pitch_lo, V.pitch_hi),
    st.floats(0, 64, allow_nan=False),
    st.floats(0, 12, allow_nan=False),
    st.integers(1, 127),
)


def _key(q):  # quantized note tuple -> comparable (on, off, pitch, velocity bin)
    on, off, pitch, vel = q
    return (on, off, pitch, V.velocity_bin(vel))


@settings(max_examples=300, deadline=None)
@given(st.lists(note_st, max_size=60))
def test_encode_decode_round_trip_equals_quantized_notes(notes):
    ids = encode(notes, V)
    assert ids[0] == V.START and ids[-1] == V.END
    back = decode(ids, V)
    got = sorted((round(n.start * V.resolution), round(n.end * V.resolution), n.pitch, V.velocity_bin(n.velocity))
                 for n in back)
    assert got == sorted(_key(q) for q in quantize(notes, V.resolution))


@settings(max_examples=200, deadline=None)
@given(st.lists(note_st, max_size=60))
def test_every_note_on_has_its_note_off(notes):
    ids = encode(notes, V)
    sounding = set()
    for i in ids:
        t = V.token(i)
        if t.kind == "NOTE_ON":
            assert t.value not in sounding, "a pitch started twice without a release"
            sounding.add(t.value)
        elif t.kind == "NOTE_OFF":
            assert t.value in sounding, "a release with no note sounding"
            sounding.discard(t.value)
    assert not sounding


@given(st.integers(0, V.size - 1))
def test_every_id_names_a_token_and_back(i):
    t = V.token(i)
    assert V.id(t) == i
    assert token_ids_from_names(str(t), V) == [i]


@given(st.integers(1, 127))
def test_velocity_bins_round_trip(vel):
    b = V.velocity_bin(vel)
    assert V.velocity_bin(V.bin_velocity(b)) == b


def test_layout_is_contiguous_and_sized():
    kinds = [V.token(i).kind for i in range(V.size)]
    assert kinds.count("NOTE_ON") == kinds.count("NOTE_OFF") == 88
    assert kinds.count("SHIFT") == V.max_shift and kinds.count("VEL") == V.velocity_bins
    with pytest.raises(ValueError, match="outside the vocabulary"):
        V.token(V.size)
    with pytest.raises(ValueError, match="pitch 10"):
        V.note_on(10)


def test_long_gap_becomes_several_shifts_and_overlaps_are_released():
    notes = [Note(60, 0, 2), Note(60, 1, 3), Note(64, 20, 21)]
    names = V.names(encode(notes, V, boundaries=False))
    # the second C starts while the first sounds: the first is released there
    # the second C starts while the first sounds: the first is released there;
    # the 17-beat gap (204 ticks) is four longest shifts and the rest
    assert names == ("VEL(10) NOTE_ON(60) SHIFT(12) NOTE_OFF(60) NOTE_ON(60) SHIFT(24) NOTE_OFF(60) "
                     "SHIFT(48) SHIFT(48) SHIFT(48) SHIFT(48) SHIFT(12) NOTE_ON(64) SHIFT(12) NOTE_OFF(64)")
    back = decode(encode(notes, V), V)
    assert [(n.pitch, n.start, n.end) for n in back] == [(60, 0, 1), (60, 1, 3), (64, 20, 21)]


def test_stream_encoder_drops_out_of_range_and_stray_offs():
    enc = StreamEncoder(V)
    assert enc.note_on(5, 100, 0) == [] and enc.dropped == 1
    assert enc.note_off(60, 3) == [V.shift(3)]
    assert V.names(enc.note_on(60, 100, 3)) == "VEL(12) NOTE_ON(60)"
    assert V.names(enc.close_all(4)) == "SHIFT(1) NOTE_OFF(60)"


def test_decode_closes_notes_a_sampler_left_open():
    ids = [V.START, V.note_on(60), V.shift(6), V.note_on(60), V.note_off(70), V.shift(3)]
    assert [(n.start, n.end) for n in decode(ids, V)] == [(0, 0.5), (0.5, 0.75)]


def test_vocab_saved_and_checked(tmp_path):
    p = tmp_path / "vocab.json"
    V.save(p)
    assert Vocab.load(p) == V
    assert json.loads(p.read_text())["size"] == V.size
    other = Vocab(resolution=24)
    with pytest.raises(VocabMismatch, match="resolution: 12 != 24"):
        V.check_same(other, "model")
    d = V.to_dict() | {"size": 5}
    p.write_text(json.dumps(d))
    with pytest.raises(VocabMismatch, match="size 5"):
        Vocab.load(p)


def test_token_str():
    assert str(Token("NOTE_ON", 60)) == "NOTE_ON(60)" and str(Token("START")) == "START"


def test_bad_vocab_file_is_a_vocab_error_not_a_traceback(tmp_path):
    p = tmp_path / "vocab.json"
    for bad, match in (({"resolution": 0}, "bad vocabulary"), ({"resolution": "x"}, "bad vocabulary"),
                       ([], "table of fields")):
        p.write_text(json.dumps(bad))
        with pytest.raises(VocabMismatch, match=match):
            Vocab.load(p)


def test_two_onsets_on_one_tick_keep_the_longer_note_and_its_velocity():
    notes = [Note(60, 0, 1, 100), Note(60, 0, 2, 30)]
    assert quantize(notes, V.resolution) == [(0, 24, 60, 30)]


def test_ticks_counts_only_shifts():
    assert [V.ticks(i) for i in (V.shift(1), V.shift(V.max_shift), V.note_on(60), V.velocity(0), V.END)] == \
        [1, V.max_shift, 0, 0, 0]
