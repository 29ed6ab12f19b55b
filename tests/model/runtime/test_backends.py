"""agent/runtime: backend choice, the onnx session, the torch CPU path, and device sampling."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tiny  # noqa: E402

from agent.music.tokens import Vocab  # noqa: E402
from agent.model.runtime import BackendError, load_backend, resolve_backend  # noqa: E402
from agent.model.sampler import Sampler, SamplingContext, SamplingControls  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_model_dir(tmp_path_factory.mktemp("model"), hidden=40)


def _fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_onnx_path_never_imports_torch(model_dir):
    out = _fresh_python(
        "import sys\n"
        "from agent.model.predictor import Predictor\n"
        "import agent.model.runtime.torch_backend  # import-safe: torch only when a TorchBackend is built\n"
        f"p = Predictor.load({str(model_dir)!r}, backend='onnx')\n"
        "from agent.model.sampler import SamplingControls\n"
        "p.sample(SamplingControls())\n"
        "print('torch' in sys.modules)\n")
    assert out.strip() == "False"


def test_auto_is_onnx_without_a_gpu(model_dir):
    from agent.model.runtime import cuda_likely

    if cuda_likely():
        pytest.skip("this machine has an NVIDIA driver")
    assert resolve_backend("auto", model_dir) == "onnx"
    with pytest.raises(BackendError):
        resolve_backend("tensorrt", model_dir)


def test_auto_is_onnx_even_where_cuda_looks_available(model_dir, monkeypatch):
    """auto means measured-best: onnx on the CPU, until the CUDA path is measured."""
    import agent.model.runtime as rt

    monkeypatch.setattr(rt, "cuda_likely", lambda: True)
    assert (model_dir / "checkpoint.pt").exists()
    assert resolve_backend("auto", model_dir) == "onnx"


def test_onnx_session_is_single_threaded_and_sequential(model_dir):
    import onnxruntime as ort

    be = load_backend(model_dir, "onnx")
    so = be.session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert be.describe()["intra_op_threads"] == 1
    assert load_backend(model_dir, "onnx", threads=2).session.get_session_options().intra_op_num_threads == 2


def test_onnx_step_keeps_old_states_valid(model_dir):
    be = load_backend(model_dir, "onnx")
    s0 = be.initial_state()
    l1, s1 = be.step(5, s0)
    l2, _ = be.step(9, s1)
    l1b, _ = be.step(5, s0)  # the old state was not overwritten by later steps
    np.testing.assert_array_equal(l1, l1b)
    assert l1.shape == (be.vocab_size,) and not np.array_equal(l1, l2)


def test_torch_cpu_backend_matches_onnx(model_dir):
    pytest.importorskip("torch")
    t, o = load_backend(model_dir, "torch-cpu"), load_backend(model_dir, "onnx")
    assert t.name == "torch-cpu" and not t.samples_on_device
    st, so = t.initial_state(), o.initial_state()
    for tok in np.random.default_rng(0).integers(0, t.vocab_size, 150):
        lt, st = t.step(int(tok), st)
        lo, so = o.step(int(tok), so)
        assert np.abs(lt - lo).max() <= 1e-4


def test_torch_cuda_is_refused_cleanly_without_a_gpu(model_dir):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(BackendError, match="CUDA"):
        load_backend(model_dir, "torch-cuda")


@pytest.mark.parametrize("controls", [
    SamplingControls(),
    SamplingControls(temperature=0.7, top_k=8),
    SamplingControls(top_p=0.5),
    SamplingControls(adaptive=True, temperature=1.2),
])
def test_device_sampler_draws_from_the_numpy_distribution(model_dir, controls):
    """The GPU draw's formulas, run on the CPU: frequencies match Sampler.distribution."""
    torch = pytest.importorskip("torch")
    from agent.model.runtime.torch_backend import TorchBackend

    be = TorchBackend(model_dir / "checkpoint.pt", device="cpu", seed=0)
    v = Vocab()
    z = np.random.default_rng(1).normal(0, 2, v.size).astype(np.float32)
    s = Sampler(v, 0)
    ctx = SamplingContext((60, 62), frozenset({60}))
    bias = s.bias(controls, ctx)
    want = s.distribution(z, controls, ctx)
    n = 6000
    draws = np.bincount([be.sample(torch.from_numpy(z), bias, controls) for _ in range(n)], minlength=v.size) / n
    assert set(np.flatnonzero(draws)) <= set(np.flatnonzero(want))  # never a masked or cut token
    assert np.abs(draws - want).max() < 0.03


def test_device_sampler_generator_goes_back_with_its_state(model_dir):
    """Predictor.rollback restores the device generator through rng_state/set_rng_state."""
    torch = pytest.importorskip("torch")
    from agent.model.runtime.torch_backend import TorchBackend

    be = TorchBackend(model_dir / "checkpoint.pt", device="cpu", seed=4)
    v = Vocab()
    z = torch.from_numpy(np.random.default_rng(2).normal(0, 1, v.size).astype(np.float32))
    bias, c = np.zeros(v.size), SamplingControls(temperature=1.5)
    saved = be.rng_state()
    first = [be.sample(z, bias, c) for _ in range(20)]
    be.set_rng_state(saved)
    assert [be.sample(z, bias, c) for _ in range(20)] == first
