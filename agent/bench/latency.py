#!/usr/bin/env python
"""Per-step latency of the live predictor, against the sliding-window re-run it replaces.

    python scripts/bench_latency.py [--model DIR] [--json OUT] [--quick]

In one run on one model (default models/default; a random-init 2 x --hidden
model if that folder has no model yet, and the JSON says so):
- for each backend here (onnx, onnx-int8 if model.int8.onnx exists,
  torch-cpu if torch and checkpoint.pt exist): `Predictor.feed` and
  `Predictor.sample` latency in microseconds (p50, p99, max) over --steps
  steps after a warm-up, on real tokens (Bach chorales from music21's corpus);
- for onnx also `sample` with every control on (top-p, adaptive temperature,
  auto key, repeat guard, polyphony cap), the sampler alone, and a re-prime
  from a full 512-token context;
- the classic sliding window on the same weights: torch on the CPU, one
  thread, re-running the last 100 tokens for each new token (p50, p99);
- speedup = window100 p50 / onnx feed p50;
- int8 vs float: mean NLL (nats/token) of both ONNX models on the same tokens.
Also the machine: CPU, cores, load average, thread settings, and whether a
JACK server is running. --quick (under a minute): fewer torch steps and
window re-runs; the onnx backends still get 5,000 steps.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.config import ROOT

from agent.config import load_config
from agent.music.tokens import encode
from agent.model.predictor import Predictor
from agent.model.sampler import SamplingControls

WARMUP = 300
ALL_CONTROLS = dict(top_p=0.95, top_k=40, adaptive=True, key="auto", key_strength=3.0,
                    repeat_penalty=0.5, max_polyphony=6, rest_bias=-1.0)


def stats_us(ns: list[int]) -> dict:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1),
            "max": round(float(a.max()), 1), "n": int(a.size)}


def jack_running() -> bool:
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "comm").read_text().strip() in ("jackd", "jackdbus"):
                return True
        except OSError:
            continue
    return False


def machine(args) -> dict:
    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
            "jackd_running": jack_running(), "nice": os.nice(0), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "onnx_intra_op_threads": args.threads,
            "torch_threads": 1, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def real_tokens(vocab, n_pieces: int = 12) -> list[int]:
    """Token ids of a few Bach chorales (real music, so the states are realistic)."""
    from music21 import corpus

    from agent.music.notes import notes_from_music21

    ids: list[int] = []
    for path in sorted(corpus.getComposer("bach"))[:n_pieces]:
        try:
            ids += encode(notes_from_music21(corpus.parse(path)), vocab)
        except Exception:  # a corpus file music21 cannot parse is no reason to stop
            continue
    return ids


def prepare_model(args) -> tuple[Path, str]:
    """The model folder to measure, and how to describe it."""
    d = Path(args.model)
    if (d / "model.onnx").exists():
        return d, str(d)
    import torch

    from agent.training import export as exp

    from agent.model.net import LSTMModel, ModelArgs, load_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="bench_model_"))
    vocab = load_config().vocab()
    if (d / "checkpoint.pt").exists():
        model, ckpt = load_checkpoint(d / "checkpoint.pt")
        torch.save(ckpt, tmp / "checkpoint.pt")
        from agent.music.tokens import Vocab

        vocab, what = Vocab.from_dict(ckpt["vocab"]), f"{d}/checkpoint.pt exported to a temp folder"
    else:
        torch.manual_seed(0)
        model = LSTMModel(ModelArgs(vocab.size, embedding=128, hidden=args.hidden, layers=2)).eval()
        torch.save({"model_args": model.model_args(), "vocab": vocab.to_dict(), "config": {},
                    "model": model.state_dict()}, tmp / "checkpoint.pt")
        what = f"random-init 2x{args.hidden} (no model in {d} yet)"
    exp.export_model(model, vocab, tmp, int8=True)
    return tmp, what


def bench_predictor(p: Predictor, tokens: list[int], steps: int, controls: SamplingControls) -> dict:
    n = len(tokens)
    for i in range(WARMUP):
        p.feed(tokens[i % n])
    feed, feed_cpu = [], []
    pc, tt = time.perf_counter_ns, time.thread_time_ns
    for i in range(steps):
        t = tokens[i % n]
        c0, t0 = tt(), pc()
        p.feed(t)
        feed.append(pc() - t0)
        feed_cpu.append(tt() - c0)
    p.prime(tokens[:200])
    for _ in range(WARMUP):
        p.sample(controls)
    sample, sample_cpu = [], []
    for _ in range(steps):
        c0, t0 = tt(), pc()
        p.sample(controls)
        sample.append(pc() - t0)
        sample_cpu.append(tt() - c0)
    f, s = stats_us(feed), stats_us(sample)
    # CPU time of this thread: the step's own cost, without the time other
    # processes held the core (the difference is preemption on a busy machine).
    fc, sc = stats_us(feed_cpu), stats_us(sample_cpu)
    return {"feed_p50_us": f["p50"], "feed_p99_us": f["p99"], "feed_max_us": f["max"],
            "sample_p50_us": s["p50"], "sample_p99_us": s["p99"], "sample_max_us": s["max"],
            "feed_cpu_p50_us": fc["p50"], "feed_cpu_p99_us": fc["p99"],
            "sample_cpu_p50_us": sc["p50"], "sample_cpu_p99_us": sc["p99"], "steps": steps, **p.describe()}


def bench_paced(p: Predictor, tokens: list[int], steps: int, controls: SamplingControls, gap_s: float) -> dict:
    """`sample` as the live agent calls it: after a sleep (an event every gap_s), not back to back."""
    p.prime(tokens[:200])
    times = []
    for i in range(steps + 50):
        time.sleep(gap_s)
        t0 = time.perf_counter_ns()
        p.sample(controls)
        if i >= 50:
            times.append(time.perf_counter_ns() - t0)
    s = stats_us(times)
    return {"sample_p50_us": s["p50"], "sample_p99_us": s["p99"], "sample_max_us": s["max"], "steps": steps,
            "gap_ms": gap_s * 1e3}


def bench_window(model_dir: Path, tokens: list[int], runs: int) -> dict:
    import torch

    from agent.model.net import load_checkpoint

    torch.set_num_threads(1)
    model, _ = load_checkpoint(model_dir / "checkpoint.pt")
    times = []
    with torch.inference_mode():
        for i in range(runs + 20):
            window = torch.tensor([tokens[i:i + 100]])
            t0 = time.perf_counter_ns()
            logits, _ = model(window)  # no state: the whole window again, for one new token
            logits[0, -1].numpy()
            if i >= 20:
                times.append(time.perf_counter_ns() - t0)
    s = stats_us(times)
    return {"window100_p50_us": s["p50"], "window100_p99_us": s["p99"], "window100_runs": runs}


def bench_interleaved(p: Predictor, model_dir: Path, tokens: list[int], rounds: int) -> dict:
    """The speedup measured in alternating rounds (200 onnx feeds, 10 window re-runs), so a
    change in the machine's load between two long measurements cannot skew the ratio."""
    import torch

    from agent.model.net import load_checkpoint

    model, _ = load_checkpoint(model_dir / "checkpoint.pt")
    ratios = []
    pc = time.perf_counter_ns
    with torch.inference_mode():
        for r in range(rounds):
            feeds, wins = [], []
            for i in range(200):
                t0 = pc()
                p.feed(tokens[(r * 200 + i) % len(tokens)])
                feeds.append(pc() - t0)
            for i in range(10):
                window = torch.tensor([tokens[r * 10 + i:r * 10 + i + 100]])
                t0 = pc()
                model(window)[0][0, -1].numpy()
                wins.append(pc() - t0)
            ratios.append(float(np.median(wins) / np.median(feeds)))
    return {"speedup_interleaved": round(float(np.median(ratios)), 1), "speedup_interleaved_rounds": rounds}


def nll(model_path: Path, tokens: list[int]) -> float:
    from agent.model.runtime.onnx_backend import OnnxBackend

    be = OnnxBackend(model_path)
    state, total = be.initial_state(), 0.0
    logits, state = be.step(tokens[0], state)
    for t in tokens[1:]:
        z = logits.astype(np.float64)
        total += float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[t])
        logits, state = be.step(t, state)
    return round(total / (len(tokens) - 1), 4)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"), metavar="DIR")
    ap.add_argument("--json", metavar="OUT", help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="under a minute: fewer torch steps and window runs")
    ap.add_argument("--steps", type=int, default=5000, help="timed steps per backend (after warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--hidden", type=int, default=256, help="hidden size of the random model, if none is trained")
    return ap.parse_args(argv)


def bench_onnx(p: Predictor, tokens: list[int], args, controls: SamplingControls, out: dict) -> None:
    """The float onnx predictor: feed and sample, every control on, paced, and the sampler alone."""
    out["backends"]["onnx"] = bench_predictor(p, tokens, args.steps, controls)
    full = bench_predictor(p, tokens, args.steps, controls.replace(**ALL_CONTROLS))
    out["onnx_all_controls"] = {k: full[k] for k in ("sample_p50_us", "sample_p99_us", "sample_max_us")}
    out["onnx_paced"] = bench_paced(p, tokens, 1000 if args.quick else 3000, controls, 0.002)
    choose = []
    ctx = p.context()
    for _ in range(args.steps):
        t0 = time.perf_counter_ns()
        p.sampler.choose(p.logits, controls.replace(**ALL_CONTROLS), ctx)
        choose.append(time.perf_counter_ns() - t0)
    out["sampler_all_controls_us"] = stats_us(choose)


def bench_state(p: Predictor, tokens: list[int], quick: bool) -> dict:
    """Re-priming from 512 tokens (in one go, and in the live engine's slices), snapshot and rollback."""
    from agent.live.jam.limits import REPRIME_SLICE

    out: dict = {}
    reprime = []
    for i in range(10 if quick else 30):
        t0 = time.perf_counter_ns()
        p.prime(tokens[i:i + 512])
        reprime.append(time.perf_counter_ns() - t0)
    out["reprime512_p50_ms"] = round(float(np.median(reprime)) / 1e6, 2)
    p.prime(tokens[:512])
    slices = []  # what the live engine does instead: the same re-prime, a slice in each idle gap
    for i in range(5 if quick else 15):
        p.begin_reprime()
        while p.repriming:
            t0 = time.perf_counter_ns()
            p.advance_reprime(REPRIME_SLICE)
            slices.append(time.perf_counter_ns() - t0)
            p.feed(tokens[(512 + i) % len(tokens)])
    out["reprime_slice_p99_ms"] = round(float(np.percentile(slices, 99)) / 1e6, 3)
    snap, back = [], []
    for _ in range(1000):  # the jam policy snapshots before every sampled token
        t0 = time.perf_counter_ns()
        s = p.snapshot()
        t1 = time.perf_counter_ns()
        p.rollback(s)
        back.append(time.perf_counter_ns() - t1)
        snap.append(t1 - t0)
    out["snapshot_us"], out["rollback_us"] = stats_us(snap), stats_us(back)
    return out


def bench_int8(model_dir: Path, tokens: list[int], args, controls: SamplingControls, out: dict) -> None:
    """The int8 onnx predictor, if the model has one: feed and sample, paced, and its NLL against float."""
    if not (model_dir / "model.int8.onnx").exists():
        return
    q = Predictor.load(model_dir, backend="onnx", quantized=True, threads=args.threads, seed=0)
    out["backends"]["onnx-int8"] = bench_predictor(q, tokens, args.steps, controls)
    out["onnx_int8_paced"] = bench_paced(q, tokens, 1000 if args.quick else 3000, controls, 0.002)
    sub = tokens[:1000 if args.quick else 3000]
    out["int8_nll"] = {"float32_nats": nll(model_dir / "model.onnx", sub),
                       "int8_nats": nll(model_dir / "model.int8.onnx", sub), "tokens": len(sub)}


def bench_torch(p: Predictor, model_dir: Path, tokens: list[int], args, controls: SamplingControls,
                out: dict) -> None:
    """The torch step and the sliding-window re-run, if torch and a checkpoint are here; the speedups."""
    try:
        import torch  # noqa: F401 - measured last, so it cannot disturb the onnx figures

        have_torch = (model_dir / "checkpoint.pt").exists()
    except ImportError:
        have_torch = False
    if not have_torch:
        return
    torch_steps = min(1000, args.steps) if args.quick else args.steps
    t = Predictor.load(model_dir, backend="torch-cpu", threads=1, seed=0)
    out["backends"]["torch-cpu"] = bench_predictor(t, tokens, torch_steps, controls)
    out.update(bench_window(model_dir, tokens, 100 if args.quick else 1000))
    out["speedup"] = round(out["window100_p50_us"] / out["backends"]["onnx"]["feed_p50_us"], 1)
    out.update(bench_interleaved(p, model_dir, tokens, 10 if args.quick else 40))
    out["speedup_vs_torch_step"] = round(out["window100_p50_us"] / out["backends"]["torch-cpu"]["feed_p50_us"], 1)


def budget(out: dict) -> dict:
    """config [latency]: one feed or sample must fit the step budget."""
    budget_us = load_config().latency.step_budget_ms * 1e3
    return {"step_budget_ms": budget_us / 1e3,
            "onnx_feed_p99_within": out["backends"]["onnx"]["feed_p99_us"] <= budget_us,
            "onnx_sample_p99_within": out["backends"]["onnx"]["sample_p99_us"] <= budget_us}


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    model_dir, what = prepare_model(args)
    controls = SamplingControls.from_config(load_config().sampling)
    p = Predictor.load(model_dir, backend="onnx", threads=args.threads, seed=0)
    tokens = real_tokens(p.vocab, 4 if args.quick else 12)
    gc.collect()
    out: dict = {"model": what, "machine": machine(args), "backends": {}}
    bench_onnx(p, tokens, args, controls, out)
    out.update(bench_state(p, tokens, args.quick))
    bench_int8(model_dir, tokens, args, controls, out)
    bench_torch(p, model_dir, tokens, args, controls, out)
    out["budget"] = budget(out)
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    print_table(out)
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def print_table(out: dict) -> None:
    m = out["machine"]
    print(f"model: {out['model']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['loadavg_1m']}, nice {m['nice']}, "
          f"jackd running: {m['jackd_running']}, "
          f"onnx threads {m['onnx_intra_op_threads']}, torch threads {m['torch_threads']}")
    cols = [("feed_p50_us", "feed p50"), ("feed_p99_us", "p99"), ("feed_max_us", "max"), ("feed_cpu_p99_us", "cpu p99"),
            ("sample_p50_us", "sample p50"), ("sample_p99_us", "p99"), ("sample_max_us", "max"),
            ("sample_cpu_p99_us", "cpu p99")]
    print(f"{'backend':<12}" + "".join(f"{h:>11}" for _, h in cols) + "   (us; cpu = this thread's CPU time)")
    for name, b in out["backends"].items():
        print(f"{name:<12}" + "".join(f"{b[k]:>11}" for k, _ in cols))
    pc = out["onnx_paced"]
    print(f"onnx sample paced like live input (one every {pc['gap_ms']:g} ms): p50 {pc['sample_p50_us']} us, "
          f"p99 {pc['sample_p99_us']} us, max {pc['sample_max_us']} us")
    if "onnx_int8_paced" in out:
        pc = out["onnx_int8_paced"]
        print(f"onnx-int8 sample paced the same way: p50 {pc['sample_p50_us']} us, p99 {pc['sample_p99_us']} us, "
              f"max {pc['sample_max_us']} us")
    a = out["onnx_all_controls"]
    print(f"onnx sample, every control on: p50 {a['sample_p50_us']} us, p99 {a['sample_p99_us']} us")
    if "window100_p50_us" in out:
        print(f"torch window re-run (100 tokens, 1 thread): p50 {out['window100_p50_us']} us, "
              f"p99 {out['window100_p99_us']} us -> stateful onnx step is {out['speedup']}x faster "
              f"({out['speedup_interleaved']}x in alternating rounds)")
    if "int8_nll" in out:
        n = out["int8_nll"]
        print(f"NLL float32 {n['float32_nats']} vs int8 {n['int8_nats']} nats/token over {n['tokens']} tokens")
    b = out["budget"]
    print(f"config step budget {b['step_budget_ms']} ms: onnx feed p99 within: {b['onnx_feed_p99_within']}, "
          f"sample p99 within: {b['onnx_sample_p99_within']}")
    print(f"snapshot p50 {out['snapshot_us']['p50']} us, rollback p50 {out['rollback_us']['p50']} us, "
          f"re-prime from 512 tokens {out['reprime512_p50_ms']} ms in one go, "
          f"{out['reprime_slice_p99_ms']} ms p99 a slice in the live engine; run took {out['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
