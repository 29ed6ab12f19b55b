"""Malformed files of every kind a reader meets, made on the spot (tests and scripts/fuzz.py share them).

Each maker writes one bad file (or model folder) under a directory and
returns its path; `MIDI_KINDS` and `MODEL_KINDS` name them with what the
one-line error must mention.
"""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "default"


def good_midi_bytes(ticks_per_beat: int = 480, tempo: int = 500_000, delta: int = 480) -> bytes:
    """A small valid type-1 file: a tempo, then four notes."""
    mid = mido.MidiFile(type=1, ticks_per_beat=max(ticks_per_beat, 1))
    tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=max(tempo, 0), time=0)])
    for p in (60, 62, 64, 65):
        tr += [mido.Message("note_on", note=p, velocity=80, time=0), mido.Message("note_off", note=p, time=delta)]
    mid.tracks.append(tr)
    import io

    buf = io.BytesIO()
    mid.save(file=buf)
    data = buf.getvalue()
    if ticks_per_beat == 0:  # mido refuses to write it; patch the header's division field
        data = data[:12] + struct.pack(">H", 0) + data[14:]
    return data


def _tempo_bytes(tempo: int) -> bytes:
    data = good_midi_bytes()
    marker = b"\xff\x51\x03" + struct.pack(">I", 500_000)[1:]
    return data.replace(marker, b"\xff\x51\x03" + struct.pack(">I", tempo)[1:], 1)


def _absurd_ticks() -> bytes:
    # every note-off's delta the largest variable-length quantity MIDI allows (0x0FFFFFFF ticks)
    data = good_midi_bytes(ticks_per_beat=1, delta=1)
    assert data.count(b"\x01\x80") == 4
    data = data.replace(b"\x01\x80", b"\xff\xff\xff\x7f\x80")
    return data[:18] + struct.pack(">I", struct.unpack(">I", data[18:22])[0] + 12) + data[22:]  # track length


def _big(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.write(good_midi_bytes())
        f.seek(size - 1)
        f.write(b"\0")


MIDI_KINDS = {
    # kind: (bytes maker or None, what the error line must say)
    "truncated": (lambda: good_midi_bytes()[:40], "not a readable MIDI file"),
    "corrupt": (lambda: good_midi_bytes()[:22] + bytes(range(256)) * 2, "not a readable MIDI file"),
    "wrong magic": (lambda: b"RIFF" + good_midi_bytes()[4:], "not a readable MIDI file"),
    "ticks per beat 0": (lambda: good_midi_bytes(ticks_per_beat=0), "ticks per beat"),
    "tempo 0": (lambda: _tempo_bytes(0), "tempo"),
    "absurd tempo": (lambda: _tempo_bytes(1), "tempo"),
    "absurd ticks": (_absurd_ticks, "beats long"),
    "200 MB": (None, "MB"),
}


def write_midi_kind(kind: str, folder: Path) -> Path:
    path = folder / (kind.replace(" ", "_") + ".mid")
    make, _ = MIDI_KINDS[kind]
    if make is None:
        _big(path, 200 * 1024 * 1024)  # sparse where the file system allows: no 200 MB written
    else:
        path.write_bytes(make())
    return path


class EvilPickle:
    """Unpickling this runs code (os.system): exactly what weights_only=True refuses."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def _model_copy(folder: Path) -> Path:
    dst = folder / "model"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "vocab.json", "card.json"):
        if (DEFAULT_MODEL / name).exists():
            shutil.copy(DEFAULT_MODEL / name, dst / name)
    return dst


def _other_vocab(folder: Path) -> Path:
    d = _model_copy(folder)
    v = json.loads((d / "vocab.json").read_text())
    v["velocity_bins"] = v["velocity_bins"] // 2
    v.pop("size", None)
    (d / "vocab.json").write_text(json.dumps(v))
    return d


def _not_onnx(folder: Path) -> Path:
    d = _model_copy(folder)
    (d / "model.onnx").write_bytes(b"this is not a protobuf\x00\xff" * 100)
    return d


def _other_shape(folder: Path) -> Path:
    """A valid ONNX graph, but not a single LSTM step (one float input, no state)."""
    from onnx import TensorProto, helper, save

    d = _model_copy(folder)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(d / "model.onnx"))
    return d


def _checkpoint_other_shape(folder: Path) -> Path:
    """A plain-weights checkpoint whose weights do not fit its own model_args."""
    import sys

    import torch

    import tiny

    d = _model_copy(folder)
    tiny.make_checkpoint(d / "checkpoint.pt", hidden=32, embedding=16)
    ckpt = torch.load(d / "checkpoint.pt", weights_only=True)
    ckpt["model_args"]["hidden"] = 48
    torch.save(ckpt, d / "checkpoint.pt")
    return d


def _bad_vocab(folder: Path) -> Path:
    d = _model_copy(folder)
    (d / "vocab.json").write_text('{"resolution": 12, "max_shift": ')
    return d


def _vocab_with(**fields):
    """A vocab.json of the default model with some fields replaced (None: left out)."""
    def make(folder: Path) -> Path:
        d = _model_copy(folder)
        v = json.loads((d / "vocab.json").read_text())
        v.update(fields)
        (d / "vocab.json").write_text(json.dumps({k: x for k, x in v.items() if x is not None}))
        return d
    return make


def _vocab_text(text: str):
    def make(folder: Path) -> Path:
        d = _model_copy(folder)
        (d / "vocab.json").write_text(text)
        return d
    return make


def _onnx_step_graph(folder: Path, *, state_dims, vocab_dim) -> Path:
    """A graph with the step's input and output names but the shapes given (strings are symbolic)."""
    from onnx import TensorProto, helper, save

    d = _model_copy(folder)
    vi = helper.make_tensor_value_info
    ins = [vi("token", TensorProto.INT64, [1]), vi("h", TensorProto.FLOAT, state_dims),
           vi("c", TensorProto.FLOAT, state_dims)]
    outs = [vi("logits", TensorProto.FLOAT, [1, vocab_dim]), vi("h_out", TensorProto.FLOAT, state_dims),
            vi("c_out", TensorProto.FLOAT, state_dims)]
    nodes = [helper.make_node("Identity", ["h"], ["h_out"]), helper.make_node("Identity", ["c"], ["c_out"]),
             helper.make_node("Concat", ["one", "token"], ["shape"], axis=0),  # a size known only at run time
             helper.make_node("ConstantOfShape", ["shape"], ["logits"])]
    shape = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "step", ins, outs, initializer=[shape])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(d / "model.onnx"))
    return d


def _card_text(text: str):
    def make(folder: Path) -> Path:
        d = _model_copy(folder)
        (d / "card.json").write_text(text)
        return d
    return make


def _roll_not_onnx(folder: Path) -> Path:
    d = _not_onnx(folder)
    (d / "card.json").write_text('{"kind": "roll"}')
    return d


def _bad_card(folder: Path) -> Path:
    d = _model_copy(folder)
    (d / "card.json").write_text("[1, 2,")
    return d


def _pickle_checkpoint(folder: Path) -> Path:
    import pickle

    d = _model_copy(folder)
    with (d / "checkpoint.pt").open("wb") as f:
        pickle.dump({"model_args": EvilPickle()}, f)
    return d


MODEL_KINDS = {
    # kind: (maker, backend to load with, what the error line must say)
    "another vocabulary": (_other_vocab, "onnx", "vocab.json"),
    "another shape": (_other_shape, "onnx", "neither an LSTM"),
    "checkpoint of another shape": (_checkpoint_other_shape, "torch-cpu", "checkpoint"),
    "not ONNX": (_not_onnx, "onnx", "model.onnx"),
    "bad vocab.json": (_bad_vocab, "onnx", "vocab.json"),
    "bad card.json": (_bad_card, "onnx", "card.json"),
    "vocab size not a number": (_vocab_with(size="big"), "onnx", "vocab.json: bad vocabulary: size must be a whole number"),
    "vocab field not a whole number": (_vocab_with(resolution=12.5), "onnx", "vocab.json: bad vocabulary: resolution must be a whole number"),
    "vocab size wrong": (_vocab_with(size=300), "onnx", "vocab.json: it says size 300"),
    "vocab unknown field": (_vocab_with(colour="red"), "onnx", "vocab.json: unknown"),
    "vocab not a table": (_vocab_text("[12, 48]"), "onnx", "vocab.json: a vocabulary is a table"),
    "ONNX state of no fixed size": (lambda f: _onnx_step_graph(f, state_dims=["layers", 1, "hidden"], vocab_dim=242),
                                    "onnx", "model.onnx: state input h has shape"),
    "ONNX logits of no fixed size": (lambda f: _onnx_step_graph(f, state_dims=[2, 1, 256], vocab_dim="v"),
                                     "onnx", "model.onnx: logits have shape"),
    "card not a table": (_card_text('["roll"]'), "onnx", "card.json: a model card is a JSON object"),
    "roll card, not ONNX": (_roll_not_onnx, "onnx", "model.onnx"),
    "roll card with bad frames_per_beat": (_card_text('{"kind": "roll", "frames_per_beat": "fast"}'),
                                           "onnx", "card.json: frames_per_beat"),
    "pickle with code": (_pickle_checkpoint, "torch-cpu", "weights_only"),
}
