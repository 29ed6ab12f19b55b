"""A trained model's folder: models/<name>/{model.onnx, checkpoint.pt, vocab.json, card.json, phrase_end.json}."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.config import ROOT
from agent.errors import AntiphonError
from agent.music.tokens import Vocab


class ModelDirError(AntiphonError):
    """A model folder is missing or lacks a file the caller needs."""


@dataclass(frozen=True)
class ModelDir:
    path: Path

    @classmethod
    def resolve(cls, path: str | Path) -> "ModelDir":
        p = Path(path)
        if not p.is_absolute() and not p.exists():
            p = ROOT / p
        if not p.is_dir():
            raise ModelDirError(f"model folder {path} does not exist")
        return cls(p)

    @property
    def onnx(self) -> Path:
        return self.path / "model.onnx"

    @property
    def onnx_int8(self) -> Path:
        return self.path / "model.int8.onnx"

    def onnx_file(self, quantized: bool) -> Path:
        """The ONNX file the live agent runs: model.int8.onnx when quantized and the folder has one,
        else model.onnx (a model trained here and exported without --int8 still plays)."""
        return self.onnx_int8 if quantized and self.onnx_int8.exists() else self.onnx

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def vocab_path(self) -> Path:
        return self.path / "vocab.json"

    @property
    def card_path(self) -> Path:
        return self.path / "card.json"

    @property
    def phrase_end(self) -> Path:
        """The phrase-end classifier's weights (agent/music/phrase_end.py); optional: without it the
        jam's turn-taking goes by the model turn's rule (agent/live/jam/turn.py)."""
        return self.path / "phrase_end.json"

    def require(self, f: Path) -> Path:
        if not f.exists():
            raise ModelDirError(f"model folder {self.path} has no {f.name}")
        return f

    def vocab(self) -> Vocab:
        return Vocab.load(self.require(self.vocab_path))

    def card(self) -> dict:
        path = self.require(self.card_path)
        try:
            card = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelDirError(f"{path}: not a readable model card ({exc})") from None
        if not isinstance(card, dict):
            raise ModelDirError(f"{path}: a model card is a JSON object, not {type(card).__name__}")
        return card
