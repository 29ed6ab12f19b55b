"""A GRU model folder live (issue 24 item 4): the onnx runtime, the predictor's rollback, the jam on a fake clock."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tiny

from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.scheduler import Scheduler
from agent.model.predictor import Predictor
from agent.model.runtime import BackendError, load_backend
from agent.model.sampler import SamplingControls
from agent.music.tempomap import FakeClock, TempoMap
from agent.music.tokens import Vocab, encode
from helpers import ListOut

LAYERS, HIDDEN = 2, 36


@pytest.fixture(scope="module")
def gru_dir(tmp_path_factory):
    return tiny.make_model_dir(tmp_path_factory.mktemp("gru"), hidden=HIDDEN, layers=LAYERS, cell="gru", int8=True)


@pytest.fixture(scope="module")
def chorale() -> list[int]:
    from music21 import corpus

    from agent.music.notes import notes_from_music21

    return [int(t) for t in encode(notes_from_music21(corpus.parse("bach/bwv66.6")), Vocab())][:200]


def test_the_onnx_runtime_reads_a_gru_file_and_matches_the_torch_runtime(gru_dir, chorale):
    onnx_be, torch_be = load_backend(gru_dir, "onnx"), load_backend(gru_dir, "torch-cpu")
    assert onnx_be.describe()["cell"] == "gru"
    assert torch_be.describe()["cell"] == "gru"
    a, b = onnx_be.initial_state(), torch_be.initial_state()
    assert [s.shape for s in a] == [(LAYERS, 1, HIDDEN)]  # h alone: a GRU has no c
    worst = 0.0
    for t in chorale:
        la, a = onnx_be.step(t, a)
        lb, b = torch_be.step(t, b)
        worst = max(worst, float(np.abs(la - lb).max()))
    assert worst == pytest.approx(0.0, abs=1e-4)


def test_the_int8_gru_file_loads_as_a_gru(gru_dir):
    be = load_backend(gru_dir, "onnx", quantized=True)
    assert be.describe()["model"] == "model.int8.onnx"
    assert be.describe()["cell"] == "gru"


def test_an_onnx_file_of_neither_kind_gets_one_line(tmp_path):
    """inputs token, x (no h): not an LSTM's nor a GRU's step."""
    ins = [helper.make_tensor_value_info("token", TensorProto.INT64, [1]),
           helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 8])]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 1, 8]),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [2, 1, 8])]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"]),
                               helper.make_node("Identity", ["x"], ["h_out"])], "bad", ins, outs)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BackendError) as err:
        load_backend(tmp_path, "onnx")
    msg = str(err.value)
    assert msg.count("\n") == 0
    assert "neither an LSTM's (token, h, c -> logits, h_out, c_out) nor a GRU's (token, h -> logits, h_out)" in msg


def test_rollback_restores_a_gru_state_exactly(gru_dir, chorale):
    pred = Predictor.load(gru_dir, backend="onnx", seed=5)
    pred.feed_many(chorale[1:60])
    snap = pred.snapshot()
    h_then, logits_then = snap.state[0].copy(), np.array(pred.logits, copy=True)
    controls = SamplingControls()
    for _ in range(25):  # speculation that is then undone
        pred.sample(controls)
    assert not np.array_equal(pred.state[0], h_then)
    pred.rollback(snap)
    assert len(pred.state) == 1
    assert np.array_equal(pred.state[0], h_then)
    assert np.array_equal(pred.logits, logits_then)
    # and it goes on as a predictor that never speculated: the same tokens give the same logits
    fresh = Predictor.load(gru_dir, backend="onnx", seed=5)
    fresh.feed_many(chorale[1:60])
    pred.feed_many(chorale[60:80])
    fresh.feed_many(chorale[60:80])
    assert np.array_equal(pred.logits, fresh.logits)


def test_the_jam_plays_a_gru_model_on_a_fake_clock(gru_dir):
    """What the engine runs on its thread (jam + scheduler), solo over a GRU folder, four fake seconds."""
    cfg = load_config(overrides=['jam.mode="solo"', "timing.bpm=120.0"])
    clock = FakeClock(100.0)
    out = ListOut(clock)
    sched = Scheduler(out, clock)
    pred = Predictor.load(gru_dir, backend="onnx", seed=2)
    jam = Jam(pred, sched, TempoMap(120.0, clock.now()), LiveControls(cfg), clock, cfg.vocab())
    wake = jam.tick(clock.now())
    while clock.now() < 104.0:
        nd = sched.next_due()
        clock.set(min(x for x in (wake, nd, 104.0) if x is not None))
        sched.pump()
        wake = jam.tick(clock.now())
    sched.panic()
    ons = [m for _, m in out.sent if m.type == "note_on" and m.velocity > 0]
    assert len(ons) >= 1
    assert pred.steps > 1
    assert len(sched.open_notes) == 0
