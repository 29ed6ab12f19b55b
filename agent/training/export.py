#!/usr/bin/env python
"""Export a checkpoint's LSTM (or GRU) as a single-step ONNX graph for the live agent.

    python scripts/export_onnx.py models/default/checkpoint.pt [--out DIR] [--int8]

Writes DIR/model.onnx (one file, weights inside, no external data) and
DIR/vocab.json; with --int8 also DIR/model.int8.onnx (dynamic int8
quantisation of the LSTM and the output layer's weights). DIR defaults to the
checkpoint's folder.

The graph is one step of `LSTMModel.step`, with these names, which other
tools rely on:

    inputs   token  int64   [1]
             h      float32 [layers, 1, hidden]
             c      float32 [layers, 1, hidden]
    outputs  logits float32 [1, vocab]
             h_out  float32 [layers, 1, hidden]
             c_out  float32 [layers, 1, hidden]

A GRU model (`ModelArgs.cell = "gru"`) has no c: its graph takes token, h and
gives logits, h_out; the runtimes tell the kinds apart by these names. Its cell
is written out as MatMuls (GRUStep): onnxruntime's int8 quantiser has an LSTM
op but no GRU op, and MatMuls it does quantise, so both kinds go int8.

After writing, the script runs 200 steps with the state carried through both
torch and onnxruntime and prints the largest logit difference, so a bad
export is caught here and not on stage.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from agent.music.tokens import Vocab
from agent.model.net import LSTMModel, load_checkpoint

INPUT_NAMES = ["token", "h", "c"]
OUTPUT_NAMES = ["logits", "h_out", "c_out"]
GRU_INPUT_NAMES = ["token", "h"]
GRU_OUTPUT_NAMES = ["logits", "h_out"]
OPSET = 17


def io_names(model: LSTMModel) -> tuple[list[str], list[str]]:
    """The graph's (inputs, outputs) for the model's cell."""
    return (GRU_INPUT_NAMES, GRU_OUTPUT_NAMES) if model.gru else (INPUT_NAMES, OUTPUT_NAMES)


class _Step(torch.nn.Module):
    """Wraps LSTMModel.step so the traced graph has exactly the three inputs."""

    def __init__(self, model: LSTMModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, token, h, c):
        return self.model.step(token, h, c)


class GRUStep(torch.nn.Module):
    """One step of a GRU token model written as MatMuls over nn.GRU's own weights (torch's gate
    order r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n + z h)."""

    def __init__(self, model: LSTMModel) -> None:
        super().__init__()
        self.model = model
        g = model.lstm
        for i in range(model.args.layers):
            for kind in ("ih", "hh"):  # transposed once here, so the graph's MatMuls take them as they are
                self.register_buffer(f"w_{kind}{i}", getattr(g, f"weight_{kind}_l{i}").detach().t().contiguous())
                self.register_buffer(f"b_{kind}{i}", getattr(g, f"bias_{kind}_l{i}").detach().clone())

    def forward(self, token, h):
        x, hidden, out = self.model.embed(token), self.model.args.hidden, []
        for i in range(self.model.args.layers):
            gi = x @ getattr(self, f"w_ih{i}") + getattr(self, f"b_ih{i}")
            gh = h[i] @ getattr(self, f"w_hh{i}") + getattr(self, f"b_hh{i}")
            r = torch.sigmoid(gi[:, :hidden] + gh[:, :hidden])
            z = torch.sigmoid(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
            n = torch.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
            x = (1 - z) * n + z * h[i]
            out.append(x)
        return self.model.head(x), torch.stack(out)


def export_model(model: LSTMModel, vocab: Vocab, out_dir: str | Path, *, int8: bool = False) -> Path:
    """Write out_dir/model.onnx (+ model.int8.onnx) and vocab.json; returns the model.onnx path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    if model.args.vocab_size != vocab.size:
        raise SystemExit(f"model has {model.args.vocab_size} outputs but the vocabulary has {vocab.size} tokens")
    token = torch.zeros(1, dtype=torch.long)
    state = model.initial_state(1)
    path = out / "model.onnx"
    # The TorchScript exporter keeps nn.LSTM's between-layer dropout in the graph
    # even in eval mode (logits off by ~1e-2 with 2 layers); at inference dropout
    # is the identity, so export a copy with it set to 0.
    model = copy.deepcopy(model)
    model.lstm.dropout = 0.0
    step, (ins, outs) = (GRUStep(model) if model.gru else _Step(model)), io_names(model)
    with warnings.catch_warnings():
        # The TorchScript exporter warns about LSTM batch sizes; ours is fixed at 1
        # and h/c are explicit inputs, which is exactly what the warning asks for.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step, (token, *state), str(path), input_names=ins, output_names=outs,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    _check_single_file(path)
    vocab.save(out / "vocab.json")
    if int8:
        quantize_int8(path, out / "model.int8.onnx")
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised per call)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is for CNNs with static shapes
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    _check_single_file(dst)
    return dst


def _check_single_file(path: Path) -> None:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise SystemExit(f"{path}: weights were written as external data ({external[:3]}...)")
    onnx.checker.check_model(m)


def parity(model: LSTMModel, onnx_path: str | Path, steps: int = 200, seed: int = 0) -> float:
    """Largest |logit difference| between torch and onnxruntime over `steps` carried steps."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, model.args.vocab_size, size=steps)
    ins, outs = io_names(model)
    state = model.initial_state(1)
    state_n = [s.numpy() for s in state]
    worst = 0.0
    with torch.inference_mode():
        for t in tokens:
            lt, state = model.step_state(torch.tensor([int(t)]), state)
            ln, *state_n = sess.run(outs, {"token": np.array([t], np.int64), **dict(zip(ins[1:], state_n))})
            worst = max(worst, float(np.abs(lt.numpy() - ln).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a checkpoint.pt written by scripts/train.py")
    ap.add_argument("--out", metavar="DIR", help="output folder (default: the checkpoint's folder)")
    ap.add_argument("--int8", action="store_true", help="also write model.int8.onnx (dynamic quantisation)")
    args = ap.parse_args(argv)
    ckpt_path = Path(args.checkpoint)
    if not ckpt_path.exists():
        print(f"export_onnx: {ckpt_path}: no such checkpoint", file=sys.stderr)
        return 2
    model, ckpt = load_checkpoint(ckpt_path)
    vocab = Vocab.from_dict(ckpt["vocab"])
    out = Path(args.out) if args.out else ckpt_path.parent
    path = export_model(model, vocab, out, int8=args.int8)
    diff = parity(model, path)
    report = {"onnx": str(path), "bytes": path.stat().st_size, "vocab": vocab.size,
              "model_args": model.model_args(), "parity_max_abs_diff_200_steps": diff}
    if args.int8:
        q = out / "model.int8.onnx"
        report.update(int8=str(q), int8_bytes=q.stat().st_size)
    print(json.dumps(report, indent=2))
    if diff > 1e-4:
        print(f"export_onnx: torch and onnxruntime differ by {diff:.2e} (> 1e-4)", file=sys.stderr)
        return 1
    return 0
