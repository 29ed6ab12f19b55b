"""Train the LSTM (or --cell gru) token model on prepared data: stateful truncated BPTT, every position a target.

    python scripts/train.py --data data/prepared --out models/default --max-minutes 60
    torchrun --nproc_per_node=2 scripts/train.py --data data/prepared --out runs/ddp
    python scripts/train.py --kind roll --data ../shared/data/poly_music/JSB_Chorales.mat --out models/roll-jsb

Trained as it is used (agent/training/batching.py): each epoch every training
piece is humanised with probability --humanise-p (tempo, onsets and releases
a tick or two off the grid, velocities: agent/training/humanise.py; --no-humanise
turns it off), transposed by a random number of semitones (within
--transpose and the vocabulary's range), and laid one piece per row in
batches of `--batch` pieces of similar length. Each batch is cut into chunks
of `--chunk` tokens; the LSTM state is carried from one chunk to the next of
the same batch (detached, so backprop stops at the chunk edge) and starts
from zero at every piece's START, the way the live predictor starts a
session: no state is carried from one piece into the next. Every token after
a piece's START is a target.

Under torchrun each rank takes its own share of the pieces (DDP; gloo on CPU,
nccl on GPU). Writes to --out: checkpoint.pt (the best by validation loss,
weights only), vocab.json, metrics.json, loss.png; and to --run-dir
last.pt (with the optimizer) for --resume.

With --kind roll the model reads 88-key piano-roll frames (--data is a .mat
file of the polyphonic benchmark, see agent/model/roll.py) and its head is
--head sigmoid or nade. Pieces are not laid end to end: each batch holds
--batch whole pieces of similar length (each transposed at random), padded
and masked, cut into chunks with the state carried from chunk to chunk of
the same pieces and reset at the next batch. Every frame but the first is a
target; the loss is the frame NLL in nats (the benchmark's measure).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.config import ROOT
from agent.training import data as dataset
from agent.model.net import LSTMModel, ModelArgs, roll_nll, score_rolls
from agent.training.cells import model_args_of
from agent.training.report import plot_losses, write_card
from agent.training.rollcard import write_roll_card
from agent.training.scoring import piece_nll
from agent.training.batching import augment, chunk_nll, piece_chunks, roll_chunks
from agent.training.ranks import Ranks


def parser() -> argparse.ArgumentParser:
    """scripts/train.py's options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / dataset.DEFAULT_DATA_DIR),
                    help="prepared data folder (--kind roll: a piano-roll .mat file)")
    ap.add_argument("--kind", choices=("token", "roll"), default="token", help="token model or piano-roll model")
    ap.add_argument("--head", choices=("sigmoid", "nade"), default="sigmoid", help="roll: output head")
    ap.add_argument("--input-dropout", type=float, default=0.0, help="roll: dropout on the input frames")
    ap.add_argument("--weight-drop", type=float, default=0.0,
                    help="DropConnect on the LSTM's recurrent weights while training (0 = none)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights with this decay per step, and validate,"
                         " keep and export the average (0 = off)")
    ap.add_argument("--nade-hidden", type=int, default=100, help="roll + nade: NADE hidden units")
    ap.add_argument("--out", default=str(ROOT / "models/default"), help="model folder to write")
    ap.add_argument("--run-dir", default=None, help="where last.pt (resume state) goes; default runs/<out name>")
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="token: the recurrent cell")
    ap.add_argument("--match-lstm", action=argparse.BooleanOptionalAction, default=True,
                    help="gru: --hidden names the LSTM whose parameter count it matches (agent/training/cells.py)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--embedding", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--chunk", type=int, default=128, help="tokens per BPTT chunk")
    ap.add_argument("--batch", type=int, default=32, help="parallel streams per process")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--min-lr", type=float, default=1e-4, help="cosine schedule floor")
    ap.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--max-minutes", type=float, default=0.0, help="training time budget (0 = none)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in all (0 = none)")
    ap.add_argument("--patience", type=int, default=5, help="epochs without a better valid loss before stopping")
    ap.add_argument("--transpose", type=int, default=6, help="random transposition range, +-semitones")
    ap.add_argument("--humanise", action=argparse.BooleanOptionalAction, default=True,
                    help="token: humanised timing, velocity and tempo augmentation (default on)")
    ap.add_argument("--humanise-p", type=float, default=0.5, help="token: share of pieces humanised each epoch")
    ap.add_argument("--transpose-p", type=float, default=1.0,
                    help="roll: share of pieces transposed each epoch (the rest keep their key)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = cores / processes)")
    ap.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    ap.add_argument("--no-test", action="store_true", help="skip the test-split NLL at the end")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--log-every", type=int, default=0, help="with --quiet, log a line every N steps (0 = never)")
    return ap


# -----------------------------------------------------------------------------
# data: pieces per rank, streams per epoch
@dataclass
class Pieces:
    """The train pieces, this rank's share of the valid ones, and each train piece's allowed shifts."""

    vocab: object  # a Vocab, None for roll models
    train: list
    valid: list
    valid_mine: list
    shift_choices: list


def load_pieces(args, ranks: Ranks) -> Pieces:
    if args.kind == "roll":
        from agent.model import roll

        try:
            splits = roll.load_mat(args.data)
        except roll.RollError as exc:
            sys.exit(f"train.py: {exc}")
        vocab, train, valid = None, splits["train"], splits["valid"]
        shifts = [roll.allowed_shifts(p, args.transpose) for p in train]
    else:
        vocab = dataset.vocab_of(args.data)
        dataset.load_manifest(args.data)
        train, valid = dataset.load_split(args.data, "train"), dataset.load_split(args.data, "valid")
        shifts = [dataset.allowed_shifts(p, vocab, args.transpose) for p in train]
    if not train or not valid:
        sys.exit(f"{args.data}: the train and valid splits must both have pieces")
    return Pieces(vocab, train, valid, valid[ranks.rank::ranks.world], shifts)


# -----------------------------------------------------------------------------
# model, optimizer, resume; the loop
@dataclass
class Epoch:
    """What one epoch of training did on this rank."""

    loss_sum: float  # nats over its targets
    targets: float
    n_steps: int  # the epoch's steps in all
    steps: int  # the steps taken (fewer when stopped)
    stopped: bool  # out of time or steps
    seconds: float


class Run:
    """One training run: the model, its optimizer and (--ema) averaged copy, and where it stands."""

    def __init__(self, args, ranks: Ranks, pieces: Pieces, out_dir: Path, run_dir: Path) -> None:
        self.args, self.ranks, self.pieces, self.out_dir = args, ranks, pieces, out_dir
        self.roll = args.kind == "roll"
        self.state_path = run_dir / "last.pt"
        model_args, resumed = model_args_of(args, pieces), None
        if args.resume:
            if not self.state_path.exists():
                sys.exit(f"--resume: no {self.state_path}")
            resumed = torch.load(self.state_path, map_location="cpu", weights_only=True)
            model_args = ModelArgs(**resumed["model_args"])  # a resumed run keeps its own size
        self.raw_model = LSTMModel(model_args).to(ranks.device)
        self.optimizer = torch.optim.AdamW(self.raw_model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                           betas=(0.9, 0.99))
        self.history: list[dict] = []
        self.start_epoch, self.step, self.best_valid, self.best_epoch, self.bad_epochs = 1, 0, math.inf, 0, 0
        self.train_s, self.planned_steps = 0.0, 0
        if resumed:
            self._resume(resumed)
        elif self.roll:  # a fresh roll model starts from the keys' rates (the first epochs are not spent finding them)
            self.raw_model.init_key_bias(np.concatenate(pieces.train).mean(axis=0))
        # the averaged weights (--ema) are what is validated, kept and exported; the live ones are what trains
        self.ema_model = copy.deepcopy(self.raw_model).eval().requires_grad_(False) if args.ema > 0 else None
        if self.ema_model is not None and resumed and resumed.get("ema"):
            self.ema_model.load_state_dict(resumed["ema"])
        self.eval_model = self.ema_model or self.raw_model
        self.model = self.raw_model
        if ranks.ddp:
            device = ranks.device
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.raw_model, device_ids=[device.index] if device.type == "cuda" else None)
        self.config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        self.config["world_size"] = ranks.world
        ranks.log(f"{self.raw_model.num_params():,} params {model_args}; {len(pieces.train)} train / "
                  f"{len(pieces.valid)} valid pieces; {ranks.world} process(es)")

    def _resume(self, resumed: dict) -> None:
        self.raw_model.load_state_dict(resumed["model"])
        self.optimizer.load_state_dict(resumed["optimizer"])
        self.history = list(resumed["history"])
        self.start_epoch, self.step = resumed["epoch"] + 1, resumed["step"]
        self.best_valid, self.best_epoch = resumed["best_valid"], resumed["best_epoch"]
        self.bad_epochs, self.train_s, self.planned_steps = (resumed["bad_epochs"], resumed["train_s"],
                                                             resumed["planned_steps"])
        self.ranks.log(f"resumed from {self.state_path} at epoch {resumed['epoch']}, step {self.step}, "
                       f"best valid {self.best_valid:.4f}")

    def lr_at(self, s: int) -> float:
        """Linear warmup, then cosine from --lr down to --min-lr over the planned steps."""
        a = self.args
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        total = max(self.planned_steps, s + 1)
        frac = min(1.0, (s - a.warmup) / max(1, total - a.warmup))
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))

    def epoch_chunks(self, epoch: int) -> list[tuple]:
        """This rank's (x, y, mask, fresh) chunks: its share of the pieces, augmented, whole pieces per row."""
        a, p, r = self.args, self.pieces, self.ranks
        rng = np.random.default_rng(a.seed * 1000 + epoch)  # same order on every rank
        order = rng.permutation(len(p.train))[r.rank::r.world]
        rng = np.random.default_rng((a.seed * 1000 + epoch) * 64 + r.rank)
        if self.roll:
            return roll_chunks(p.train, order, p.shift_choices, a.batch, a.chunk, a.transpose_p, rng)
        pieces = augment([p.train[i] for i in order], [p.shift_choices[i] for i in order], p.vocab, rng,
                         a.humanise_p if a.humanise else 0.0)
        return piece_chunks(pieces, a.batch, a.chunk, rng)

    def train_step(self, chunk: tuple, state):
        """One optimizer step on one chunk: (loss, targets, the carried state)."""
        x, y, mask, fresh = (t.to(self.ranks.device) if torch.is_tensor(t) else t for t in chunk)
        if self.roll:
            if fresh:  # a new batch of pieces: each starts from a zero state, as in evaluation
                state = None
            logits, state = self.model(x, state, y)
            nll = roll_nll(logits, y)
        else:  # a fresh chunk starts new pieces: zero state, as the live predictor starts
            nll, state = chunk_nll(self.model, x, y, state, fresh)
        n_targets = mask.sum()
        loss = (nll * mask).sum() / n_targets.clamp(min=1.0)
        state = tuple(s.detach() for s in state)  # truncated BPTT: carry the value, not the graph
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.clip)
        self.optimizer.step()
        if self.ema_model is not None:  # the decay ramps up over the first steps, so early weights do not linger
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema_model.parameters()), list(self.raw_model.parameters()),
                                     1.0 - min(self.args.ema, (1 + self.step) / (10 + self.step)))
        self.step += 1
        return loss, n_targets, state

    def run_epoch(self, epoch: int, over) -> "Epoch":
        """Train one epoch, stopping early (on every rank) once over() says so."""
        a, ranks = self.args, self.ranks
        streams = self.epoch_chunks(epoch)
        n_steps = ranks.least(len(streams))
        if n_steps == 0:
            sys.exit(f"train split too small for --batch {a.batch} x --chunk {a.chunk} (per process)")
        if self.planned_steps == 0:  # first guess: every epoch this long; refined once speed is known
            self.planned_steps = min(n_steps * a.epochs, a.max_steps or math.inf)
        self.model.train()
        state, loss_sum, tok_count, t_epoch = None, 0.0, 0, time.perf_counter()
        bar = None
        if ranks.master and not a.quiet:
            from tqdm import tqdm
            bar = tqdm(total=n_steps, desc=f"epoch {epoch}", unit="step", file=sys.stderr, dynamic_ncols=True)
        i, stopped = 0, False
        for i in range(n_steps):
            for g in self.optimizer.param_groups:
                g["lr"] = self.lr_at(self.step)
            loss, n_targets, state = self.train_step(streams[i], state)
            loss_sum += loss.item() * float(n_targets)
            tok_count += float(n_targets)
            if bar is not None or (a.log_every and self.step % a.log_every == 0):
                rate = tok_count * ranks.world / (time.perf_counter() - t_epoch)
                lr = self.lr_at(self.step)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}", lr=f"{lr:.1e}", refresh=False)
                    bar.update(1)
                else:
                    ranks.log(f"step {self.step} (epoch {epoch}, {i + 1}/{n_steps}): loss {loss.item():.3f}  "
                              f"{rate:,.0f} tok/s  lr {lr:.1e}")
            if ranks.any(over()):
                stopped = True
                break
        if bar is not None:
            bar.close()
        return Epoch(loss_sum, tok_count, n_steps, i + 1, stopped, time.perf_counter() - t_epoch)

    def validate(self) -> float:
        """Mean NLL over the valid pieces (all ranks' shares), from the kept (--ema: averaged) weights."""
        if self.roll:
            v_nll = score_rolls(self.eval_model, self.pieces.valid_mine, device=self.ranks.device)
            v_sum, v_count = self.ranks.all_sum([float(sum(v.sum() for v in v_nll)), float(sum(len(v) for v in v_nll))])
        else:
            v_sum, v_count = self.ranks.all_sum(list(piece_nll(self.eval_model, self.pieces.valid_mine,
                                                                     self.ranks.device)))
        return v_sum / max(v_count, 1)

    def checkpoint(self, epoch: int, with_optimizer: bool) -> dict:
        """Plain types only (tensors, numbers, strings, lists, dicts): loads with weights_only=True."""
        def cpu_state(m) -> dict:
            return {k: v.detach().cpu() for k, v in m.state_dict().items()}

        # last.pt resumes the live weights; checkpoint.pt is the kept model
        kept = self.raw_model if with_optimizer else self.eval_model
        vocab = self.pieces.vocab
        ck = {"model": cpu_state(kept),
              "model_args": self.raw_model.model_args(), "vocab": vocab.to_dict() if vocab else None,
              "config": self.config, "epoch": epoch, "step": self.step, "best_valid": self.best_valid,
              "best_epoch": self.best_epoch, "params": self.raw_model.num_params(), "train_s": self.train_s}
        if with_optimizer:
            ck.update(optimizer=self.optimizer.state_dict(), history=self.history, bad_epochs=self.bad_epochs,
                      planned_steps=self.planned_steps)
            if self.ema_model is not None:
                ck["ema"] = cpu_state(self.ema_model)
        return ck

    def save_metrics(self) -> None:
        metrics = {"epochs": self.history, "best_valid": self.best_valid, "best_epoch": self.best_epoch,
                   "params": self.raw_model.num_params(), "model_args": self.raw_model.model_args(),
                   "train_s": round(self.train_s, 1), "steps": self.step, "config": self.config}
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        plot_losses(self.history, self.out_dir / "loss.png")

    def end_epoch(self, epoch: int, done: "Epoch") -> None:
        """Validate, keep the best checkpoint, log the epoch."""
        epoch_s = done.seconds
        self.train_s += epoch_s
        loss_sum, tok_count = self.ranks.all_sum([done.loss_sum, float(done.targets)])
        valid_loss = self.validate()
        tokens_per_s = tok_count / epoch_s
        self.history.append({"epoch": epoch, "steps": self.step, "train_loss": loss_sum / max(tok_count, 1),
                             "valid_loss": valid_loss, "tokens_per_s": round(tokens_per_s, 1),
                             "lr": self.lr_at(self.step), "epoch_s": round(epoch_s, 1),
                             "elapsed_s": round(self.train_s, 1)})
        self.ranks.log(f"epoch {epoch}: train {self.history[-1]['train_loss']:.4f}  valid {valid_loss:.4f}  "
                       f"{tokens_per_s:,.0f} tok/s  {epoch_s:.0f}s")
        if valid_loss < self.best_valid:
            self.best_valid, self.best_epoch, self.bad_epochs = valid_loss, epoch, 0
            if self.ranks.master:
                torch.save(self.checkpoint(epoch, with_optimizer=False), self.out_dir / "checkpoint.pt")
        else:
            self.bad_epochs += 1

    def fit(self) -> str:
        """Train epoch after epoch until --epochs, --patience, --max-minutes or --max-steps; the stop reason."""
        a = self.args
        budget_s = a.max_minutes * 60 if a.max_minutes > 0 else math.inf
        t_start = time.perf_counter()
        over = lambda: (time.perf_counter() - t_start > budget_s) or bool(a.max_steps and self.step >= a.max_steps)  # noqa: E731
        if self.ranks.master and self.pieces.vocab:
            self.pieces.vocab.save(self.out_dir / "vocab.json")
        for epoch in range(self.start_epoch, a.epochs + 1):
            done = self.run_epoch(epoch, over)
            self.end_epoch(epoch, done)
            if budget_s < math.inf and done.steps > 1:  # re-plan the cosine schedule to end when the budget does
                s_per_step = done.seconds / done.steps
                left = budget_s - (time.perf_counter() - t_start)
                planned = min(done.n_steps * a.epochs, a.max_steps or math.inf,
                              self.step + max(0, int(left / s_per_step)))
                # rank 0's plan for all: different learning rates would let the replicas drift apart
                self.planned_steps = self.ranks.masters(planned)
            if self.ranks.master:
                torch.save(self.checkpoint(epoch, with_optimizer=True), self.state_path)
                self.save_metrics()
            if done.stopped:
                return "max-steps" if a.max_steps and self.step >= a.max_steps else "max-minutes"
            if self.bad_epochs >= a.patience:
                return f"no better valid loss for {a.patience} epochs"
        return "epochs"


# -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ranks = Ranks.start()
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // ranks.world))
    torch.manual_seed(args.seed + ranks.rank)
    out_dir = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else ROOT / "runs" / out_dir.name
    if ranks.master:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(args, ranks, load_pieces(args, ranks), out_dir, run_dir)
    stop_reason = run.fit()
    ranks.log(f"stopped ({stop_reason}) after {run.step} steps, {run.train_s:.0f}s of training; "
              f"best valid {run.best_valid:.4f} at epoch {run.best_epoch}")
    # the test NLL of the best checkpoint, and the model card
    if ranks.master and not args.no_test:
        if run.roll:
            write_roll_card(out_dir, args.data, stop_reason=stop_reason)
        else:
            write_card(out_dir, args.data, stop_reason=stop_reason)
    ranks.close()
    return 0
