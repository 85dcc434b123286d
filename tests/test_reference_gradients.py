"""The NumPy reference's backward functions equal central finite differences (float64).

Each check draws a random upstream gradient G, treats L(x) = sum(G * forward(x)) as a scalar
function, and compares backward(G) with (L(x + eps e_i) - L(x - eps e_i)) / 2 eps for every i.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from conftest import random_array, seeds
from nnfast import reference as ref

EPS = 1e-6


def numeric_grad(scalar_fn, x):
    """Central differences of scalar_fn at x (float64), element by element."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = scalar_fn(x)
        flat[i] = keep - EPS
        down = scalar_fn(x)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * EPS)
    return grad


def assert_grad(analytic, scalar_fn, x):
    np.testing.assert_allclose(analytic, numeric_grad(scalar_fn, x), rtol=1e-5, atol=1e-6)


def f64(seed, *shape, scale=1.0):
    return random_array(seed, shape, np.float64, scale)


@given(seeds, st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans(),
       st.booleans())
def test_matmul(seed, m, n, k, ta, tb):
    a = f64(seed, *((k, m) if ta else (m, k)))
    b = f64(seed + 1, *((n, k) if tb else (k, n)))
    g = f64(seed + 2, m, n)
    da, db = ref.matmul_backward(g, a, b, ta, tb)
    assert_grad(da, lambda a_: np.sum(g * ref.matmul_forward(a_, b, ta, tb)), a)
    assert_grad(db, lambda b_: np.sum(g * ref.matmul_forward(a, b_, ta, tb)), b)


@given(seeds, st.integers(1, 4), st.integers(1, 5), st.integers(1, 4))
def test_linear(seed, batch, n_in, n_out):
    x, wt, b = f64(seed, batch, n_in), f64(seed + 1, n_in, n_out), f64(seed + 2, n_out)
    g = f64(seed + 3, batch, n_out)
    dx, dwt, db = ref.linear_backward(g, x, wt)
    assert_grad(dx, lambda x_: np.sum(g * ref.linear_forward(x_, wt, b)), x)
    assert_grad(dwt, lambda w_: np.sum(g * ref.linear_forward(x, w_, b)), wt)
    assert_grad(db, lambda b_: np.sum(g * ref.linear_forward(x, wt, b_)), b)


@st.composite
def conv_cases(draw):
    n, c, oc = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, h + 2 * ph)), draw(st.integers(1, w + 2 * pw))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (oc, c, kh, kw), (sh, sw), (ph, pw)


@given(seeds, conv_cases())
def test_conv2d(seed, case):
    xs, ws, stride, pad = case
    x, w, b = f64(seed, *xs), f64(seed + 1, *ws), f64(seed + 2, ws[0])
    y = ref.conv2d_forward(x, w, b, stride, pad)
    g = f64(seed + 3, *y.shape)
    dx, dw, db = ref.conv2d_backward(g, x, w, stride, pad)
    assert_grad(dx, lambda x_: np.sum(g * ref.conv2d_forward(x_, w, b, stride, pad)), x)
    assert_grad(dw, lambda w_: np.sum(g * ref.conv2d_forward(x, w_, b, stride, pad)), w)
    assert_grad(db, lambda b_: np.sum(g * ref.conv2d_forward(x, w, b_, stride, pad)), b)


@st.composite
def pool_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw)


@given(seeds, pool_cases())
def test_maxpool2d(seed, case):
    shape, k, s, p = case
    # Distinct values: no ties, so the maximum (and the gradient) is well defined.
    x = np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    y, argmax = ref.maxpool2d_forward(x, k, s, p)
    g = f64(seed + 1, *y.shape)
    dx = ref.maxpool2d_backward(g, argmax, shape, k, s, p)
    assert_grad(dx, lambda x_: np.sum(g * ref.maxpool2d_forward(x_, k, s, p)[0]), x)


@given(seeds, pool_cases())
def test_avgpool2d(seed, case):
    shape, k, s, p = case
    x = f64(seed, *shape)
    y = ref.avgpool2d_forward(x, k, s, p)
    g = f64(seed + 1, *y.shape)
    dx = ref.avgpool2d_backward(g, shape, k, s, p)
    assert_grad(dx, lambda x_: np.sum(g * ref.avgpool2d_forward(x_, k, s, p)), x)


# Activations: (forward, backward, backward takes the output rather than the input).
ACTIVATIONS = {
    "relu": (ref.relu_forward, ref.relu_backward, False),
    "leaky_relu": (lambda x: ref.leaky_relu_forward(x, 0.1),
                   lambda g, x: ref.leaky_relu_backward(g, x, 0.1), False),
    "sigmoid": (ref.sigmoid_forward, ref.sigmoid_backward, True),
    "tanh": (ref.tanh_forward, ref.tanh_backward, True),
    "threshold": (lambda x: ref.threshold_forward(x, 0.3, -2.0),
                  lambda g, x: ref.threshold_backward(g, x, 0.3), False),
    "softmax": (ref.softmax_forward, ref.softmax_backward, True),
    "log_softmax": (ref.log_softmax_forward, ref.log_softmax_backward, True),
}


@given(seeds, st.sampled_from(sorted(ACTIVATIONS)), st.integers(1, 4), st.integers(1, 6))
def test_activation(seed, name, rows, cols):
    forward, backward, from_output = ACTIVATIONS[name]
    x = f64(seed, rows, cols, scale=3.0)
    # Keep clear of the kinks (0 for relu-like, 0.3 for threshold) so differences are smooth.
    x = np.where(np.abs(x) < 0.05, 0.5, x)
    x = np.where(np.abs(x - 0.3) < 0.05, 0.6, x)
    g = f64(seed + 1, rows, cols)
    dx = backward(g, forward(x) if from_output else x)
    assert_grad(dx, lambda x_: np.sum(g * forward(x_)), x)


def _labels(seed, n, c):
    return np.random.default_rng(seed).integers(0, c, n)


def _distribution(seed, n, c):
    t = np.random.default_rng(seed).random((n, c))
    return t / t.sum(axis=1, keepdims=True)


@given(seeds, st.integers(1, 4), st.integers(1, 6), st.floats(0.1, 3.0))
def test_classification_losses(seed, n, c, scale):
    z = f64(seed, n, c, scale=3.0)
    y = _labels(seed + 1, n, c)
    _, probs = ref.cross_entropy_forward(z, y)
    assert_grad(ref.cross_entropy_backward(probs, y, scale),
                lambda z_: scale * ref.cross_entropy_forward(z_, y)[0], z)
    t = _distribution(seed + 2, n, c)
    assert_grad(ref.cross_entropy_soft_backward(probs, t, scale),
                lambda z_: scale * ref.cross_entropy_soft_forward(z_, t)[0], z)
    assert_grad(ref.nll_backward(y, c, scale, dtype=np.float64),
                lambda z_: scale * ref.nll_forward(z_, y), z)


@given(seeds, st.integers(1, 4), st.integers(1, 5), st.floats(0.1, 3.0))
def test_elementwise_losses(seed, n, d, scale):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, (n, d))
    t = rng.random((n, d))
    pred = p + np.where(np.abs(p - t) < 0.01, 0.05, 0.0)  # away from the kink of |p - t|
    for name in ("mse", "l1", "bce", "bce_with_logits"):
        forward, backward = getattr(ref, name + "_forward"), getattr(ref, name + "_backward")
        assert_grad(backward(pred, t, scale), lambda p_: scale * forward(p_, t), pred)


@given(seeds, st.integers(1, 5), st.integers(1, 6), st.floats(0.0, 0.9))
def test_dropout(seed, n, d, p):
    x = f64(seed, n, d)
    y, mask = ref.dropout_forward(x, p, seed)
    g = f64(seed + 1, n, d)
    dx = ref.dropout_backward(g, mask, p)
    assert_grad(dx, lambda x_: np.sum(g * x_ * mask / (1 - p)), x)
    np.testing.assert_allclose(y, x * mask / (1 - p), rtol=1e-12)


@given(seeds, st.integers(1, 3), st.integers(1, 3), st.sampled_from([(), (3,), (2, 2)]),
       st.booleans())
def test_batchnorm(seed, n, c, spatial, training):
    x = f64(seed, n + 1, c, *spatial)                       # two or more values per channel
    gamma, beta = f64(seed + 1, c), f64(seed + 2, c)
    rm, rv = f64(seed + 3, c), np.abs(f64(seed + 4, c)) + 0.5
    g = f64(seed + 5, *x.shape)

    def forward(x_, gamma_=gamma, beta_=beta):
        return ref.batchnorm_forward(x_, gamma_, beta_, rm.copy(), rv.copy(), training)[0]

    _, mean, invstd = ref.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    dx, dgamma, dbeta = ref.batchnorm_backward(g, x, gamma, mean, invstd, training=training)
    assert_grad(dx, lambda x_: np.sum(g * forward(x_)), x)
    assert_grad(dgamma, lambda w_: np.sum(g * forward(x, w_)), gamma)
    assert_grad(dbeta, lambda b_: np.sum(g * forward(x, gamma, b_)), beta)
