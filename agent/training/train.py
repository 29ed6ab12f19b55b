"""Train the LSTM token model on prepared data: stateful truncated BPTT, every position a target.

    python scripts/train.py --data data/prepared --out models/default --max-minutes 60
    torchrun --nproc_per_node=2 scripts/train.py --data data/prepared --out runs/ddp
    python scripts/train.py --kind roll --data ../shared/data/poly_music/JSB_Chorales.mat --out models/roll-jsb

Trained as it is used (scripts/train_tokens.py): each epoch every training
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
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from agent.training import data as dataset  # noqa: E402
from agent.model.net import LSTMModel, ModelArgs, roll_nll, score_rolls  # noqa: E402
from train_report import evaluate_pieces, plot_losses, write_card  # noqa: E402
from train_tokens import augment, chunk_nll, piece_chunks  # noqa: E402

# -----------------------------------------------------------------------------
# options
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
args = ap.parse_args()

# -----------------------------------------------------------------------------
# processes and devices
ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
if ddp:
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
else:
    rank, world, device = 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
master = rank == 0
torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
torch.manual_seed(args.seed + rank)
out_dir = Path(args.out)
run_dir = Path(args.run_dir) if args.run_dir else ROOT / "runs" / out_dir.name
if master:
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def log(*a) -> None:
    if master:
        print(*a, file=sys.stderr, flush=True)


def all_sum(values: list[float]) -> list[float]:
    """Sum floats over ranks (identity when single-process)."""
    if not ddp:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# -----------------------------------------------------------------------------
# data: pieces per rank, streams per epoch
ROLL = args.kind == "roll"
if ROLL:
    from agent.model import roll

    vocab = None
    try:
        splits = roll.load_mat(args.data)
    except roll.RollError as exc:
        sys.exit(f"train.py: {exc}")
    train_pieces, valid_pieces = splits["train"], splits["valid"]
    shift_choices = [roll.allowed_shifts(p, args.transpose) for p in train_pieces]
else:
    vocab = dataset.vocab_of(args.data)
    manifest = dataset.load_manifest(args.data)
    train_pieces = dataset.load_split(args.data, "train")
    valid_pieces = dataset.load_split(args.data, "valid")
    shift_choices = [dataset.allowed_shifts(p, vocab, args.transpose) for p in train_pieces]
if not train_pieces or not valid_pieces:
    sys.exit(f"{args.data}: the train and valid splits must both have pieces")
valid_mine = valid_pieces[rank::world]


def epoch_token_chunks(epoch: int) -> list[tuple]:
    """This rank's (x, y, mask, fresh) chunks: its share of the pieces, augmented, whole pieces per row."""
    rng = np.random.default_rng(args.seed * 1000 + epoch)  # same order on every rank
    order = rng.permutation(len(train_pieces))[rank::world]
    rng = np.random.default_rng((args.seed * 1000 + epoch) * 64 + rank)
    pieces = augment([train_pieces[i] for i in order], [shift_choices[i] for i in order], vocab, rng,
                     args.humanise_p if args.humanise else 0.0)
    return piece_chunks(pieces, args.batch, args.chunk, rng)


def epoch_roll_chunks(epoch: int) -> list[tuple]:
    """This rank's (x, y, mask, fresh) chunks: batches of similar-length whole pieces, transposed, padded.

    x, y [batch, <=chunk, keys] float (y is x one frame on), mask [batch, <=chunk];
    fresh marks a batch's first chunk (the state starts from zero there).
    """
    rng = np.random.default_rng(args.seed * 1000 + epoch)
    order = rng.permutation(len(train_pieces))[rank::world]
    rng = np.random.default_rng((args.seed * 1000 + epoch) * 64 + rank)
    pool = args.batch * 16  # sort by length within pools: little padding, still a random mix
    batches = []
    for p in range(0, len(order), pool):
        group = sorted(order[p:p + pool], key=lambda i: len(train_pieces[i]))
        batches += [group[b:b + args.batch] for b in range(0, len(group), args.batch)]
    chunks = []
    for k in rng.permutation(len(batches)):
        idx = batches[k]
        width = max(len(train_pieces[i]) for i in idx)
        x = np.zeros((len(idx), width, train_pieces[idx[0]].shape[1]), np.float32)
        mask = np.zeros((len(idx), width - 1), np.float32)
        for r, i in enumerate(idx):
            shift = int(rng.choice(shift_choices[i])) if rng.random() < args.transpose_p else 0
            piece = roll.transpose(train_pieces[i], shift)
            x[r, :len(piece)] = piece
            mask[r, :len(piece) - 1] = 1.0
        x = torch.from_numpy(x)
        mask = torch.from_numpy(mask)
        for a in range(0, width - 1, args.chunk):
            b = min(a + args.chunk, width - 1)
            chunks.append((x[:, a:b], x[:, a + 1:b + 1], mask[:, a:b], a == 0))
    return chunks


def steps_in(streams) -> int:
    n = len(streams)
    if ddp:  # every rank must take the same number of steps, or DDP's all-reduce hangs
        t = torch.tensor([n], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        n = int(t.item())
    return n


# -----------------------------------------------------------------------------
# model, optimizer, resume
if ROLL:
    model_args = ModelArgs(vocab_size=train_pieces[0].shape[1], embedding=0, hidden=args.hidden,
                           layers=args.layers, dropout=args.dropout, kind="roll", head=args.head,
                           input_dropout=args.input_dropout, nade_hidden=args.nade_hidden if args.head == "nade" else 0,
                           weight_drop=args.weight_drop)
else:
    model_args = ModelArgs(vocab_size=vocab.size, embedding=args.embedding, hidden=args.hidden,
                           layers=args.layers, dropout=args.dropout, weight_drop=args.weight_drop)
state_path = run_dir / "last.pt"
resumed = None
if args.resume:
    if not state_path.exists():
        sys.exit(f"--resume: no {state_path}")
    resumed = torch.load(state_path, map_location="cpu", weights_only=True)
    model_args = ModelArgs(**resumed["model_args"])  # a resumed run keeps its own size
model = LSTMModel(model_args).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
history: list[dict] = []
start_epoch, step, best_valid, best_epoch, bad_epochs, train_s = 1, 0, math.inf, 0, 0, 0.0
planned_steps = 0
if resumed:
    model.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    history = list(resumed["history"])
    start_epoch, step = resumed["epoch"] + 1, resumed["step"]
    best_valid, best_epoch, bad_epochs = resumed["best_valid"], resumed["best_epoch"], resumed["bad_epochs"]
    train_s, planned_steps = resumed["train_s"], resumed["planned_steps"]
    log(f"resumed from {state_path} at epoch {resumed['epoch']}, step {step}, best valid {best_valid:.4f}")
elif ROLL:  # a fresh roll model starts from the keys' rates (the first epochs are not spent finding them)
    model.init_key_bias(np.concatenate(train_pieces).mean(axis=0))
raw_model = model
# the averaged weights (--ema) are what is validated, kept and exported; the live ones are what trains
ema_model = copy.deepcopy(raw_model).eval().requires_grad_(False) if args.ema > 0 else None
if ema_model is not None and resumed and resumed.get("ema"):
    ema_model.load_state_dict(resumed["ema"])
eval_model = ema_model or raw_model
if ddp:
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
config["world_size"] = world
log(f"{raw_model.num_params():,} params {model_args}; {len(train_pieces)} train / {len(valid_pieces)} valid pieces; "
    f"{world} process(es)")


def lr_at(s: int) -> float:
    """Linear warmup, then cosine from --lr down to --min-lr over the planned steps."""
    if s < args.warmup:
        return args.lr * (s + 1) / args.warmup
    total = max(planned_steps, s + 1)
    frac = min(1.0, (s - args.warmup) / max(1, total - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * frac))


def checkpoint(epoch: int, with_optimizer: bool) -> dict:
    """Plain types only (tensors, numbers, strings, lists, dicts): loads with weights_only=True."""
    def cpu_state(m) -> dict:
        return {k: v.detach().cpu() for k, v in m.state_dict().items()}

    kept = raw_model if with_optimizer else eval_model  # last.pt resumes the live weights; checkpoint.pt is the kept model
    ck = {"model": cpu_state(kept),
          "model_args": raw_model.model_args(), "vocab": vocab.to_dict() if vocab else None, "config": config,
          "epoch": epoch, "step": step, "best_valid": best_valid, "best_epoch": best_epoch,
          "params": raw_model.num_params(), "train_s": train_s}
    if with_optimizer:
        ck.update(optimizer=optimizer.state_dict(), history=history, bad_epochs=bad_epochs,
                  planned_steps=planned_steps)
        if ema_model is not None:
            ck["ema"] = cpu_state(ema_model)
    return ck


def save_metrics() -> None:
    metrics = {"epochs": history, "best_valid": best_valid, "best_epoch": best_epoch, "params": raw_model.num_params(),
               "model_args": raw_model.model_args(), "train_s": round(train_s, 1), "steps": step, "config": config}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot_losses(history, out_dir / "loss.png")


# -----------------------------------------------------------------------------
# training loop
budget_s = args.max_minutes * 60 if args.max_minutes > 0 else math.inf
t_start = time.perf_counter()
stop_reason = "epochs"
if master and vocab:
    vocab.save(out_dir / "vocab.json")
for epoch in range(start_epoch, args.epochs + 1):
    streams = epoch_roll_chunks(epoch) if ROLL else epoch_token_chunks(epoch)
    n_steps = steps_in(streams)
    if n_steps == 0:
        sys.exit(f"train split too small for --batch {args.batch} x --chunk {args.chunk} (per process)")
    if planned_steps == 0:  # first guess: every epoch this long; refined below once speed is known
        planned_steps = min(n_steps * args.epochs, args.max_steps or math.inf)
    model.train()
    state = None
    loss_sum, tok_count, t_epoch = 0.0, 0, time.perf_counter()
    bar = None
    if master and not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=n_steps, desc=f"epoch {epoch}", unit="step", file=sys.stderr, dynamic_ncols=True)
    out_of_time, i = False, 0
    for i in range(n_steps):
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step)
        if ROLL:
            x, y, mask, fresh = (t.to(device) if torch.is_tensor(t) else t for t in streams[i])
            if fresh:  # a new batch of pieces: each starts from a zero state, as in evaluation
                state = None
            logits, state = model(x, state, y)
            n_targets = mask.sum()
            loss = (roll_nll(logits, y) * mask).sum() / n_targets.clamp(min=1.0)
        else:  # a fresh chunk starts new pieces: zero state, as the live predictor starts
            x, y, mask, fresh = (t.to(device) if torch.is_tensor(t) else t for t in streams[i])
            nll, state = chunk_nll(model, x, y, state, fresh)
            n_targets = mask.sum()
            loss = (nll * mask).sum() / n_targets.clamp(min=1.0)
        state = tuple(s.detach() for s in state)  # truncated BPTT: carry the value, not the graph
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if ema_model is not None:  # the decay ramps up over the first steps, so early weights do not linger
            with torch.no_grad():
                torch._foreach_lerp_(list(ema_model.parameters()), list(raw_model.parameters()),
                                     1.0 - min(args.ema, (1 + step) / (10 + step)))
        step += 1
        loss_sum += loss.item() * float(n_targets)
        tok_count += float(n_targets)
        if bar is not None:
            rate = tok_count * world / (time.perf_counter() - t_epoch)
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}", lr=f"{lr_at(step):.1e}", refresh=False)
            bar.update(1)
        elif args.log_every and step % args.log_every == 0:
            rate = tok_count * world / (time.perf_counter() - t_epoch)
            log(f"step {step} (epoch {epoch}, {i + 1}/{n_steps}): loss {loss.item():.3f}  {rate:,.0f} tok/s  "
                f"lr {lr_at(step):.1e}")
        over = (time.perf_counter() - t_start > budget_s) or (args.max_steps and step >= args.max_steps)
        if ddp:  # all ranks stop together
            flag = torch.tensor([1.0 if over else 0.0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = flag.item() > 0
        if over:
            out_of_time = True
            break
    if bar is not None:
        bar.close()
    epoch_s = time.perf_counter() - t_epoch
    train_s += epoch_s
    loss_sum, tok_count = all_sum([loss_sum, float(tok_count)])
    if ROLL:
        v_nll = score_rolls(eval_model, valid_mine, device=device)
        v_sum, v_count = all_sum([float(sum(v.sum() for v in v_nll)), float(sum(len(v) for v in v_nll))])
    else:
        v_sum, v_count = all_sum(list(evaluate_pieces(eval_model, valid_mine, device)))
    valid_loss = v_sum / max(v_count, 1)
    tokens_per_s = tok_count / epoch_s
    history.append({"epoch": epoch, "steps": step, "train_loss": loss_sum / max(tok_count, 1),
                    "valid_loss": valid_loss, "tokens_per_s": round(tokens_per_s, 1),
                    "lr": lr_at(step), "epoch_s": round(epoch_s, 1), "elapsed_s": round(train_s, 1)})
    log(f"epoch {epoch}: train {history[-1]['train_loss']:.4f}  valid {valid_loss:.4f}  "
        f"{tokens_per_s:,.0f} tok/s  {epoch_s:.0f}s")
    if valid_loss < best_valid:
        best_valid, best_epoch, bad_epochs = valid_loss, epoch, 0
        if master:
            torch.save(checkpoint(epoch, with_optimizer=False), out_dir / "checkpoint.pt")
    else:
        bad_epochs += 1
    # re-plan the cosine schedule so that it ends when the time budget does
    if budget_s < math.inf and i > 0:
        s_per_step = epoch_s / (i + 1)
        left = budget_s - (time.perf_counter() - t_start)
        planned_steps = min(n_steps * args.epochs, args.max_steps or math.inf,
                            step + max(0, int(left / s_per_step)))
        if ddp:  # rank 0's plan for all: different learning rates would let the replicas drift apart
            t = torch.tensor([planned_steps], device=device)
            dist.broadcast(t, src=0)
            planned_steps = int(t.item())
    if master:
        torch.save(checkpoint(epoch, with_optimizer=True), state_path)
        save_metrics()
    if out_of_time:
        stop_reason = "max-steps" if args.max_steps and step >= args.max_steps else "max-minutes"
        break
    if bad_epochs >= args.patience:
        stop_reason = f"no better valid loss for {args.patience} epochs"
        break

log(f"stopped ({stop_reason}) after {step} steps, {train_s:.0f}s of training; "
    f"best valid {best_valid:.4f} at epoch {best_epoch}")
# -----------------------------------------------------------------------------
# test NLL of the best checkpoint, and the model card
if master and not args.no_test:
    if ROLL:
        from roll_report import write_roll_card

        write_roll_card(out_dir, args.data, stop_reason=stop_reason)
    else:
        write_card(out_dir, args.data, stop_reason=stop_reason)
if ddp:
    dist.barrier()
    dist.destroy_process_group()
