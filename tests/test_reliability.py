"""Reliability of training and inference: predict from several Python threads at once (the
kernels release the GIL and are re-entrant), and memory that stays flat over many epochs."""
import threading

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim


def resident_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status on this platform")


def small_lenet():
    nf.seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 14 * 14, 32), nn.Tanh(), nn.Linear(32, 10))


def test_predict_from_several_threads_at_once():
    model = small_lenet()
    x = np.random.default_rng(0).random((257, 1, 28, 28)).astype(np.float32)
    expected = model.predict(x, batch_size=64)
    results, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = model.predict(x, batch_size=16 + 8 * i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-6)


def test_kernels_run_concurrently_with_the_gil_released():
    import nnfast._core as core
    a = np.random.default_rng(1).random((600, 600)).astype(np.float32)
    expected = core.sgemm(a, a)
    out, errors = [], []

    def work():
        try:
            for _ in range(5):
                out.append(core.sgemm(a, a))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 20
    for r in out:
        np.testing.assert_array_equal(r, expected)


def test_memory_stays_flat_over_50_epochs():
    model = small_lenet()
    model.compile(optim.SGD(model.parameters(), lr=0.05, momentum=0.9), nn.CrossEntropyLoss(),
                  ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((200, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 200)
    model.fit(x, y, epochs=5, batch_size=50, validation_data=(x[:50], y[:50]), verbose=0)
    settled = resident_bytes()
    model.fit(x, y, epochs=50, batch_size=50, validation_data=(x[:50], y[:50]), verbose=0)
    grown = resident_bytes() - settled
    # A leak of one batch's activations per step would add > 100 MB over these 200 steps.
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MB"
