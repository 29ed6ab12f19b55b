"""scripts/bench_latency.py runs end to end and writes the JSON keys the issue names (no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tiny  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_latency_quick_json(tmp_path):
    pytest.importorskip("torch")
    model = tiny.make_model_dir(tmp_path / "model", hidden=32, int8=True)
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_latency.py"), "--model", str(model),
                        "--quick", "--steps", "400", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    for k in ("feed_p50_us", "feed_p99_us", "sample_p50_us", "sample_p99_us"):
        assert d["backends"]["onnx"][k] > 0
    assert set(d["backends"]) == {"onnx", "onnx-int8", "torch-cpu"}
    assert d["window100_p50_us"] > 0 and d["speedup"] == pytest.approx(
        d["window100_p50_us"] / d["backends"]["onnx"]["feed_p50_us"], rel=0.01)
    assert isinstance(d["machine"]["jackd_running"], bool) and d["machine"]["onnx_intra_op_threads"] == 1
    assert d["model"] == str(model) and d["backends"]["onnx"]["hidden"] == 32
    assert "stateful onnx step is" in r.stdout
