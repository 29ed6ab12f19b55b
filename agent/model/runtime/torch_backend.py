"""torch backends: CUDA (state on the GPU, CUDA graph, sampling on the GPU) and a CPU fallback.

This is the one module under agent/ besides agent/model/net.py that imports
torch, and it does so only when a TorchBackend is built, so importing it on a
machine without torch (or without a GPU) is safe.

CUDA path, and why:
- the checkpoint's LSTM, h, c and the logits live on the GPU for good;
- one step (embedding -> LSTM -> head) is captured once in a CUDA graph and
  replayed, so a step is one launch instead of a dozen small ones;
- the draw (bias, temperature, top-k, top-p, multinomial) runs on the GPU
  too, and only the chosen token id crosses to the host (`.item()`, the one
  sync per sampled token); the next step writes it into the graph's token
  input with `fill_` (a kernel argument, not a host-to-device copy).
  The bias vector ([vocab] floats) is uploaded only when it changes.
Not measured on this project's machines (no GPU); see BENCHMARKS.md.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from agent.model.runtime.base import Backend, BackendError


def load_weights(path: Path):
    """The model in checkpoint.pt, loaded with weights_only=True: a checkpoint that holds pickled
    code or objects is refused (nothing in it runs), one of another shape is named as such."""
    import pickle

    from agent.model.net import load_checkpoint

    try:
        model, _ = load_checkpoint(path, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"{path}: refused: not a plain-weights checkpoint (it holds pickled code or objects; "
                           f"loaded with weights_only=True, so nothing in it ran: {first[:120]})") from None
    except (KeyError, TypeError, RuntimeError, ValueError, EOFError, OSError) as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [type(exc).__name__]
        detail = next((ln for ln in lines if "size mismatch" in ln), lines[0])  # the shape, if that is it
        raise BackendError(f"{path}: not a checkpoint this version can load "
                           f"({type(exc).__name__}: {detail[:200]})") from None
    return model


class TorchBackend(Backend):
    """A checkpoint.pt run by torch on `device` ("cpu" or "cuda[:n]")."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", threads: int = 1,
                 cuda_graph: bool = True, seed: int | None = None) -> None:
        import torch

        path = Path(checkpoint)
        if not path.exists():
            raise BackendError(f"no checkpoint at {path} (the torch backends need checkpoint.pt)")
        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend torch-cuda asked for, but torch sees no CUDA device")
        if self.device.type == "cpu":
            # Global to the process; batch 1 gains nothing from more (DESIGN.md, figures).
            torch.set_num_threads(threads)
        model = load_weights(path)
        self.model = model.to(self.device).eval()
        a = model.args
        super().__init__(a.vocab_size, a.layers, a.hidden)
        self.name = "torch-cuda" if self.device.type == "cuda" else "torch-cpu"
        self.threads = threads
        self.samples_on_device = self.device.type == "cuda"
        self._graph = None
        # Device-sampling buffers exist on the CPU too, so tests can check `sample` there.
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed if seed is not None and seed >= 0 else int(np.random.SeedSequence().entropy % 2**63))
        self._bias_host = np.zeros(a.vocab_size)
        self._bias = torch.zeros(a.vocab_size, device=self.device)
        if self.samples_on_device and cuda_graph:
            self._tok = torch.zeros(1, dtype=torch.long, device=self.device)
            self._state = self.model.initial_state(1, self.device)  # (h, c), or (h,) for a GRU
            self._capture()

    # -- CUDA graph ------------------------------------------------------------
    def _capture(self) -> None:
        torch = self.torch
        with torch.inference_mode():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
                for _ in range(3):
                    self.model.step_state(self._tok, self._state)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._logits, self._state_out = self.model.step_state(self._tok, self._state)

    # -- Backend ---------------------------------------------------------------
    def initial_state(self):
        return self.model.initial_state(1, self.device)

    def step(self, token: int, state):
        torch = self.torch
        with torch.inference_mode():
            if self._graph is not None:
                self._tok.fill_(int(token))  # a kernel argument, not a copy that syncs
                for buf, s in zip(self._state, state):
                    buf.copy_(s)
                self._graph.replay()
                # Static buffers: valid until the next replay; clone_state keeps a copy.
                return self._logits[0], self._state_out
            tok = torch.tensor([int(token)], device=self.device)
            logits, state = self.model.step_state(tok, state)
        if self.device.type == "cpu":
            return logits[0].numpy(), state
        return logits[0], state

    def clone_state(self, state):
        if isinstance(state, tuple):
            return tuple(s.clone() if hasattr(s, "clone") else s for s in state)
        return state.clone() if hasattr(state, "clone") else state

    def rng_state(self):
        return self._gen.get_state()

    def set_rng_state(self, state) -> None:
        if state is not None:
            self._gen.set_state(state)

    def seed_rng(self, seed: int) -> None:
        self._gen.manual_seed(int(seed))

    def to_host(self, logits):
        return logits.float().cpu().numpy() if hasattr(logits, "cpu") else logits

    def describe(self) -> dict:
        d = {**super().describe(), "cell": self.model.args.cell, "device": str(self.device),
             "cuda_graph": self._graph is not None}
        if self.device.type == "cpu":
            d["torch_threads"] = self.threads
        return d

    # -- sampling on the device -----------------------------------------------------
    def sample(self, logits, bias: np.ndarray, c) -> int:
        """Draw one token on the GPU with the numpy Sampler's formulas; only the id comes back."""
        torch = self.torch
        with torch.inference_mode():
            if not np.array_equal(bias, self._bias_host):
                self._bias_host = bias.copy()
                self._bias.copy_(torch.from_numpy(bias.astype(np.float32)))
            z = logits.float() + self._bias
            t = c.temperature
            if c.adaptive:
                finite = torch.isfinite(z)
                logp = torch.log_softmax(z, 0)
                p = logp.exp()
                h = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum()
                n = finite.sum().clamp(min=2).float()
                h_norm = (h / torch.log(n)).clamp(0.0, 1.0)
                t = c.temperature * (c.adaptive_max - (c.adaptive_max - c.adaptive_min) * h_norm)
            z = z / t
            if 0 < c.top_k < z.numel():
                kth = torch.topk(z, c.top_k).values[-1]
                z = z.masked_fill(z < kth, -math.inf)
            if c.top_p < 1.0:
                zs, order = torch.sort(z, descending=True)
                ps = torch.softmax(zs, 0)
                before = torch.cumsum(ps, 0) - ps  # mass of the likelier tokens
                zs = zs.masked_fill(before >= c.top_p, -math.inf)
                z = torch.empty_like(z).scatter_(0, order, zs)
            tok = torch.multinomial(torch.softmax(z, 0), 1, generator=self._gen)
            return int(tok.item())  # the only device-to-host transfer
