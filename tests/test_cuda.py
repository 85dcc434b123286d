"""The CUDA path: nnfast imports and reports CUDA correctly with and without the extension and the
device, and every CUDA kernel matches the CPU kernel (tests/cuda_cases.py) where a device is
found; without one those tests skip with the reason."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnfast
from nnfast import backend, cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
requires_gpu = pytest.mark.skipif(not cuda.is_available(), reason=cuda.unavailable_reason())


def test_config_says_whether_cuda_is_compiled_in():
    assert nnfast.config()["cuda"] is cuda.compiled()
    assert cuda.is_available() == (cuda.device_count() > 0)
    assert ("cuda" in backend.BACKENDS) is cuda.compiled()
    if not cuda.compiled():
        assert cuda.device_count() == 0 and not cuda.is_available()
        assert "built without CUDA" in cuda.unavailable_reason()


def test_every_interface_function_has_a_cuda_kernel():
    """The module imports without the extension, with a function for every INTERFACE entry (no
    stub raising NotImplementedError); a CPU array given to one is refused."""
    assert backend.missing(backend.cuda) == []
    assert [n for n in backend.INTERFACE if not backend.has_kernel(backend.cuda, n)] == []
    if not cuda.compiled():
        assert not backend.cuda.available()
    with pytest.raises(TypeError, match="on the GPU"):
        backend.cuda.conv2d_relu_maxpool_forward(np.zeros((1, 1, 4, 4), np.float32),
                                                 np.zeros((1, 1, 3, 3), np.float32))


def _cuda_extension():
    """The CUDA extension to check: nnfast's own when compiled in, else one built under build/
    (NNFAST_CUDA=ON), else $NNFAST_CUDA_EXTENSION; None if there is none."""
    if cuda.compiled():
        return cuda._cuda.__file__
    found = sorted(glob.glob(os.path.join(ROOT, "build", "*", "_cuda*.so")))
    return os.environ.get("NNFAST_CUDA_EXTENSION") or (found[0] if found else None)


PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("nnfast._cuda", sys.argv[1])
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
sys.modules["nnfast._cuda"] = ext
import nnfast
out = {"compiled": nnfast.cuda.compiled(), "config": nnfast.config()["cuda"],
       "count": nnfast.cuda.device_count(), "available": nnfast.cuda.is_available(),
       "reason": nnfast.cuda.unavailable_reason(),
       "backend": "cuda" in nnfast.backend.BACKENDS, "upload_error": None,
       "graphs": nnfast.backend.BACKENDS["cuda"].graphs, "capture_errors": []}
if out["count"] == 0:
    try:
        ext.zeros([3])
    except RuntimeError as e:
        out["upload_error"] = str(e)
    for call in (ext.capture_begin, ext.capture_end):
        try:
            call()
        except RuntimeError as e:
            out["capture_errors"].append(str(e))
    ext.capture_abort()
    out["capturing"] = ext.is_capturing()
print(json.dumps(out))
"""


def test_the_cuda_build_imports_and_says_whether_it_has_a_device():
    """nnfast with the CUDA extension loaded (in a fresh interpreter): it imports, config says
    CUDA is compiled in, its backend has graphs, and with no device is_available() is False and
    memory and capture calls raise (a failed capture_begin leaves no capture open)."""
    ext = _cuda_extension()
    if ext is None:
        pytest.skip("no CUDA build to check (cmake -DNNFAST_CUDA=ON -B build/cuda)")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(nnfast.__file__)))
    run = subprocess.run([sys.executable, "-c", PROBE, ext], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["compiled"] and out["config"] and out["backend"] and out["graphs"]
    assert out["available"] == (out["count"] > 0)
    if out["count"] == 0:
        assert out["reason"].startswith("no CUDA device")
        assert out["upload_error"] and "cudaMalloc" in out["upload_error"]
        begin, end = out["capture_errors"]   # no device to capture on, so nothing open
        assert begin.startswith("capture_begin: ") and end == "capture_end: no capture is open"
        assert out["capturing"] is False


def test_a_cpu_array_given_to_the_cuda_backend_names_both_devices():
    if not cuda.compiled():
        pytest.skip(cuda.unavailable_reason())
    with pytest.raises(TypeError, match="GPU.*CPU"):
        backend.cuda.relu_forward(np.zeros(3, np.float32))


@pytest.mark.skipif(cuda.is_available(), reason="a CUDA device is here (tests/test_devices.py "
                    "trains on it)")
def test_model_cuda_without_a_device_says_why_and_cpu_stays():
    """PyTorch's spellings: model.cuda() without a device raises with the reason; model.cpu() is
    to("cpu"). (Training on a GPU is tests/test_devices.py's, on every device found.)"""
    model = nnfast.Sequential(nnfast.nn.Linear(4, 3), nnfast.nn.ReLU())
    with pytest.raises(RuntimeError, match="cannot use device 'cuda': no CUDA device"):
        model.cuda()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        model.to("cuda")
    for call in (cuda.synchronize, cuda.empty_cache, cuda.memory_cached):
        with pytest.raises(RuntimeError, match="no CUDA device"):
            call()
    assert model.cpu() is model
    assert all(m.backend is backend.get("cpu") for m in model.modules())
    out = model.predict(np.ones((2, 4), np.float32))
    assert out.shape == (2, 3) and isinstance(out, np.ndarray)


@requires_gpu
def test_gpu_arrays_are_exchanged_with_pytorch_without_copies():
    """__dlpack__ out (torch.from_dlpack sees nnfast's memory) and __cuda_array_interface__ in
    (a layer on the GPU takes a CUDA tensor as its input)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = backend.cuda.to_device(host)
    assert a.__dlpack_device__()[0] == 2
    t = torch.from_dlpack(a)
    assert t.data_ptr() == a.ptr and tuple(t.shape) == (2, 3)
    t.mul_(2)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(a.numpy(), 2 * host)
    u = torch.randn(4, 5, device="cuda")
    assert backend.cuda.to_device(u).ptr == u.data_ptr()
    layer = nnfast.nn.Linear(5, 2)
    want = layer(u.cpu().numpy())
    got = layer.cuda()(u)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_cases  # noqa: E402  (it imports without a device; its cases need one)


@requires_gpu
@pytest.mark.parametrize("name", sorted(cuda_cases.CASES))
@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1))
def test_cuda_kernel_matches_the_cpu_kernel(name, seed):
    """Shapes and values from a generator seeded by hypothesis; relative tolerance 1e-4."""
    failures = []
    for what, got, want, exact in cuda_cases.CASES[name](np.random.default_rng(seed)):
        problem = cuda_cases.close(got, want, exact)
        if problem:
            failures.append(f"{what}: {problem}")
    assert not failures, "\n".join(failures)
