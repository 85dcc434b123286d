"""nnfast.set_precision("bf16"): Linear's dense products with operands rounded to bfloat16 and
float32 sums, checked against the NumPy reference's rounding of the same operands; the setting,
its refusal where the CPU cannot run it, and training in it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfast as nf
from nnfast import _core, nn, optim
from nnfast.backend import reference as R

from conftest import random_array, seeds

needs_bf16 = pytest.mark.skipif(not _core.bf16_available(),
                                reason="the kernels in use have no bf16 products on this CPU "
                                       "(they need the avx512 copy and AVX512_BF16)")


@pytest.fixture
def bf16():
    """Run the test in bf16 precision, then go back to float32."""
    nf.set_precision("bf16")
    yield
    nf.set_precision("float32")


def bf16_product(a, b):
    """op products of bf16-rounded operands, summed exactly (float64), and the sum of the terms'
    magnitudes, which bounds float32's rounding of the kernel's sums."""
    a, b = R._bf16(a).astype(np.float64), R._bf16(b).astype(np.float64)
    return a @ b, np.abs(a) @ np.abs(b)


def assert_float32_sums(got, exact, scale):
    """got is exact up to float32 rounding of sums whose terms add up to scale."""
    assert np.all(np.abs(got - exact) <= 1e-5 * scale + 1e-30), np.max(np.abs(got - exact) / scale)


# ------------------------------------------------------------------------------- the setting
def test_precision_defaults_to_float32_and_is_reported():
    assert nf.get_precision() == "float32"
    assert nf.config()["precision"] == "float32"
    assert nf.config()["bf16"] == _core.bf16_available()


def test_set_precision_rejects_other_names():
    for name in ["fp16", "bfloat16", "", "float64"]:
        with pytest.raises(ValueError, match="'float32' or 'bf16'"):
            nf.set_precision(name)
    assert nf.get_precision() == "float32"


@needs_bf16
def test_set_precision_round_trips(bf16):
    assert nf.get_precision() == "bf16" and nf.config()["precision"] == "bf16"


@pytest.mark.skipif(_core.bf16_available(), reason="this CPU runs bf16 (the refusal is tested "
                                                   "with a lower copy below)")
def test_bf16_is_refused_where_the_cpu_lacks_it():
    with pytest.raises(RuntimeError, match="AVX512_BF16"):
        nf.set_precision("bf16")
    assert nf.get_precision() == "float32"


@pytest.mark.skipif(not dict(_core.kernel_copies()).get("avx2"),
                    reason="this build or CPU has no avx2 copy to force")
def test_bf16_is_refused_by_a_copy_without_it():
    code = ("import nnfast as nf\n"
            "try:\n    nf.set_precision('bf16')\nexcept RuntimeError as e:\n    print(e)\n"
            "print(nf.get_precision(), nf.config()['bf16'])\n")
    env = dict(os.environ, NNFAST_ISA="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "AVX512_BF16" in out and "'avx2' copy" in out
    assert out.strip().endswith("float32 False")


# ------------------------------------------------------------------------------- the kernels
@needs_bf16
@given(seeds, st.integers(1, 70), st.integers(1, 90), st.integers(1, 80), st.integers(0, 20),
       st.sampled_from(["none", "relu", "sigmoid"]), st.booleans())
def test_linear_forward_sums_bf16_operands_in_float32(seed, B, IN, OUT, pad, act, bias):
    x = random_array(seed, (B, IN))
    wt = random_array(seed + 1, (IN, OUT + pad))
    b = random_array(seed + 2, (OUT,)) if bias else None
    nf.set_precision("bf16")
    try:
        y = _core.linear_forward(x, wt, b, out_features=OUT, activation=act)
        y_ref = R.linear_forward(x, wt, b, out_features=OUT, activation=act)
    finally:
        nf.set_precision("float32")
    exact, scale = bf16_product(x, wt[:, :OUT])
    if b is not None:
        exact, scale = exact + b, scale + np.abs(b)
    if act == "none":
        assert_float32_sums(y, exact, scale)
    # The reference rounds the same operands: both agree within float32's rounding of the sums.
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.max(scale))


@needs_bf16
@given(seeds, st.integers(1, 70), st.integers(1, 90), st.integers(1, 80), st.integers(0, 20),
       st.booleans(), st.sampled_from(["none", "relu", "sigmoid"]))
def test_linear_backward_sums_bf16_operands_in_float32(seed, B, IN, OUT, pad, accumulate, dx_act):
    x = random_array(seed, (B, IN))
    if dx_act == "relu":
        x = np.maximum(x, 0)
    elif dx_act == "sigmoid":
        x = 1 / (1 + np.exp(-x))
    wt = random_array(seed + 1, (IN, OUT + pad))
    dy = random_array(seed + 2, (B, OUT))
    dwt0 = random_array(seed + 3, wt.shape)
    dwt0[:, OUT:] = 0
    nf.set_precision("bf16")
    try:
        dx, dwt, db = _core.linear_backward(dy, x, wt, dwt0.copy(), None, accumulate=accumulate,
                                            out_features=OUT, dx_activation=dx_act)
    finally:
        nf.set_precision("float32")
    dx_exact, dx_scale = bf16_product(dy, wt[:, :OUT].T)
    if dx_act == "relu":
        dx_exact, dx_scale = np.where(x > 0, dx_exact, 0), np.where(x > 0, dx_scale, 0)
    elif dx_act == "sigmoid":
        dx_exact, dx_scale = dx_exact * x * (1 - x), dx_scale * x * (1 - x)
    assert_float32_sums(dx, dx_exact, dx_scale + 1e-30)
    dw_exact, dw_scale = bf16_product(x.T, dy)
    base = dwt0[:, :OUT] if accumulate else 0
    assert_float32_sums(dwt[:, :OUT], dw_exact + base, dw_scale + np.abs(base))
    assert np.all(dwt[:, OUT:] == 0)                            # the padding is never written
    np.testing.assert_allclose(db, dy.sum(0), rtol=1e-5, atol=1e-5)  # no product: float32


@needs_bf16
def test_bf16_rounds_what_float32_keeps(bf16):
    # 1 + 2^-9 is a float32 but not a bfloat16 (7 fraction bits): rounded to 1 (ties to even).
    x = np.full((4, 64), 1 + 2.0**-9, np.float32)
    wt = np.ones((64, 16), np.float32)
    np.testing.assert_array_equal(_core.linear_forward(x, wt), 64.0)
    nf.set_precision("float32")
    np.testing.assert_array_equal(_core.linear_forward(x, wt), np.float32(64 * (1 + 2.0**-9)))


@needs_bf16
def test_mostly_zero_inputs_keep_exact_float32_sums(bf16):
    # A raw-pixel-like x (most entries 0) takes the zero-skipping path: exact float32 products.
    rng = np.random.default_rng(3)
    x = np.where(rng.random((100, 784)) < 0.8, 0, rng.random((100, 784))).astype(np.float32)
    wt = random_array(4, (784, 112))
    y = _core.linear_forward(x, wt, None, out_features=100)
    nf.set_precision("float32")
    np.testing.assert_array_equal(y, _core.linear_forward(x, wt, None, out_features=100))


@needs_bf16
def test_non_finite_values_propagate(bf16):
    x = random_array(5, (20, 300))
    wt = random_array(6, (300, 48))
    x[3, 7], x[9, 0] = np.nan, np.inf
    y = _core.linear_forward(x, wt)
    assert np.all(np.isnan(y[3])) and not np.any(np.isfinite(y[9]))
    assert np.all(np.isfinite(np.delete(y, [3, 9], axis=0)))


@needs_bf16
def test_results_do_not_depend_on_the_thread_count(bf16, restore_threads):
    x, wt = random_array(7, (100, 784)), random_array(8, (784, 256))
    dy = random_array(9, (100, 256))
    runs = []
    for threads in [1, 2, 3]:
        restore_threads.set_num_threads(threads)
        runs.append((_core.linear_forward(x, wt), *_core.linear_backward(dy, x, wt)))
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------- training
@needs_bf16
def test_an_mlp_trains_as_well_in_bf16(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    x = ((x_train[:6000].reshape(-1, 784) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    xt = ((x_test[:2000].reshape(-1, 784) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    results = {}
    for precision in ["float32", "bf16"]:
        nf.set_precision(precision)
        try:
            nf.seed(0)
            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
            model.compile(optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                          nn.CrossEntropyLoss(), ["accuracy"])
            history = model.fit(x, y_train[:6000], epochs=2, batch_size=100, verbose=0)
            results[precision] = (history.history["loss"][-1],
                                  model.evaluate(xt, y_test[:2000])["accuracy"],
                                  model.parameters()[0].data.copy())
        finally:
            nf.set_precision("float32")
    (loss32, acc32, w32), (loss16, acc16, w16) = results["float32"], results["bf16"]
    assert acc32 >= 0.9 and abs(acc16 - acc32) <= 0.01, (acc32, acc16)
    assert abs(loss16 - loss32) <= 0.1 * loss32, (loss32, loss16)
    assert not np.array_equal(w16, w32)  # bf16 did run: the weights took another path
