"""onnxruntime on the CPU: the default backend. No torch here, directly or not.

Batch 1, one token at a time, so parallelism inside an op buys nothing and
waking a thread pool costs more than the matmul: one intra-op thread, no
inter-op pool, sequential execution, no spinning (a spinning pool would steal
the core the MIDI threads need), full graph optimisation.

The file says its cell by its names: token, h, c -> logits, h_out, c_out is an
LSTM; token, h -> logits, h_out a GRU. The state is the tuple of the state
arrays, (h, c) or (h,).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.model.runtime.base import Backend, BackendError

INPUTS = ("token", "h", "c")
OUTPUTS = ("logits", "h_out", "c_out")
CELLS = {"lstm": (INPUTS, OUTPUTS), "gru": (("token", "h"), ("logits", "h_out"))}


def cell_of(inputs, outputs) -> str | None:
    """"lstm" or "gru" by a graph's input and output names; None for neither."""
    return next((cell for cell, (i, o) in CELLS.items() if set(inputs) == set(i) and set(outputs) == set(o)), None)


def session_options(threads: int = 1):
    """SessionOptions tuned for batch-1 latency with `threads` intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
    so.log_severity_level = 3  # warnings about unused initialisers are noise here
    return so


class OnnxBackend(Backend):
    """One session over models/<name>/model.onnx (or model.int8.onnx)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise BackendError(f"no ONNX model at {path} (export one with scripts/export_onnx.py)")
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        self.cell = cell_of(ins, outs)
        if self.cell is None:
            raise BackendError(f"{path}: inputs {sorted(ins)} / outputs {outs} are neither an LSTM's "
                               f"(token, h, c -> logits, h_out, c_out) nor a GRU's (token, h -> logits, h_out)")
        self._names = CELLS[self.cell][0][1:]  # the state inputs, in order
        state = [ins[k].shape for k in self._names]
        for k, shape in zip(self._names, state):
            if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape) or shape != state[0]:
                raise BackendError(f"{path}: state input {k} has shape {shape}; expected [layers, 1, hidden] "
                                   f"in whole numbers, the same for h and c")
        logits = self.session.get_outputs()[outs.index("logits")].shape
        if not logits or not isinstance(logits[-1], int) or logits[-1] < 1:
            raise BackendError(f"{path}: logits have shape {logits}; expected [1, vocabulary size]")
        (layers, _, hidden), vocab = state[0], logits[-1]
        super().__init__(vocab, layers, hidden)
        self.path = path
        self.threads = threads
        self._outputs = list(CELLS[self.cell][1])
        self._token = np.zeros(1, np.int64)  # reused: only its value changes

    def initial_state(self):
        return tuple(np.zeros((self.layers, 1, self.hidden), np.float32) for _ in self._names)

    def step(self, token: int, state):
        self._token[0] = token
        feed = {"token": self._token, **dict(zip(self._names, state))}
        logits, *state = self.session.run(self._outputs, feed)
        return logits[0], tuple(state)  # fresh arrays every run: old states stay valid

    def describe(self) -> dict:
        return {**super().describe(), "cell": self.cell, "model": self.path.name, "intra_op_threads": self.threads}
