"""LSTM vs GRU at equal parameter count and equal minutes on the same split (issue 24 item 4).

    python scripts/bench_cells.py --data data/cells --minutes 10 --seeds 1,2 [--hidden 128] [--json OUT]

For each seed, the LSTM (`--hidden`, `--embedding`, `--layers`) and the GRU of
the same parameter count (`agent/training/cells.py`: its hidden size is the one
whose count is nearest) are trained side by side by scripts/train.py, two
processes at a time, one torch thread each, for the same `--minutes` of wall
time, on the same prepared split; each then writes its card (test NLL in nats
per token from a zero state, the best checkpoint by valid loss) and is
exported with --int8. The step cost is timed afterwards, every model in
alternating rounds so a background load falls on all alike: onnxruntime, one
intra-op thread, one token at a time with the state carried (the live
predictor's step), float32 and int8, p50/p99 in microseconds over a real test
piece's tokens; with it the same for an untrained LSTM and GRU of the shipped
default's size (2x256 at vocabulary 242, and its GRU match), whose step cost
does not depend on the weights.

The verdict follows the issue's rule: the GRU becomes the default kind only if
its mean test NLL is lower than the LSTM's by more than the seed-to-seed
spread (the larger of the two cells' max - min over seeds) at equal step cost
(its int8 p50 no more than `STEP_SLACK` times the LSTM's).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.config import ROOT

STEP_SLACK = 1.10  # "equal step cost": within 10 % (these figures move more than that between runs)
DEFAULT_SIZE = {"vocab_size": 242, "embedding": 128, "hidden": 256, "layers": 2}  # models/default


def train_cmd(a, cell: str, seed: int, out: Path) -> list[str]:
    """scripts/train.py for one (cell, seed): --hidden names the LSTM; the GRU matches its size."""
    return [sys.executable, str(ROOT / "scripts/train.py"), "--data", str(a.data), "--out", str(out),
            "--run-dir", str(out / "run"), "--cell", cell, "--hidden", str(a.hidden),
            "--embedding", str(a.embedding), "--layers", str(a.layers), "--batch", str(a.batch),
            "--chunk", str(a.chunk), "--max-minutes", str(a.minutes), "--epochs", "100000",
            "--patience", "100000", "--seed", str(seed), "--threads", "1", "--quiet"]


def train_all(a, log=print) -> list[dict]:
    """Train every (seed, cell), the two cells of a seed at once; each run's card and export report."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runs = []
    for seed in a.seeds:
        procs = []
        for cell in ("lstm", "gru"):
            out = Path(a.out) / f"{cell}-s{seed}"
            out.mkdir(parents=True, exist_ok=True)
            log(f"training {cell} seed {seed} for {a.minutes} min -> {out}")
            procs.append((cell, out, time.perf_counter(), subprocess.Popen(
                train_cmd(a, cell, seed, out), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)))
        for cell, out, t0, p in procs:
            text, _ = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"bench_cells: training {cell} seed {seed} failed:\n{text[-2000:]}")
            runs.append(finish_run(cell, seed, out, time.perf_counter() - t0, env))
    return runs


def finish_run(cell: str, seed: int, out: Path, wall_s: float, env: dict) -> dict:
    """Export one trained folder (float32 + int8) and gather its card's figures."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts/export_onnx.py"), str(out / "checkpoint.pt"),
                        "--int8"], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_cells: export of {out} failed: {r.stderr.strip().splitlines()[-1:]}")
    card = json.loads((out / "card.json").read_text())
    tr = card["training"]
    return {"cell": cell, "seed": seed, "folder": str(out), "params": card["params"],
            "hidden": card["model_args"]["hidden"], "test_nll": card["test_nll"], "valid_nll": card["valid_nll"],
            "test_targets": card["test_targets"], "steps": tr["steps"], "epochs": tr["epochs_run"],
            "best_epoch": tr["best_epoch"], "train_minutes": round(tr["train_s"] / 60, 2),
            "wall_minutes": round(wall_s / 60, 2), "parity": json.loads(r.stdout)["parity_max_abs_diff_200_steps"]}


def default_size_folders(tmp: Path) -> list[tuple[str, Path]]:
    """Untrained LSTM and GRU of the shipped default's size, exported (step cost only)."""
    import torch

    from agent.model.net import LSTMModel, ModelArgs, matched_hidden
    from agent.music.tokens import Vocab
    from agent.training.export import export_model

    lstm = ModelArgs(**DEFAULT_SIZE)
    out = []
    for cell in ("lstm", "gru"):
        args = lstm if cell == "lstm" else ModelArgs(**{**DEFAULT_SIZE, "cell": cell,
                                                        "hidden": matched_hidden(lstm, cell)})
        torch.manual_seed(0)
        folder = tmp / f"default-size-{cell}"
        export_model(LSTMModel(args).eval(), Vocab(), folder, int8=True)
        out.append((cell, folder))
    return out


def time_steps(folders: list[tuple[str, Path]], tokens: list[int], rounds: int, per_round: int) -> dict:
    """Per (folder, precision): step times in microseconds, measured in alternating rounds."""
    from agent.model.runtime.onnx_backend import OnnxBackend

    backends = {(str(f), q): OnnxBackend(f / ("model.int8.onnx" if q == "int8" else "model.onnx"), threads=1)
                for _, f in folders for q in ("float32", "int8")}
    states = {k: be.initial_state() for k, be in backends.items()}
    times: dict = {k: [] for k in backends}
    pos = {k: 0 for k in backends}
    for k, be in backends.items():  # warm-up
        for t in tokens[:100]:
            _, states[k] = be.step(t, states[k])
    for _ in range(rounds):
        for k, be in backends.items():
            st, got = states[k], times[k]
            for _ in range(per_round):
                t = tokens[pos[k] % len(tokens)]
                pos[k] += 1
                t0 = time.perf_counter_ns()
                _, st = be.step(t, st)
                got.append((time.perf_counter_ns() - t0) / 1e3)
            states[k] = st
    return {k: {"p50_us": round(float(np.percentile(v, 50)), 1), "p99_us": round(float(np.percentile(v, 99)), 1),
                "n": len(v)} for k, v in times.items()}


def verdict(runs: list[dict]) -> dict:
    """The issue's rule over the trained runs (their "step" figures included)."""
    by = {c: [r for r in runs if r["cell"] == c] for c in ("lstm", "gru")}
    mean = {c: float(np.mean([r["test_nll"] for r in rs])) for c, rs in by.items()}
    spread = max(float(np.ptp([r["test_nll"] for r in rs])) for rs in by.values())
    step = {c: float(np.mean([r["step"]["int8"]["p50_us"] for r in rs])) for c, rs in by.items()}
    gain = mean["lstm"] - mean["gru"]
    equal_cost = step["gru"] <= STEP_SLACK * step["lstm"]
    gru_wins = gain > spread and equal_cost
    return {"mean_test_nll": {c: round(v, 4) for c, v in mean.items()}, "gru_gain_nats": round(gain, 4),
            "seed_spread_nats": round(spread, 4), "int8_p50_us": {c: round(v, 1) for c, v in step.items()},
            "equal_step_cost": equal_cost, "default_cell": "gru" if gru_wins else "lstm",
            "rule": f"gru if its mean test NLL is lower by more than the seed spread and its int8 p50 is "
                    f"within {STEP_SLACK:.2f}x the LSTM's"}


def table(report: dict) -> str:
    rows = [f"{'cell':5} {'seed':>4} {'hidden':>6} {'params':>8} {'test NLL':>8} {'valid':>7} {'steps':>6} "
            f"{'min':>5} {'f32 p50/p99 us':>15} {'int8 p50/p99 us':>16}"]
    for r in report["runs"] + report["default_size"]:
        s = r["step"]
        nll = (f"{r['test_nll']:8.4f} {r['valid_nll']:7.4f} {r['steps']:6d} {r['train_minutes']:5.2f}"
               if "test_nll" in r else f"{'-':>8} {'-':>7} {'-':>6} {'-':>5}")
        rows.append(f"{r['cell']:5} {str(r.get('seed', 'size')):>4} {r['hidden']:6d} {r['params']:8d} {nll} "
                    f"{s['float32']['p50_us']:>7.1f}/{s['float32']['p99_us']:<7.1f} "
                    f"{s['int8']['p50_us']:>7.1f}/{s['int8']['p99_us']:<8.1f}")
    v = report["verdict"]
    rows.append(f"mean test NLL lstm {v['mean_test_nll']['lstm']:.4f}, gru {v['mean_test_nll']['gru']:.4f}; "
                f"gru gain {v['gru_gain_nats']:+.4f} vs seed spread {v['seed_spread_nats']:.4f}; "
                f"equal step cost: {v['equal_step_cost']}; default cell: {v['default_cell']}")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data/cells"), help="prepared data (scripts/prepare_data.py)")
    ap.add_argument("--out", default=str(ROOT / "runs/cells"), help="where the trained folders go")
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per model")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--hidden", type=int, default=128, help="the LSTM's hidden size (the GRU matches its count)")
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=10, help="alternating timing rounds")
    ap.add_argument("--per-round", type=int, default=300, help="steps per model and precision per round")
    ap.add_argument("--json", metavar="OUT", help="write the JSON report here")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if not (Path(a.data) / "manifest.json").exists():
        print(f"bench_cells: {a.data}: no prepared data (scripts/prepare_data.py --out {a.data})", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    runs = train_all(a, log=lambda m: print(m, file=sys.stderr))
    from agent.training.data import load_split

    tokens = [int(t) for p in load_split(a.data, "test")[:20] for t in p]
    with tempfile.TemporaryDirectory() as tmp:
        sized = default_size_folders(Path(tmp))
        folders = [(r["cell"], Path(r["folder"])) for r in runs] + sized
        steps = time_steps(folders, tokens, a.rounds, a.per_round)
        step_of = lambda f: {q: steps[(str(f), q)] for q in ("float32", "int8")}  # noqa: E731
        for r in runs:
            r["step"] = step_of(r["folder"])
        default_size = [{"cell": c, "hidden": h, "params": p, "step": step_of(f)}
                        for (c, f), (h, p) in zip(sized, _sizes())]
    report = {"runs": runs, "default_size": default_size, "verdict": verdict(runs),
              "settings": {k: v for k, v in vars(a).items() if k != "json"},
              "machine": {"cores": os.cpu_count(), "loadavg_1m_before": round(load_before, 2),
                          "loadavg_1m_after": round(os.getloadavg()[0], 2), "torch_threads": 1,
                          "onnx_intra_op_threads": 1}}
    print(json.dumps(report, indent=1, default=str))
    print(table(report))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


def _sizes() -> list[tuple[int, int]]:
    """(hidden, params) of the default-size LSTM and its GRU match."""
    from agent.model.net import ModelArgs, count_params, matched_hidden

    lstm = ModelArgs(**DEFAULT_SIZE)
    gru = ModelArgs(**{**DEFAULT_SIZE, "cell": "gru", "hidden": matched_hidden(lstm, "gru")})
    return [(lstm.hidden, count_params(lstm)), (gru.hidden, count_params(gru))]
