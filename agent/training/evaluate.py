#!/usr/bin/env python
"""Evaluate a trained model on the held-out test split, against two count baselines.

    python scripts/evaluate.py models/default [--data data/prepared] [--json OUT]
        [--samples 64] [--temperature 1.0] [--plots DIR]

Reports (nats, natural log):
  test_nll            mean negative log-likelihood per target token; every
                      token after a piece's START is a target
  test_nll_per_note   the same total NLL divided by the number of NOTE_ON
                      targets (nats per note, timing and velocity included)
  pitch_accuracy      at positions whose target is a NOTE_ON, how often the
                      argmax over the NOTE_ON tokens is the right pitch
and the same three for a unigram (add-one) and an interpolated Kneser-Ney
n-gram (default 4-gram), both fitted on the train split as stored (untransposed)
and scored on exactly the same targets (plus, for information, a 6-gram as
`ngram6`; --extra-orders changes that).

Beside the clean test split it scores a humanised copy of it (agent/training/humanise.py,
fixed --humanise-seed: tempo, onsets and releases a tick or two off the grid,
velocities, as a player plays them live): `test_nll_humanised`, with the
unigram and n-gram baselines (fitted on the clean train split, as above) on
the same humanised targets under `humanised`.

It then samples N continuations of held-out openings (the first
--prompt tokens of test pieces) at --temperature, through the live agent's
own predictor and sampler (other controls at their defaults), and compares them with the
real continuations of the same openings: pitch-class histogram distance
(total variation, 0..1), in-key ratio (Krumhansl-Schmuckler key of opening +
continuation), note density (note-ons per beat) and collapse_rate, the
fraction of samples whose last 8 onsets are all the same pitch or chord
(agent.training.metrics.is_collapsed has the precise rule). For contrast it also
reports the collapse rate of near-argmax decoding (T = 0.01) of the same
openings, the failure the ancestors hit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from agent.training import metrics
from agent.training.data import DEFAULT_DATA_DIR, data_for_quick, load_split, vocab_of
from agent.errors import AntiphonError
from agent.music.tokens import Vocab, decode
from agent.training.humanise import EVAL_SEED, humanised_copy
from agent.model.folder import ModelDir
from agent.training.scoring import score_counts, score_lstm, summarize


# -- sampling --------------------------------------------------------------------

def sample_live(model_dir, openings: np.ndarray, length: int, temperature: float, seed: int,
                backend: str = "auto") -> tuple[list[np.ndarray], str]:
    """Continuations drawn the way the live agent draws them: agent.model.predictor + agent.model.sampler.

    For each opening the predictor is primed (reset, START, the opening) and
    then samples up to `length` tokens, stopping after END (kept), with
    SamplingControls at `temperature` and every other control at its default
    (no key mask, no repeat penalty: the raw model). backend "auto" is onnx if
    the folder has model.onnx, else torch-cpu. Returns (samples, backend name).
    """
    from agent.model.predictor import Predictor
    from agent.model.sampler import SamplingControls

    md = ModelDir.resolve(model_dir)
    if backend == "auto":
        backend = "onnx" if md.onnx.exists() else "torch-cpu"
    pred = Predictor.load(md.path, backend=backend, threads=1, seed=seed, context_tokens=len(openings[0]) + length)
    controls = SamplingControls(temperature=temperature)
    end = pred.vocab.END
    out = []
    for op in openings:
        pred.prime(op.tolist())
        toks = []
        for _ in range(length):
            toks.append(pred.sample(controls))
            if toks[-1] == end:
                break
        out.append(np.asarray(toks, np.int64))
    return out, backend


def sample_plain(model, openings: np.ndarray, length: int, temperature: float, seed: int,
                 vocab: Vocab) -> list[np.ndarray]:
    """Plain temperature sampling in torch, all openings in one batch, state carried.

    The reference the live sampler is checked against (and a fast path when
    the raw model alone is wanted). openings [N, prompt] int. A stream stops
    after it samples END (kept). Returns N int arrays of at most `length` tokens.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    n = len(openings)
    out = torch.zeros((n, length), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    ends = torch.full((n,), length)
    with torch.no_grad():
        logits, state = model(torch.as_tensor(openings, dtype=torch.long))
        logits = logits[:, -1]
        for t in range(length):
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=g).squeeze(1)
            out[:, t] = tok
            finished = (tok == vocab.END) & ~done
            ends[finished] = t + 1
            done |= finished
            if bool(done.all()):
                break
            logits, state = model.step_state(tok, state)
    return [out[i, :int(ends[i])].numpy() for i in range(n)]


def pick_openings(pieces: list[np.ndarray], n: int, prompt: int, length: int, seed: int):
    """N (opening, real continuation) pairs from test pieces longer than the prompt.

    Pieces are drawn without replacement while there are enough, then again.
    """
    rng = np.random.default_rng(seed)
    ok = [p for p in pieces if len(p) > prompt + 16]
    if not ok:
        raise AntiphonError(f"no test piece is longer than the {prompt}-token prompt + 16")
    picks = np.concatenate([rng.permutation(len(ok)) for _ in range(-(-n // len(ok)))])[:n]
    openings = np.stack([np.asarray(ok[i][:prompt], np.int64) for i in picks])
    real = [np.asarray(ok[i][prompt:prompt + length], np.int64) for i in picks]
    return openings, real


# -- plots -----------------------------------------------------------------------

def write_plots(out_dir: Path, real: list, samples: list, opening: np.ndarray, sample: np.ndarray,
                vocab: Vocab, title: str) -> list[Path]:
    """pitch_histograms.png (data vs samples) and piano_roll.png (one opening + its sample)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    pc_r, pc_s = metrics.pitch_class_histogram(real, vocab), metrics.pitch_class_histogram(samples, vocab)
    xs = np.arange(12)
    a1.bar(xs - 0.2, pc_r, 0.4, label="data (real continuations)")
    a1.bar(xs + 0.2, pc_s, 0.4, label="samples")
    a1.set_xticks(xs, metrics.PC_NAMES)
    a1.set_title("pitch classes")
    a1.legend()
    p_r, p_s = metrics.pitch_histogram(real, vocab), metrics.pitch_histogram(samples, vocab)
    rng = np.arange(vocab.pitch_lo, vocab.pitch_hi + 1)
    a2.step(rng, p_r[rng], where="mid", label="data")
    a2.step(rng, p_s[rng], where="mid", label="samples")
    a2.set_xlabel("MIDI pitch")
    a2.set_title("pitches")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    hist_path = out_dir / "pitch_histograms.png"
    fig.savefig(hist_path, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4))
    notes = decode(list(opening) + list(sample), vocab)
    split_beat = sum(vocab.token(i).value for i in opening if vocab.token(i).kind == "SHIFT") / vocab.resolution
    for nt in notes:
        colour = "tab:gray" if nt.start < split_beat else "tab:blue"
        ax.broken_barh([(nt.start, nt.end - nt.start)], (nt.pitch - 0.4, 0.8), color=colour)
    ax.axvline(split_beat, color="k", lw=0.8, ls="--")
    ax.set_xlabel("beats (grey: held-out opening, blue: sampled)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title("piano roll of one sample")
    fig.tight_layout()
    roll_path = out_dir / "piano_roll.png"
    fig.savefig(roll_path, dpi=100)
    plt.close(fig)
    return [hist_path, roll_path]


# -- the report ------------------------------------------------------------------

# the sample statistics reported beside the data's
STATS = ("collapse_rate", "silent_rate", "in_key_ratio", "note_density", "distinct_pitches", "polyphony")
GREEDY_T = 0.01  # "argmax" for the greedy comparison (softmax at T -> 0)


def evaluate(model_dir, data_dir=DEFAULT_DATA_DIR, *, samples: int = 64, temperature: float = 1.0,
             prompt: int = 64, length: int = 512, ngram_order: int = 4, extra_orders=(), limit: int = 0,
             seed: int = 0, threads: int = 1, sampler: str = "live", backend: str = "auto", plots: str | Path | None = None,
             humanise_seed: int = EVAL_SEED, log=print) -> dict:
    """Everything the module docstring lists, as one JSON-ready dict."""
    import torch

    from agent.model.net import load_checkpoint

    t0 = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    md = ModelDir.resolve(model_dir)
    model, ckpt = load_checkpoint(md.require(md.checkpoint))
    vocab = Vocab.from_dict(ckpt["vocab"])
    vocab.check_same(vocab_of(data_dir), f"model {md.path} vs data {data_dir}")
    test = load_split(data_dir, "test")
    if limit:
        test = test[:limit]
    if not test:
        raise AntiphonError(f"{data_dir}: the test split is empty")
    train = load_split(data_dir, "train")
    log(f"test: {len(test)} pieces, {sum(len(p) - 1 for p in test)} targets; train: {len(train)} pieces")

    report: dict = {"model": str(model_dir), "data": str(data_dir), "split": "test",
                    "n_pieces": len(test), "params": model.num_params(), "checkpoint_epoch": ckpt.get("epoch")}
    logp, tgt, correct = score_lstm(model, test, vocab)
    report.update(summarize(logp, tgt, correct, vocab))
    report["n_targets"] = int(len(tgt))
    report["n_notes"] = int(((tgt >= vocab.note_on_base) & (tgt < vocab.note_off_base)).sum())
    log(f"lstm: {report['test_nll']:.4f} nats/token ({time.perf_counter() - t0:.1f} s)")

    fitted = score_baselines(report, train, test, vocab, ngram_order, extra_orders, log)
    # how far below each baseline the LSTM is, nats per token (positive = LSTM better)
    report["nll_below_baselines"] = {k: round(v["test_nll"] - report["test_nll"], 4)
                                     for k, v in report["baselines"].items()}

    score_humanised(report, model, test, fitted, vocab, humanise_seed, log)

    sample_report(report, model, md, test, vocab, dict(samples=samples, temperature=temperature, prompt=prompt,
                  length=length, seed=seed, sampler=sampler, backend=backend, plots=plots), log)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def score_baselines(report: dict, train: list, test: list, vocab: Vocab, ngram_order: int, extra_orders,
                    log=print) -> list[tuple[str, object]]:
    """The count baselines fitted on train and scored on test into report["baselines"]; returns them fitted."""
    report["baselines"] = {}
    fitted = []
    counts = [("unigram", metrics.UnigramModel(vocab.size)),
              ("ngram", metrics.KneserNeyModel(vocab.size, ngram_order, pad=vocab.START))]
    counts += [(f"ngram{k}", metrics.KneserNeyModel(vocab.size, k, pad=vocab.START)) for k in extra_orders]
    for name, bl in counts:
        t = time.perf_counter()
        bl.fit(train)
        fitted.append((name, bl))
        report["baselines"][name] = summarize(*score_counts(bl, test, vocab), vocab)
        if name.startswith("ngram"):
            report["baselines"][name]["order"] = bl.order
            report["baselines"][name]["smoothing"] = "interpolated Kneser-Ney"
        log(f"{name}: {report['baselines'][name]['test_nll']:.4f} nats/token ({time.perf_counter() - t:.1f} s)")

    return fitted


def score_humanised(report: dict, model, test: list, fitted: list, vocab: Vocab, humanise_seed: int,
                    log=print) -> None:
    """The model and the baselines on the test pieces as a player would play them."""
    # off the grid, tempo and velocity varied
    t = time.perf_counter()
    human = humanised_copy(test, vocab, humanise_seed)
    h = summarize(*score_lstm(model, human, vocab), vocab)
    report["test_nll_humanised"] = h["test_nll"]
    report["humanised"] = {"seed": humanise_seed, "n_targets": int(sum(len(p) - 1 for p in human)), **h,
                           "baselines": {name: summarize(*score_counts(bl, human, vocab), vocab)
                                         for name, bl in fitted if name in ("unigram", "ngram")}}
    log(f"humanised test copy: lstm {h['test_nll']:.4f} nats/token ({time.perf_counter() - t:.1f} s)")


def sample_report(report: dict, model, md, test: list, vocab: Vocab, opts: dict, log=print) -> None:
    """Continuations of test openings, sampled the live way (or plain torch), and their statistics against
    the real continuations; a near-argmax decoding of the same openings; plots if asked."""
    samples, temperature, prompt, length, seed = (opts[k] for k in ("samples", "temperature", "prompt", "length",
                                                                    "seed"))
    sampler, backend, plots = opts["sampler"], opts["backend"], opts["plots"]
    t = time.perf_counter()
    openings, real = pick_openings(test, samples, prompt, length, seed)
    if sampler == "plain":
        conts, sampler_name = sample_plain(model, openings, length, temperature, seed, vocab), "plain torch"
    else:
        conts, be = sample_live(md.path, openings, length, temperature, seed, backend)
        sampler_name = f"agent.model.predictor + agent.model.sampler ({be})"
    gen = metrics.music_stats(conts, openings, vocab)
    ref = metrics.music_stats(real, openings, vocab)
    report["sampling"] = {"samples": samples, "temperature": temperature, "prompt_tokens": prompt,
                          "length_tokens": length, "seed": seed, "sampler": sampler_name,
                          "collapse_window_onsets": 8, "seconds": round(time.perf_counter() - t, 2)}
    for k in STATS:
        report[k] = gen[k]
    report["pitch_class_distance"] = metrics.histogram_distance(
        metrics.pitch_class_histogram(conts, vocab), metrics.pitch_class_histogram(real, vocab))
    report["pitch_distance"] = metrics.histogram_distance(
        metrics.pitch_histogram(conts, vocab), metrics.pitch_histogram(real, vocab))
    report["samples_pitch_class_histogram"] = gen["pitch_class_histogram"]
    # Near-argmax decoding of the same openings: the failure collapse_rate exists to catch.
    greedy = sample_plain(model, openings, length, GREEDY_T, seed, vocab)
    report["greedy"] = {"temperature": GREEDY_T, "collapse_rate": metrics.collapse_rate(greedy, vocab),
                        "distinct_pitches": metrics.mean_finite(
                            float(len({p for _, p in metrics.onsets(g, vocab)})) for g in greedy)}
    report["data_reference"] = {k: ref[k] for k in STATS + ("pitch_class_histogram",)}
    log(f"sampled {samples} x {length} tokens ({report['sampling']['seconds']} s)")
    if plots:
        best = max(range(len(conts)), key=lambda i: len(conts[i]))
        paths = write_plots(Path(plots), real, conts, openings[best], conts[best], vocab,
                            f"{md.path.name}: {samples} samples at T={temperature} vs data")
        report["plots"] = [str(p) for p in paths]


def table(r: dict) -> str:
    rows = [("model", "nll/token", "nll/note", "pitch acc")]
    for name, d in [("lstm", r)] + [(k, v) for k, v in r["baselines"].items()]:
        rows.append((name, f"{d['test_nll']:.4f}", f"{d['test_nll_per_note']:.3f}", f"{d['pitch_accuracy']:.3f}"))
    if "humanised" in r:
        h = r["humanised"]
        for name, d in [("humanised lstm", h)] + [(f"humanised {k}", v) for k, v in h["baselines"].items()]:
            rows.append((name, f"{d['test_nll']:.4f}", f"{d['test_nll_per_note']:.3f}", f"{d['pitch_accuracy']:.3f}"))
    lines = [f"{row[0]:>17}  " + "  ".join(f"{c:>10}" for c in row[1:]) for row in rows]
    lines.append("")
    ref = r["data_reference"]
    for k in STATS:
        lines.append(f"{k:>20}  samples {r[k]:8.3f}   data {ref[k]:8.3f}")
    lines.append(f"{'pitch_class_distance':>20}  {r['pitch_class_distance']:.3f} (total variation, samples vs data)")
    lines.append(f"{'greedy collapse':>20}  {r['greedy']['collapse_rate']:.3f} (T={r['greedy']['temperature']}, "
                 f"for contrast)")
    return "\n".join(lines)


def _finite(x):
    """NaN/inf -> None, so the report is strict JSON (a metric is NaN when it has nothing to measure)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


SIZES = {"samples": (64, 8), "length": (512, 256), "limit": (0, 8)}  # option: (default, with --quick)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model folder (checkpoint.pt + vocab.json)")
    ap.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="prepared data folder (default %(default)s)")
    ap.add_argument("--json", metavar="OUT", help="write the report here")
    ap.add_argument("--samples", type=int, help="continuations to sample (default 64, quick 8)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--prompt", type=int, default=64, help="opening length, tokens (default %(default)s)")
    ap.add_argument("--length", type=int, help="continuation length, tokens (default 512, quick 256)")
    ap.add_argument("--ngram-order", type=int, default=4, help="order of the `ngram` baseline (default %(default)s)")
    ap.add_argument("--extra-orders", type=int, nargs="*", default=[6], metavar="N",
                    help="more Kneser-Ney baselines reported as ngramN (default: 6; none: --extra-orders)")
    ap.add_argument("--limit", type=int, help="score only the first N test pieces (default 0 = all, quick 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--humanise-seed", type=int, default=EVAL_SEED,
                    help="seed of the humanised copy of the test split (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: fastest for batch-1 steps on shared cores; 0 = torch's default)")
    ap.add_argument("--sampler", choices=["live", "plain"], default="live",
                    help="live: agent.model.predictor + agent.model.sampler, one stream at a time (default); "
                         "plain: batched torch temperature sampling")
    ap.add_argument("--backend", default="auto", help="live sampler's backend (default: onnx if model.onnx, else torch-cpu)")
    ap.add_argument("--plots", metavar="DIR", help="write pitch_histograms.png and piano_roll.png here")
    ap.add_argument("--quick", action="store_true", help="a minute's check: fewer pieces and samples; "
                                                         "with no prepared data, a small set from the Bach chorales")
    args = ap.parse_args(argv)
    for name, (full, quick) in SIZES.items():  # an option given explicitly wins over --quick
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.samples < 1 or args.temperature <= 0 or args.prompt < 1 or args.length < 1:
        print("evaluate: --samples, --prompt, --length must be >= 1 and --temperature > 0", file=sys.stderr)
        return 2
    try:
        if args.quick:
            args.data = str(data_for_quick(args.data, log=lambda m: print(m, file=sys.stderr)))
        r = evaluate(args.model, args.data, samples=args.samples, temperature=args.temperature,
                     prompt=args.prompt, length=args.length, ngram_order=args.ngram_order,
                     extra_orders=args.extra_orders, limit=args.limit,
                     seed=args.seed, threads=args.threads, sampler=args.sampler,
                     backend=args.backend, plots=args.plots, humanise_seed=args.humanise_seed,
                     log=lambda m: print(m, file=sys.stderr))
    except AntiphonError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(_finite(r), indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(table(r))
    if not args.json:
        print(text)
    return 0
