#!/usr/bin/env python
"""Training throughput: our chunked stateful scheme vs the classic sliding window, in one run.

    python scripts/bench_train.py [--json OUT] [--quick] [--model models/default] [--data data/prepared]

Both schemes train the same model (size, batch and chunk from --model's
checkpoint if it has one, else scripts/train.py's defaults) on the same data
(the train split), with the same batch size, optimizer (AdamW), loss and gradient clipping, one
full training step (forward, backward, clip, step) at a time:

  ours    what scripts/train.py does (scripts/train_tokens.py): B whole pieces,
          one per row, from a zero state at their START, cut into chunks of T
          tokens, the LSTM state carried from chunk to chunk of the same
          pieces (detached), every real position a target (the padding after
          a short piece's END is masked): up to B*T targets per step;
  window  B windows of W = 100 consecutive tokens from random places, each
          starting from a zero state, only the token after the window a
          target: B targets per step (the ancestors' scheme, ../shared/ANCESTRY.md).

Targets per second is what matters (every target is a gradient signal); the
input tokens per second show that the raw LSTM speed is about the same in both,
so the ratio comes from the scheme, not from the kernels. The two are measured
in alternating rounds, so a background load (another training job) slows
both alike; the load average is recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from agent.training.data import DEFAULT_DATA_DIR, data_for_quick, load_split, vocab_of
from agent.errors import AntiphonError
from agent.model.folder import ModelDir

TRAIN_DEFAULTS = {"embedding": 128, "hidden": 256, "layers": 2, "dropout": 0.2}  # scripts/train.py's


def model_args_for(model_dir: str | None, vocab_size: int, overrides: dict) -> tuple[dict, str, dict]:
    """The model size to benchmark, where it came from, and the checkpoint's training config.

    The checkpoint's (if `model_dir` has one) wins over scripts/train.py's
    defaults; explicit overrides win over both.
    """
    args, source, config = dict(TRAIN_DEFAULTS), "scripts/train.py defaults", {}
    if model_dir:
        try:
            ckpt = ModelDir.resolve(model_dir).checkpoint
        except AntiphonError:
            ckpt = None
        if ckpt is not None and ckpt.exists():
            import torch

            stored = torch.load(ckpt, map_location="cpu", weights_only=True)
            args.update({k: stored["model_args"][k] for k in TRAIN_DEFAULTS if k in stored["model_args"]})
            config = dict(stored.get("config") or {})
            source = str(ckpt)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        args.update(given)
        source += " with " + ", ".join(f"{k}={v}" for k, v in given.items())
    args["vocab_size"] = vocab_size
    return args, source, config


class Trainer:
    """One model + optimizer and the two kinds of training step over the train split's pieces."""

    def __init__(self, model_args: dict, pieces: list, batch: int, chunk: int, window: int, seed: int):
        import torch

        from agent.model.net import LSTMModel, ModelArgs

        self.torch = torch
        torch.manual_seed(seed)
        self.model = LSTMModel(ModelArgs(**model_args)).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.99))
        self.batch, self.chunk, self.window = batch, chunk, window
        flat = torch.as_tensor(np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64))
        if len(flat) < batch * (chunk + 1) or len(flat) < window + 2:
            raise AntiphonError(f"train split has {len(flat)} tokens: too few for {batch} x {chunk}")
        self.pieces, self.flat = pieces, flat
        self.chunks: list = []
        self.state = None
        self.rng = np.random.default_rng(seed)

    def _update(self, logits, y, mask=None) -> None:
        F = self.torch.nn.functional
        if mask is None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        else:
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            loss = (nll * mask.reshape(-1)).sum() / mask.sum().clamp(min=1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()

    def ours_step(self) -> tuple[int, int]:
        """One step of train.py's scheme (a chunk of whole pieces); returns (targets, input tokens)."""
        from agent.training.batching import piece_chunks, state_for

        if not self.chunks:  # a new epoch: whole pieces, one per row, batches of similar length
            self.chunks = piece_chunks(self.pieces, self.batch, self.chunk, self.rng)[::-1]
        x, y, mask, fresh = self.chunks.pop()
        logits, state = self.model(x, state_for(x, self.state, fresh))
        self.state = tuple(s.detach() for s in state)
        self._update(logits, y, mask)
        return int(mask.sum()), x.numel()

    def window_step(self) -> tuple[int, int]:
        """One sliding-window step: B windows, one target each; returns (targets, input tokens)."""
        starts = self.rng.integers(0, len(self.flat) - self.window - 1, self.batch)
        idx = self.torch.as_tensor(starts)[:, None] + self.torch.arange(self.window + 1)
        seq = self.flat[idx]
        m = self.model
        y, _ = m.lstm(m.embed(seq[:, :-1]))  # zero state: each window is its own sample
        # the output layer only where there is a target (Keras' return_sequences=False): the fair version
        self._update(m.head(m.drop(y[:, -1:])), seq[:, -1:])
        return self.batch, self.batch * self.window


def measure(trainer: Trainer, rounds: int, steps: int, warmup: int, log=print) -> dict:
    """Alternate `rounds` of `steps` steps of each scheme; totals and per-round rates."""
    for _ in range(warmup):
        trainer.ours_step()
        trainer.window_step()
    tot = {s: {"targets": 0, "tokens": 0, "seconds": 0.0, "steps": 0, "round_rates": []} for s in ("ours", "window")}
    for r in range(rounds):
        for name, fn in (("ours", trainer.ours_step), ("window", trainer.window_step)):
            t0 = time.perf_counter()
            got = [fn() for _ in range(steps)]
            secs = time.perf_counter() - t0
            targets = sum(g[0] for g in got)
            d = tot[name]
            d["targets"] += targets
            d["tokens"] += sum(g[1] for g in got)
            d["seconds"] += secs
            d["steps"] += steps
            d["round_rates"].append(round(targets / secs, 1))
        log(f"round {r + 1}/{rounds}: ours {tot['ours']['round_rates'][-1]:,.0f}  "
            f"window {tot['window']['round_rates'][-1]:,.0f} targets/s")
    return tot


def run(args, log=print) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    vocab = vocab_of(args.data)
    pieces = load_split(args.data, "train")
    if args.max_tokens:
        keep, n = [], 0
        for p in pieces:  # a prefix of the split is enough to time steps
            keep.append(p)
            n += len(p)
            if n >= args.max_tokens:
                break
        pieces = keep
    margs, source, trained = model_args_for(args.model, vocab.size, {"layers": args.layers, "hidden": args.hidden,
                                                                     "embedding": args.embedding})
    # batch and chunk as the model was trained with, unless given
    args.batch = args.batch or int(trained.get("batch") or 32)
    args.chunk = args.chunk or int(trained.get("chunk") or 128)
    trainer = Trainer(margs, pieces, args.batch, args.chunk, args.window, args.seed)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    tot = measure(trainer, args.rounds, args.steps, args.warmup, log)
    ours = tot["ours"]["targets"] / tot["ours"]["seconds"]
    win = tot["window"]["targets"] / tot["window"]["seconds"]
    return {
        "ours_targets_per_s": round(ours, 1),
        "window_targets_per_s": round(win, 1),
        "ratio": round(ours / win, 2),
        # each round times both schemes back to back, so its ratio sees one machine state
        "ratio_median_of_rounds": round(float(np.median(np.divide(tot["ours"]["round_rates"],
                                                                  tot["window"]["round_rates"]))), 2),
        "ours_tokens_per_s": round(tot["ours"]["tokens"] / tot["ours"]["seconds"], 1),
        "window_tokens_per_s": round(tot["window"]["tokens"] / tot["window"]["seconds"], 1),
        "ours": tot["ours"], "window": tot["window"],
        "batch": args.batch, "chunk": args.chunk, "window_tokens": args.window,
        "model_args": margs, "model_from": source, "params": trainer.model.num_params(),
        "data": str(args.data), "data_tokens": int(len(trainer.flat)),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "quick": bool(args.quick), "seconds": round(time.perf_counter() - t0, 1),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(r: dict) -> str:
    rows = [("scheme", "targets/s", "input tok/s", "steps", "targets/step"),
            ("ours", f"{r['ours_targets_per_s']:,.0f}", f"{r['ours_tokens_per_s']:,.0f}", str(r["ours"]["steps"]),
             f"{r['batch']} x {r['chunk']}"),
            ("window", f"{r['window_targets_per_s']:,.0f}", f"{r['window_tokens_per_s']:,.0f}",
             str(r["window"]["steps"]), f"{r['batch']} x 1"),
            ]
    lines = ["  ".join(f"{c:>12}" for c in row) for row in rows]
    lines.append(f"ratio (ours / window, targets per second): {r['ratio']:.1f}x "
                 f"(median of rounds {r['ratio_median_of_rounds']:.1f}x)   "
                 f"[{r['params']:,} params, {r['torch_threads']} threads, load {r['loadavg_before'][0]:.1f}]")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="OUT", help="write the JSON report here")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds: under a minute")
    ap.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="prepared data folder (default %(default)s)")
    ap.add_argument("--model", default="models/default", help="take the model size from this folder's checkpoint")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--embedding", type=int)
    ap.add_argument("--batch", type=int, help="streams / windows per step (default: the checkpoint's, else 32)")
    ap.add_argument("--chunk", type=int, help="our BPTT chunk, tokens (default: the checkpoint's, else 128)")
    ap.add_argument("--window", type=int, default=100, help="classic window length, tokens (default %(default)s)")
    ap.add_argument("--rounds", type=int, help="alternating rounds (default 6, quick 3)")
    ap.add_argument("--steps", type=int, help="steps of each scheme per round (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps of each scheme first")
    ap.add_argument("--max-tokens", type=int, default=2_000_000, help="use at most this prefix of the train split")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 6)
    args.steps = args.steps or (2 if args.quick else 5)
    try:
        if args.quick:  # a fresh clone has no data/prepared: a small set from the chorales will do
            args.data = str(data_for_quick(args.data, log=lambda m: print(m, file=sys.stderr)))
        r = run(args, log=lambda m: print(m, file=sys.stderr))
    except AntiphonError as exc:
        print(f"bench_train: error: {exc}", file=sys.stderr)
        return 2
    print(table(r))
    text = json.dumps(r, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0
