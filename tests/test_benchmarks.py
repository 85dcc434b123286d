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
    assert set(runs) == {"nnfast-cuda", "torch-cuda", "nnfast-cpu"}
    assert "no CUDA device" in runs["nnfast-cuda"]["skipped"]
    assert runs["torch-cuda"]["skipped"]
    cpu = runs["nnfast-cpu"]
    assert cpu["epoch_time"] > 0 and 0.85 < cpu["test_accuracy"] <= 1.0
    assert {(r["n"], r["engine"]) for r in saved["gemm"]} == {
        (n, e) for n in (1024, 4096) for e in ("nnfast-cuda", "torch-cuda")}
    assert all("skipped" in r for r in saved["gemm"])
    assert "MLP 784-100(sigmoid)-10" in result.stdout and "skipped: " in result.stdout
