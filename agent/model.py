"""The LSTM language model; training and inference share it. torch is imported only here.

embedding -> stacked LSTM -> dropout -> linear over the token vocabulary.
`forward(tokens, state)` runs a (batch, time) block for teacher-forced
training with the state carried between chunks; `step(token, state)` runs
one token for inference and is what the ONNX export traces. `score_pieces`
is the one teacher-forced scorer that training, the model card and
scripts/evaluate.py share.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
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


@torch.no_grad()
def score_pieces(model: LSTMModel, pieces: list, *, device="cpu", batch: int = 32, chunk: int = 256,
                 argmax_range: tuple[int, int] | None = None) -> tuple[list[np.ndarray], int]:
    """Teacher-forced log P(target) in nats for every target of every piece, each from a zero state.

    A piece's targets are piece[1:] (its START is context only). Pieces are
    batched longest first and padded (padding is never a target); long
    batches run in chunks with the state carried, so memory stays bounded.
    Returns (one float64 array of len(piece) - 1 per piece, in input order;
    the number of targets in `argmax_range` = [lo, hi) ids whose argmax over
    the logits of that range is right, or 0 without a range).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i]))
    logps: list = [None] * len(pieces)
    correct = 0
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        width = max(len(pieces[idx[0]]) - 1, 0)
        x = torch.zeros((len(idx), width), dtype=torch.long)
        y = torch.full((len(idx), width), -1, dtype=torch.long)
        for r, i in enumerate(idx):
            p = torch.as_tensor(np.asarray(pieces[i], dtype=np.int64))
            x[r, :len(p) - 1], y[r, :len(p) - 1] = p[:-1], p[1:]
        x, y = x.to(device), y.to(device)
        out = torch.zeros((len(idx), width), device=device)
        state = None
        for a in range(0, width, chunk):
            logits, state = model(x[:, a:a + chunk], state)
            yy = y[:, a:a + chunk]
            lp = torch.log_softmax(logits.float(), dim=-1)
            out[:, a:a + chunk] = lp.gather(-1, yy.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            if argmax_range:
                lo, hi = argmax_range
                guess = logits[..., lo:hi].argmax(-1) + lo
                correct += int(((guess == yy) & (yy >= lo) & (yy < hi)).sum())
        out = out.cpu().numpy().astype(np.float64)
        for r, i in enumerate(idx):
            logps[i] = out[r, :len(pieces[i]) - 1]
    model.train(was_training)
    return logps, correct
