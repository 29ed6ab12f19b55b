"""The LSTM (or GRU) language model; training and inference share it. torch is imported only here.

The recurrent core is a stacked LSTM, or a stacked GRU with `ModelArgs.cell = "gru"`
(token models only; a checkpoint without `cell` is an LSTM). A state is a tuple of
[layers, batch, hidden] tensors: (h, c) for the LSTM, (h,) for the GRU.

Two kinds share the recurrent core (`ModelArgs.kind`):

- "token": embedding -> stacked LSTM -> dropout -> linear over the token vocabulary (softmax).
- "roll": 88-key many-hot frames (float) -> input dropout -> stacked LSTM -> dropout -> a head
  over the next frame's `vocab_size` keys: "sigmoid" (one independent logit per key) or "nade"
  (RNN-NADE: the keys in pitch order, each conditioned on the keys below it and on the LSTM
  state, so a frame's joint probability is exact).

`forward(x, state)` runs a (batch, time) block for teacher-forced training
with the state carried between chunks; `step(x, h, c)` runs one step for
inference (c is None for the GRU) and is what the LSTM's ONNX export traces
(the GRU's is `agent/training/export.py` GRUStep over the same weights). `score_pieces` is the one
teacher-forced token scorer that training, the model card and
scripts/evaluate.py share; `score_rolls` is its piano-roll counterpart.
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
    kind: str = "token"  # "token" | "roll" (vocab_size is then the number of keys, 88)
    head: str = "softmax"  # token: "softmax"; roll: "sigmoid" | "nade"
    input_dropout: float = 0.0  # roll: dropout on the input frame
    nade_hidden: int = 0  # roll + nade: NADE hidden units
    weight_drop: float = 0.0  # training only: DropConnect on the recurrent weights (Merity et al. 2018)
    cell: str = "lstm"  # "lstm" | "gru" (token models only)


KINDS = {"token": ("softmax",), "roll": ("sigmoid", "nade")}
CELLS = ("lstm", "gru")


class NadeHead(nn.Module):
    """RNN-NADE output (Boulanger-Lewandowski et al. 2012): p(v | s) = prod_k p(v_k | v_<k, s).

    The NADE's visible and hidden biases are linear in the LSTM output s; its
    weights are shared. With the target frame v given (teacher forcing) all 88
    conditionals come out of one pass: hidden pre-activations are an exclusive
    cumulative sum over keys, so `forward(s, v)` returns logit p(v_k = 1 | v_<k, s)
    for every k, and the sum of their binary cross-entropies is the exact NLL.
    """

    def __init__(self, cond: int, keys: int, hidden: int) -> None:
        super().__init__()
        self.to_bv = nn.Linear(cond, keys)
        self.to_bh = nn.Linear(cond, hidden)
        self.w = nn.Parameter(torch.randn(keys, hidden) * 0.05)  # key k -> hidden, for keys above k
        self.v = nn.Parameter(torch.randn(keys, hidden) * 0.05)  # hidden at key k -> logit of key k
        # below[k, j] = 1 for j < k: one matmul gives every key's sum over the keys below it (a cumsum
        # over the key axis is several times slower on CPU, forward and backward)
        self.register_buffer("below", torch.tril(torch.ones(keys, keys), -1), persistent=False)

    def forward(self, s: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """s [..., cond], frames [..., keys] 0/1 -> logits [..., keys] of each key given the keys below it."""
        seen = (frames.unsqueeze(-2) * self.below) @ self.w  # [..., keys, hidden]: key k sees keys 0..k-1
        h = torch.sigmoid(self.to_bh(s).unsqueeze(-2) + seen)
        return self.to_bv(s) + (h * self.v).sum(-1)


State = tuple[torch.Tensor, ...]  # (h, c) for the LSTM, (h,) for the GRU; each [layers, batch, hidden]


class LSTMModel(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        if args.kind not in KINDS:
            raise ValueError(f"model kind {args.kind!r}: must be one of {', '.join(KINDS)}")
        if args.kind == "roll" and args.head == "softmax":  # the token default: a roll model's is sigmoid
            args = ModelArgs(**{**asdict(args), "head": "sigmoid"})
        if args.head not in KINDS[args.kind]:
            raise ValueError(f"{args.kind} model head {args.head!r}: must be one of {', '.join(KINDS[args.kind])}")
        if args.cell not in CELLS or (args.cell == "gru" and args.kind != "token"):
            raise ValueError(f"model cell {args.cell!r}: must be one of {', '.join(CELLS)} (gru: token models only)")
        self.args = args
        self.gru = args.cell == "gru"
        self.roll = args.kind == "roll"
        if self.roll:  # the frame itself is the input: no embedding
            self.in_drop = nn.Dropout(args.input_dropout)
            in_size = args.vocab_size
        else:
            self.embed = nn.Embedding(args.vocab_size, args.embedding)
            in_size = args.embedding
        # named `lstm` whatever the cell, so the checkpoints' weight names stay as they were
        self.lstm = (nn.GRU if self.gru else nn.LSTM)(
            in_size, args.hidden, num_layers=args.layers, batch_first=True,
            dropout=args.dropout if args.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(args.dropout)
        if args.head == "nade":
            if args.nade_hidden <= 0:
                raise ValueError("a nade head needs nade_hidden > 0")
            self.head = NadeHead(args.hidden, args.vocab_size, args.nade_hidden)
        else:
            self.head = nn.Linear(args.hidden, args.vocab_size)

    def initial_state(self, batch: int = 1, device=None) -> State:
        """Zeros: (h, c) for the LSTM, (h,) for the GRU."""
        shape = (self.args.layers, batch, self.args.hidden)
        return tuple(torch.zeros(shape, device=device) for _ in range(1 if self.gru else 2))

    def _core(self, x: torch.Tensor, state: State | None, weights: dict | None = None):
        """The recurrent layers over x [batch, time, in]: (y, state as a tuple)."""
        arg = (state[0] if state is not None else None) if self.gru else state
        if weights:
            y, out = torch.func.functional_call(self.lstm, weights, (x, arg))
        else:
            y, out = self.lstm(x, arg)
        return y, ((out,) if self.gru else out)

    def forward(self, tokens: torch.Tensor, state: State | None = None,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """tokens [batch, time] int64 -> logits [batch, time, vocab], new state.

        A roll model takes frames [batch, time, keys] float (0/1) and returns one
        logit per key of the next frame; the nade head needs those next frames as
        `targets` (its logit for key k is conditioned on the target's keys below k).
        """
        x = self.in_drop(tokens) if self.roll else self.embed(tokens)
        if self.training and self.args.weight_drop > 0:
            # one DropConnect mask on each layer's hidden-to-hidden weights for the whole block
            dropped = {f"weight_hh_l{i}": nn.functional.dropout(getattr(self.lstm, f"weight_hh_l{i}"),
                                                                self.args.weight_drop)
                       for i in range(self.args.layers)}
            y, state = self._core(x, state, dropped)
        else:
            y, state = self._core(x, state)
        return self._head(self.drop(y), targets), state

    def _head(self, y: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        if self.args.head == "nade":
            if targets is None:
                raise ValueError("a nade head needs the target frames to give its conditionals")
            return self.head(y, targets)
        return self.head(y)

    def step(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None,
             frame: torch.Tensor | None = None):
        """token [batch] int64, h/c [layers, batch, hidden] -> logits [batch, vocab], h, c (None: GRU).

        Roll: token is a frame [batch, keys] float; nade: `frame` [batch, keys] is the
        (partial) next frame its conditionals are taken on.
        """
        x = token if self.roll else self.embed(token)
        y, state = self._core(x.unsqueeze(1), (h,) if self.gru else (h, c))
        return self._head(y[:, 0], frame), state[0], (None if self.gru else state[1])

    def step_state(self, token: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One step with the state as a tuple (either cell): (logits [batch, vocab], new state)."""
        logits, h, c = self.step(token, *state)
        return logits, ((h,) if self.gru else (h, c))

    @torch.no_grad()
    def init_key_bias(self, key_rate: np.ndarray) -> None:
        """Roll: start each key's output bias at the log-odds of how often it sounds, not at p = 0.5."""
        p = torch.as_tensor(np.clip(key_rate, 1e-4, 1 - 1e-4), dtype=torch.float32)
        bias = self.head.to_bv.bias if self.args.head == "nade" else self.head.bias
        bias.copy_(torch.log(p / (1 - p)))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def model_args(self) -> dict:
        return asdict(self.args)


GATES = {"lstm": 4, "gru": 3}  # weight blocks per layer: an LSTM's 4 gates, a GRU's 3


def count_params(args: ModelArgs) -> int:
    """The parameter count of a token model of these arguments (the same as LSTMModel(args).num_params())."""
    g, h, v, e = GATES[args.cell], args.hidden, args.vocab_size, args.embedding
    core = sum(g * h * ((e if i == 0 else h) + h) + 2 * g * h for i in range(args.layers))
    return v * e + core + h * v + v


def matched_hidden(args: ModelArgs, cell: str) -> int:
    """The hidden size for `cell` whose token model has the parameter count nearest to `args`' model
    (a GRU has 3 weight blocks per layer to the LSTM's 4, so it gets a wider state at equal size)."""
    if cell not in GATES:
        raise ValueError(f"model cell {cell!r}: must be one of {', '.join(GATES)}")
    target = count_params(args)
    size = lambda h: count_params(ModelArgs(**{**asdict(args), "cell": cell, "hidden": h}))  # noqa: E731
    return min(range(1, 4 * args.hidden + 1), key=lambda h: (abs(size(h) - target), h))


def roll_nll(logits: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """NLL in nats of each frame: the sum over keys of binary cross-entropy (logits, frames [..., keys])."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), frames.float(),
                                                                reduction="none").sum(-1)


@torch.no_grad()
def score_rolls(model: LSTMModel, pieces: list, *, device="cpu", batch: int = 32,
                chunk: int = 256) -> list[np.ndarray]:
    """Teacher-forced NLL in nats of frames 2..T of every piece (inputs 1..T-1), each from a zero state.

    pieces: (frames, keys) 0/1 arrays. Returns one float64 array of len(piece) - 1
    per piece, in input order; batching and padding as in `score_pieces`.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i]))
    out_all: list = [None] * len(pieces)
    keys = model.args.vocab_size
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        width = max(len(pieces[idx[0]]) - 1, 0)
        x = torch.zeros((len(idx), width + 1, keys))
        for r, i in enumerate(idx):
            x[r, :len(pieces[i])] = torch.as_tensor(np.asarray(pieces[i], dtype=np.float32))
        x = x.to(device)
        out = torch.zeros((len(idx), width), device=device)
        state = None
        for a in range(0, width, chunk):
            inp, tgt = x[:, a:a + chunk], x[:, a + 1:a + chunk + 1]
            logits, state = model(inp[:, :tgt.shape[1]], state, tgt)
            out[:, a:a + chunk] = roll_nll(logits, tgt)
        out = out.cpu().numpy().astype(np.float64)
        for r, i in enumerate(idx):
            out_all[i] = out[r, :len(pieces[i]) - 1]
    model.train(was_training)
    return out_all


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
