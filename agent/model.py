"""The LSTM language model; training and inference share it. torch is imported only here.

embedding -> stacked LSTM -> dropout -> linear over the token vocabulary.
`forward(tokens, state)` runs a (batch, time) block for teacher-forced
training with the state carried between chunks; `step(token, state)` runs
one token for inference and is what the ONNX export traces.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelArgs:
    vocab_size: int
    embedding: int = 128
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2


State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, batch, hidden]


class LSTMModel(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.embedding)
        self.lstm = nn.LSTM(
            args.embedding, args.hidden, num_layers=args.layers, batch_first=True,
            dropout=args.dropout if args.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(args.dropout)
        self.head = nn.Linear(args.hidden, args.vocab_size)

    def initial_state(self, batch: int = 1, device=None) -> State:
        shape = (self.args.layers, batch, self.args.hidden)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens [batch, time] int64 -> logits [batch, time, vocab], new state."""
        x = self.embed(tokens)
        y, state = self.lstm(x, state)
        return self.head(self.drop(y)), state

    def step(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """token [batch] int64, h/c [layers, batch, hidden] -> logits [batch, vocab], h, c."""
        y, (h, c) = self.lstm(self.embed(token).unsqueeze(1), (h, c))
        return self.head(y[:, 0]), h, c

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def model_args(self) -> dict:
        return asdict(self.args)


def load_checkpoint(path, map_location="cpu"):
    """Rebuild a model from a checkpoint alone: (model, checkpoint dict).

    The checkpoint holds `model_args`, `vocab` (a dict), `config` and `model`
    (the state dict); it loads with weights_only=True, so no pickle runs.
    """
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = LSTMModel(ModelArgs(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
