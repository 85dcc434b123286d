"""Shared test settings: hypothesis profiles (a smaller sample in CI) and drawing helpers."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("NNFAST_HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "default"))

seeds = st.integers(0, 2**32 - 1)


def random_array(seed, shape, dtype=np.float32, scale=1.0):
    """Standard-normal values of the given shape, reproducible from ``seed``."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.fixture
def restore_threads():
    """Run a test that changes the kernels' thread count, then put it back."""
    import nnfast._core as core
    before = core.get_num_threads()
    yield core
    core.set_num_threads(before)


@pytest.fixture(scope="session")
def mnist():
    """The genuine MNIST arrays (the checkout's data/mnist, or $NNFAST_DATA / the cache)."""
    from nnfast.data import load_mnist
    return load_mnist(download=False)


def fashion_mnist_or_skip():
    """The Fashion-MNIST arrays where this machine has them (not shipped); else skips the test."""
    from nnfast.data import load_fashion_mnist
    try:
        return load_fashion_mnist(download=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not on this machine ($NNFAST_DATA/fashion-mnist, "
                    "~/.cache/nnfast/fashion-mnist or /usr/share/datasets/fashion-mnist)")
