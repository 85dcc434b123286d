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
