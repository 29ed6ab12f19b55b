"""Inference backends behind one interface: `step(token, state) -> (logits, state)`.

    onnx        onnxruntime on the CPU (default; no torch import)
    torch-cpu   the checkpoint through torch on the CPU (fallback, reference)
    torch-cuda  torch on a GPU: state on the device, CUDA graph, sampling on the device
    auto        the measured best: onnx on the CPU (0.15 ms a step on 2 cores,
                see BENCHMARKS.md). The CUDA path has not been measured
                against it yet, so auto never picks it: ask for torch-cuda.

Choosing a backend never imports torch unless torch-cpu or torch-cuda is asked for.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from agent.model.folder import ModelDir
from agent.model.runtime.base import Backend, BackendError

BACKENDS = ("auto", "onnx", "torch-cpu", "torch-cuda")


def cuda_likely() -> bool:
    """True if torch is installed and an NVIDIA driver is loaded (checked without importing torch)."""
    if importlib.util.find_spec("torch") is None:
        return False
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def resolve_backend(name: str, model_dir: str | Path) -> str:
    """The concrete backend `name` stands for on this machine, for this model folder."""
    if name not in BACKENDS:
        raise BackendError(f"model.backend = {name!r} is not one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    return "onnx"  # measured best on CPU; torch-cuda only when asked for (it is not measured yet)


def load_backend(model_dir: str | Path, backend: str = "auto", *, threads: int = 1,
                 quantized: bool = False, seed: int | None = None) -> Backend:
    """Build the backend for a model folder (model.onnx / model.int8.onnx / checkpoint.pt)."""
    md = ModelDir(Path(model_dir))
    name = resolve_backend(backend, md.path)
    if name == "onnx":
        from agent.model.runtime.onnx_backend import OnnxBackend

        return OnnxBackend(md.onnx_file(quantized), threads=threads)
    from agent.model.runtime.torch_backend import TorchBackend

    device = "cuda" if name == "torch-cuda" else "cpu"
    return TorchBackend(md.checkpoint, device=device, threads=threads, seed=seed)


__all__ = ["Backend", "BackendError", "BACKENDS", "load_backend", "resolve_backend", "cuda_likely"]
