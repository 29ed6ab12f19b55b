"""A small randomly initialised model folder for tests: checkpoint.pt, model.onnx, vocab.json.

Built the way scripts/train.py saves checkpoints (model_args, vocab, config,
model) and exported with agent/training/export.py (scripts/export_onnx.py) itself, so the tests exercise
the real export. Import torch only inside these functions.
"""
from __future__ import annotations

from pathlib import Path

from agent.music.tokens import Vocab


def export_module():
    """agent.training.export: what scripts/export_onnx.py runs."""
    from agent.training import export

    return export


def make_checkpoint(path: Path, *, hidden: int = 32, layers: int = 2, embedding: int = 16, seed: int = 0,
                    cell: str = "lstm"):
    """Write a random-init checkpoint with the configured vocabulary; returns (model, vocab)."""
    import torch

    from agent.model.net import LSTMModel, ModelArgs

    vocab = Vocab()  # the default layout (config.toml's [tokens] mirrors it); no config file read here
    torch.manual_seed(seed)
    model = LSTMModel(ModelArgs(vocab.size, embedding=embedding, hidden=hidden, layers=layers, cell=cell)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_args": model.model_args(), "vocab": vocab.to_dict(), "config": {},
                "model": model.state_dict()}, path)
    return model, vocab


def make_model_dir(folder: Path, *, int8: bool = False, **kw) -> Path:
    """A complete model folder (checkpoint.pt, model.onnx, vocab.json[, model.int8.onnx])."""
    model, vocab = make_checkpoint(folder / "checkpoint.pt", **kw)
    export_module().export_model(model, vocab, folder, int8=int8)
    return folder
