"""The main job's benchmark runs end to end: its engines, each in a worker process of its own,
train in turns on the same batches from the same weights and report what the table shows."""
import json
import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")


def test_mnist_benchmark_engines_take_turns_and_agree(tmp_path):
    out = tmp_path / "mnist.json"
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "mnist.py"), "--quick", "--models", "softmax",
         "--engines", "nnfast,numpy", "--epochs", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {r["engine"]: r for r in json.loads(out.read_text())["results"]}
    assert set(runs) == {"nnfast", "numpy"}
    for run in runs.values():
        assert len(run["epoch_times"]) == 2 and min(run["epoch_times"]) > 0
        assert run["samples_per_epoch"] == 10000 and run["predict_time"] > 0
        assert 0.7 < run["test_accuracy"][-1] <= 1.0
    # the same weights and batches: softmax regression trains to the same test accuracy, but
    # for a few images that float32 rounding may tip
    for ours, reference in zip(runs["nnfast"]["test_accuracy"], runs["numpy"]["test_accuracy"]):
        assert abs(ours - reference) <= 0.002
    assert "softmax regression 784-10" in result.stdout and "vs numpy" in result.stdout


def test_gpu_benchmark_runs_what_the_machine_has_and_says_why_not_the_rest(tmp_path):
    import nnfast
    if nnfast.cuda.is_available():
        pytest.skip("a GPU is here: scripts/gpu-check.sh runs benchmarks/gpu.py in full")
    out = tmp_path / "gpu.json"
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "gpu.py"), "--models", "mlp", "--epochs", "1",
         "--gemm-repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads(out.read_text())
    runs = {r["engine"]: r for r in saved["models"]}
    assert set(runs) == {"nnfast-cuda", "nnfast-cuda-eager", "torch-cuda", "nnfast-cpu"}
    assert "no CUDA device" in runs["nnfast-cuda"]["skipped"]
    assert "no CUDA device" in runs["nnfast-cuda-eager"]["skipped"]
    assert runs["torch-cuda"]["skipped"]
    cpu = runs["nnfast-cpu"]
    assert cpu["epoch_time"] > 0 and 0.85 < cpu["test_accuracy"] <= 1.0
    assert {(r["n"], r["engine"]) for r in saved["gemm"]} == {
        (n, e) for n in (1024, 4096) for e in ("nnfast-cuda", "torch-cuda")}
    assert all("skipped" in r for r in saved["gemm"])
    assert "MLP 784-100(sigmoid)-10" in result.stdout and "skipped: " in result.stdout


def test_gpu_benchmark_engine_trains_on_a_device_as_the_cpu_engine(monkeypatch):
    """gpu.py's nnfast-cuda engine, run on the emulated device (tests/emulated_device.py: the
    CPU kernels behind device arrays) in place of the GPU: its batches, steps and predictions
    are the CPU engine's, so that on a GPU only the kernels differ."""
    import numpy as np

    import nnfast as nf
    sys.path.insert(0, BENCHMARKS)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import emulated_device
    import gpu
    import mnist
    monkeypatch.setitem(nf.backend.BACKENDS, "cuda", emulated_device.make_backend(graphs=True))
    monkeypatch.setattr(nf.backend, "gpu_available", lambda: True)
    monkeypatch.setattr(nf.graph, "enabled", True)   # the engines set it: restored after
    spec = mnist.MODELS["cnn"]
    nf.seed(0)
    weights = mnist.nnfast_model(spec["layers"]).get_weights()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 40).astype(np.int64)
    engines = [mnist.NnfastEngine(spec, weights, 1), gpu.NnfastCudaEngine(spec, weights, 1),
               gpu.NnfastCudaEagerEngine(spec, weights, 1)]
    assert all(e.model.backend.device == "emulated" for e in engines[1:])
    for start in (0, 10, 20, 30):
        idx = np.arange(start, start + 10)
        losses = [e.train_step(*e.gather(x, y, idx)) for e in engines]
        assert losses[1] == losses[0] and losses[2] == losses[0]
    assert engines[1].replays() == (3, None) and engines[2].replays() == (0, None)
    for e in engines[1:]:
        np.testing.assert_array_equal(e.predict(x), engines[0].predict(x))
