"""NaN and inf propagate through every kernel as through PyTorch: property tests draw arrays
holding NaN, +inf and -inf among finite values (and zeros, for the zero-skipping paths) and
compare the CPU backend with the NumPy reference (NaN, +inf and -inf in the same places, the
finite values within rounding), with PyTorch where it is importable (ReLU, max pooling,
cross-entropy, Linear + ReLU), and the copies of the kernels and thread counts with one another;
end to end, a model fed NaN predicts NaN and fit on NaN inputs raises FloatingPointError."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfast as nf
from nnfast import nn, optim
from nnfast.backend import reference as ref
from conftest import seeds

core = pytest.importorskip("nnfast._core")
cpu = pytest.importorskip("nnfast.backend.cpu")

SPECIALS = np.array([np.nan, np.inf, -np.inf], np.float32)


@pytest.fixture(autouse=True)
def quiet_numpy():
    """0 * inf and inf - inf in the reference and in torch are the point here, not a warning."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@st.composite
def nonfinite(draw, shape, zeros=0.0):
    """Standard-normal float32 values of `shape` with a drawn share of them replaced by NaN, +inf
    and / or -inf (a drawn non-empty choice of the three), and a share `zeros` of exact zeros
    (both signs) before that."""
    seed = draw(seeds)
    kinds = SPECIALS[sorted(draw(st.sets(st.sampled_from([0, 1, 2]), min_size=1)))]
    share = draw(st.sampled_from([0.01, 0.05, 0.2, 0.6]))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if zeros:
        z = rng.random(shape) < zeros
        x[z] = np.where(rng.random(int(z.sum())) < 0.5, 0.0, -0.0)
    hit = rng.random(shape) < share
    x[hit] = kinds[rng.integers(0, len(kinds), int(hit.sum()))]
    return x


def finite(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_same(got, want, rtol=2e-5, atol=2e-6):
    """NaN, +inf and -inf in the same places; the finite values within float rounding."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(want), want, 0))
    both = np.isfinite(got) & np.isfinite(want)
    np.testing.assert_array_equal(both, np.isfinite(want))
    np.testing.assert_allclose(got[both], want[both], rtol=rtol, atol=atol)


def assert_all_same(got, want, **kw):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_same(a, b, **kw)


# ------------------------------------------------------------------------------ activations
@given(nonfinite((7, 37), zeros=0.1), nonfinite((7, 37)), st.sampled_from([0.0, 0.5, -1.0]))
def test_relu_and_threshold_keep_nan_exactly_as_the_reference(x, dy, threshold):
    """Exact, down to the sign of zero: x <= 0 (-0 included) gives +0, NaN stays NaN, and the
    gradient passes where not x <= 0, NaN inputs included."""
    for got, want in [(core.relu_forward(x), ref.relu_forward(x)),
                      (core.relu_backward(dy, x), ref.relu_backward(dy, x)),
                      (core.threshold_forward(x, threshold, -2.0),
                       ref.threshold_forward(x, threshold, -2.0)),
                      (core.threshold_backward(dy, x, threshold),
                       ref.threshold_backward(dy, x, threshold))]:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    assert np.isnan(core.relu_forward(x)[np.isnan(x)]).all()
    passed = core.relu_backward(np.ones_like(x), x)
    np.testing.assert_array_equal(passed, ~(x <= 0))


def test_relu_layer_keeps_nan():
    y = nn.ReLU()(np.array([[np.nan, -1, 1]], np.float32))
    assert np.isnan(y[0, 0]) and y[0, 1] == 0 and y[0, 2] == 1


@given(nonfinite((5, 41), zeros=0.1), nonfinite((5, 41)))
def test_elementwise_activations_match_the_reference(x, dy):
    y_sig, y_tanh = core.sigmoid_forward(x), core.tanh_forward(x)
    assert_same(y_sig, ref.sigmoid_forward(x))
    assert_same(y_tanh, ref.tanh_forward(x))
    assert_same(core.sigmoid_backward(dy, y_sig), ref.sigmoid_backward(dy, y_sig))
    assert_same(core.tanh_backward(dy, y_tanh), ref.tanh_backward(dy, y_tanh))
    np.testing.assert_array_equal(core.leaky_relu_forward(x, 0.1), ref.leaky_relu_forward(x, 0.1))
    np.testing.assert_array_equal(core.leaky_relu_backward(dy, x, 0.1),
                                  ref.leaky_relu_backward(dy, x, 0.1))


@given(nonfinite((6, 13)), nonfinite((6, 13)))
def test_softmax_rows_with_a_nan_are_nan(x, dy):
    for fwd, bwd in [("softmax_forward", "softmax_backward"),
                     ("log_softmax_forward", "log_softmax_backward")]:
        y = getattr(core, fwd)(x)
        assert_same(y, getattr(ref, fwd)(x), rtol=1e-4, atol=1e-5)
        bad = np.isnan(x).any(axis=1) | np.isposinf(x).any(axis=1) | np.isneginf(x).all(axis=1)
        assert np.isnan(y[bad]).all()           # NaN or +inf in a row: the whole row NaN
        assert_same(getattr(core, bwd)(dy, y), getattr(ref, bwd)(dy, y), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ pooling
@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(k, 12)), draw(st.integers(k, 40))
    return (2, 3, h, w), k, s, p


@given(pool_cases(), st.data())
def test_max_and_avg_pooling_match_the_reference(case, data):
    """The window maximum takes a NaN over (the last NaN: PyTorch's argmax); a window of -inf
    takes its first element in the image; the gradient goes where the argmax says."""
    shape, k, s, p = case
    for x in (data.draw(nonfinite(shape)), data.draw(nonfinite((2, 3, 2 * shape[2], 40)))):
        args = (k, s, p) if x.shape == shape else (2,)        # the second: the 2 x 2 path
        y, argmax = core.maxpool2d_forward(x, *args)
        y_ref, argmax_ref = ref.maxpool2d_forward(x, *args)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(argmax, argmax_ref)
        dy = data.draw(nonfinite(y.shape))
        assert_same(core.maxpool2d_backward(dy, argmax, x.shape, *args),
                    ref.maxpool2d_backward(dy, argmax_ref, x.shape, *args))
        assert_same(core.avgpool2d_forward(x, *args), ref.avgpool2d_forward(x, *args))
        assert_same(core.avgpool2d_backward(dy, x.shape, *args),
                    ref.avgpool2d_backward(dy, x.shape, *args))


# ------------------------------------------------------------------------------ fused paths
@given(nonfinite((64, 100), zeros=0.9), nonfinite((100, 40)), st.booleans(),
       st.sampled_from(["relu", "sigmoid", "none"]))
def test_linear_with_its_activation_and_the_zero_skipping_path(x, wt, finite_weight, act):
    """x mostly zeros takes the zero-skipping path (NaN and inf are nonzeros: they reach the
    output); a non-finite weight sends the product to the GEMM, whose 0 * NaN is PyTorch's."""
    if finite_weight:
        wt = np.nan_to_num(wt, nan=0.5, posinf=2.0, neginf=-2.0)
    b = finite(1, 40)
    y = core.linear_forward(x, wt, b, activation=act)
    assert_same(y, ref.linear_forward(x, wt, b, activation=act), rtol=1e-4, atol=1e-4)
    assert_same(core.linear_forward(np.ascontiguousarray(x[:3]), wt, b, activation=act),
                y[:3], rtol=1e-4, atol=1e-4)          # 3 rows: the GEMM, the same NaNs
    dy = finite(2, 64, 40)
    dy[5, 7] = np.nan
    assert_all_same(core.linear_backward(dy, x, wt, dx_activation=act),
                    ref.linear_backward(dy, x, wt, dx_activation=act), rtol=1e-4, atol=1e-4)
    clean = np.nan_to_num(dy)
    assert_all_same(core.linear_backward(clean, x, wt), ref.linear_backward(clean, x, wt),
                    rtol=1e-4, atol=1e-4)             # finite dy: dW over x's nonzeros only


@given(nonfinite((2, 2, 10, 10)), st.sampled_from([(2, None, 0), (3, 1, 1), (2, 1, 0)]),
       st.booleans())
def test_conv_relu_maxpool_matches_the_reference(x, pool, finite_input):
    """A NaN in x or w reaches the pooled output; with x and w finite the backward skips dy's
    zeros and still carries its NaNs; otherwise it takes the dense products (0 * NaN = NaN)."""
    w, b = finite(3, 4, 2, 3, 3), finite(4, 4)
    if finite_input:
        x = np.nan_to_num(x, nan=0.0, posinf=3.0, neginf=-3.0)
    else:
        w[1, 0, 1, 1] = np.nan
    y, argmax = core.conv2d_relu_maxpool_forward(x, w, b, 1, 0, *pool)
    y_ref, argmax_ref = ref.conv2d_relu_maxpool_forward(x, w, b, 1, 0, *pool)
    assert_same(y, y_ref, rtol=1e-4, atol=1e-5)
    nan = np.isnan(y_ref)                    # the last NaN of the window, exactly
    np.testing.assert_array_equal(argmax[nan], argmax_ref[nan])
    g = finite(5, *y.shape)
    g.reshape(-1)[::9] = np.nan
    assert_all_same(core.conv2d_relu_maxpool_backward(g, y, argmax, x, w, 1, 0, *pool),
                    ref.conv2d_relu_maxpool_backward(g, y, argmax, x, w, 1, 0, *pool),
                    rtol=1e-3, atol=1e-4)


@given(nonfinite((2, 3, 8, 8), zeros=0.2), nonfinite((2, 3, 4, 4)))
def test_relu_then_maxpool_step_on_both_backends(x, g):
    """The fused ReLU -> MaxPool2d step masks the pooled gradient with the pooled output: a NaN
    maximum passes it, as the ReLU passes it at a NaN input."""
    results = []
    for device in ("cpu", "reference"):
        model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)).to(device)
        results.append((model(x), model.backward(g)))
    assert_same(results[0][0], results[1][0])
    assert_same(results[0][1], results[1][1])
    assert np.isnan(results[0][0][np.isnan(x).reshape(2, 3, 4, 2, 4, 2).any(axis=(3, 5))]).all()
