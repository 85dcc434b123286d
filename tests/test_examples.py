"""Every example runs end to end with --quick (a small subset, one epoch)."""
import os
import subprocess
import sys

import pytest

from conftest import fashion_mnist_or_skip

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
EXAMPLE_NAMES = ["xor", "softmax_regression", "mlp", "lenet", "linear_autoencoder",
                 "denoising_autoencoder", "fashion_mlp", "early_stopping_dropout",
                 "hidden_representation", "keras_convnet", "pytorch_mnist", "distributed_mnist",
                 "zone_network", "residual_mlp"]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_runs_quickly(name, tmp_path):
    if name == "fashion_mlp":
        fashion_mnist_or_skip()
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name + ".py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "the example printed nothing"
