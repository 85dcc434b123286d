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
    which = draw(st.integers(1, 7))                   # a bit for each of NaN, +inf, -inf
    kinds = SPECIALS[[i for i in range(3) if which >> i & 1]]
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
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0),
                                  np.where(np.isinf(want), want, 0))
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


# ------------------------------------------------------------------------------ losses
def labels_for(seed, n, c):
    return np.random.default_rng(seed).integers(0, c, n).astype(np.int64)


@given(nonfinite((9, 7)), seeds)
def test_cross_entropy_a_nan_logit_gives_a_nan_loss_and_a_nan_row(z, seed):
    labels = labels_for(seed, 9, 7)
    loss, probs = core.cross_entropy_forward(z, labels)
    loss_ref, probs_ref = ref.cross_entropy_forward(z, labels)
    assert_same(loss, loss_ref, rtol=1e-5, atol=1e-6)
    assert_same(probs, ref.softmax_forward(z), rtol=1e-4, atol=1e-6)
    d = core.cross_entropy_backward(probs, labels, 0.5)
    assert_same(d, ref.cross_entropy_backward(probs_ref, labels, 0.5), rtol=1e-4, atol=1e-6)
    nan_rows = np.isnan(z).any(axis=1)
    assert np.isnan(d[nan_rows]).all()
    if nan_rows.any():
        assert np.isnan(loss)
    clean = np.isfinite(z).all(axis=1)
    assert np.isfinite(d[clean]).all()                 # the other rows keep their gradients
    targets = np.abs(finite(seed % 1000, 9, 7)) * (finite(seed % 999, 9, 7) > 0)
    s_loss, s_probs = core.cross_entropy_soft_forward(z, targets)
    s_loss_ref, _ = ref.cross_entropy_soft_forward(z, targets)
    assert_same(s_loss, s_loss_ref, rtol=1e-5, atol=1e-6)
    assert_same(core.cross_entropy_soft_backward(s_probs, targets),
                ref.cross_entropy_soft_backward(s_probs, targets), rtol=1e-4, atol=1e-6)


@given(nonfinite((8, 6)), nonfinite((8, 6)), seeds)
def test_nll_mse_l1_bce_match_the_reference(a, b, seed):
    labels = labels_for(seed, 8, 6)
    assert_same(core.nll_forward(a, labels), ref.nll_forward(a, labels))
    p = ref.sigmoid_forward(a)                          # probabilities, NaN kept, inf -> 1 / 0
    t = np.clip(np.abs(b), 0, 1)
    cases = [("mse", a, b), ("l1", a, b), ("bce", p, t), ("bce_with_logits", a, t)]
    for name, u, v in cases:
        assert_same(getattr(core, f"{name}_forward")(u, v), getattr(ref, f"{name}_forward")(u, v),
                    rtol=1e-5, atol=1e-6)
        assert_same(getattr(core, f"{name}_backward")(u, v, 2.0),
                    getattr(ref, f"{name}_backward")(u, v, 2.0), rtol=1e-4, atol=1e-6)
    assert np.isnan(core.mse_backward(a, b)[np.isnan(a) | np.isnan(b)]).all()


# ------------------------------------------------------------------------------ dropout, batchnorm
@given(nonfinite((3, 1000)), nonfinite((3, 1000)), st.sampled_from([0.0, 0.3, 0.9]), seeds)
def test_dropout_keeps_nan_where_it_drops_it(x, dy, p, seed):
    """Dropped NaN and inf give NaN (PyTorch's x * 0); dropped finite values 0."""
    y, mask = core.dropout_forward(x, p, seed)
    y_ref, mask_ref = ref.dropout_forward(x, p, seed)
    np.testing.assert_array_equal(mask, mask_ref)
    assert_same(y, y_ref, rtol=1e-6, atol=0)          # 1 / (1 - p) rounded in float32 or not
    assert np.isnan(y[~np.isfinite(x) & (mask == 0)]).all()
    assert_same(core.dropout_backward(dy, mask, p), ref.dropout_backward(dy, mask_ref, p),
                rtol=1e-6, atol=0)


@given(nonfinite((4, 3, 5, 5)), nonfinite((4, 3, 5, 5)), st.booleans())
def test_batchnorm_a_nan_poisons_its_channel_only(x, dy, training):
    gamma, beta = finite(1, 3), finite(2, 3)
    outs = []
    for be in (core, ref):
        rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
        y, mean, invstd = be.batchnorm_forward(x, gamma, beta, rm, rv, training)
        grads = be.batchnorm_backward(dy, x, gamma, mean, invstd, training=training)
        outs.append((y, mean, invstd, rm, rv) + tuple(grads))
    assert_all_same(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    if training:
        poisoned = ~np.isfinite(x).all(axis=(0, 2, 3))
        assert np.isnan(outs[0][0][:, poisoned]).all()
        assert np.isfinite(outs[0][0][:, ~poisoned]).all()


# ------------------------------------------------------------------------------ PyTorch
@given(nonfinite((6, 50), zeros=0.1), nonfinite((6, 50)))
def test_relu_as_pytorch(x, dy):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    torch.relu(t).backward(torch.tensor(dy))
    np.testing.assert_array_equal(core.relu_forward(x), torch.relu(t).detach().numpy())
    np.testing.assert_array_equal(core.relu_backward(dy, x), t.grad.numpy())


@given(pool_cases(), st.data())
def test_maxpool_as_pytorch(case, data):
    """Values, argmax (the last NaN of a window, the first element in the image of a window of
    -inf) and the gradient, as PyTorch's CPU max pooling."""
    torch = pytest.importorskip("torch")
    shape, k, s, p = case
    x = data.draw(nonfinite(shape))
    dy_shape = core.maxpool2d_forward(x, k, s, p)[0].shape
    dy = data.draw(nonfinite(dy_shape))
    t = torch.tensor(x, requires_grad=True)
    y_t, idx_t = torch.nn.functional.max_pool2d(t, k, s, p, return_indices=True)
    y_t.backward(torch.tensor(dy))
    y, argmax = core.maxpool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(argmax, idx_t.numpy())
    assert_same(core.maxpool2d_backward(dy, argmax, shape, k, s, p), t.grad.numpy())


@given(nonfinite((9, 7)), seeds)
def test_cross_entropy_as_pytorch(z, seed):
    torch = pytest.importorskip("torch")
    labels = labels_for(seed, 9, 7)
    t = torch.tensor(z, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    loss_t.backward()
    loss, probs = core.cross_entropy_forward(z, labels)
    assert_same(loss, loss_t.item(), rtol=1e-5, atol=1e-6)
    assert_same(core.cross_entropy_backward(probs, labels), t.grad.numpy(), rtol=1e-4, atol=1e-6)


@given(st.sampled_from([0.0, 0.9]).flatmap(lambda zeros: nonfinite((64, 100), zeros=zeros)),
       st.booleans())
def test_linear_relu_layers_as_pytorch(x, nan_weight):
    """nnfast's Linear -> ReLU (one fused step; the zero-skipping path for the mostly-zero x)
    against torch's: outputs, the input gradient and the parameter gradients."""
    torch = pytest.importorskip("torch")
    nf.seed(7)
    model = nn.Sequential(nn.Linear(100, 40), nn.ReLU())
    linear = model[0]
    if nan_weight:
        linear.weight.data[3, 5] = np.nan
    t_linear = torch.nn.Linear(100, 40)
    with torch.no_grad():
        t_linear.weight.copy_(torch.tensor(np.array(linear.weight.data)))
        t_linear.bias.copy_(torch.tensor(np.array(linear.bias.data)))
    t_x = torch.tensor(x, requires_grad=True)
    g = finite(8, 64, 40)
    g[2, 3] = np.nan
    y_t = torch.relu(t_linear(t_x))
    y_t.backward(torch.tensor(g))
    model.zero_grad()
    y = model(x)
    dx = model.backward(g)
    assert_same(y, y_t.detach().numpy(), rtol=1e-4, atol=1e-4)
    assert_same(dx, t_x.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert_same(linear.weight.grad, t_linear.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert_same(linear.bias.grad, t_linear.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ every copy
def kernel_outputs(rng):
    """Kernel results on fixed non-finite inputs, past the sizes that split work across
    threads (65,536 elements, 32,768 pooled ones)."""
    def f(*shape, zeros=0.0):
        x = rng.standard_normal(shape).astype(np.float32)
        x[rng.random(shape) < zeros] = 0.0
        hit = rng.random(shape) < 0.05
        x[hit] = SPECIALS[rng.integers(0, 3, int(hit.sum()))]
        return x

    x, dy = f(300, 300), f(300, 300)
    out = {"relu": core.relu_forward(x), "relu_bwd": core.relu_backward(dy, x),
           "threshold": core.threshold_forward(x, 0.5, -1.0),
           "sigmoid": core.sigmoid_forward(x), "softmax": core.softmax_forward(x),
           "dropout": core.dropout_forward(x, 0.5, 3)[0]}
    xp = f(4, 8, 30, 31)
    for args in [(2,), (3, 1, 1), (3, 2, 1)]:
        y, am = core.maxpool2d_forward(xp, *args)
        out[f"maxpool_{args}"], out[f"maxpool_argmax_{args}"] = y, am
    xs, wt = f(128, 784, zeros=0.85), f(784, 64)
    out["linear_sparse"] = core.linear_forward(xs, np.nan_to_num(wt), None, activation="relu")
    out["linear_nan_w"] = core.linear_forward(xs, wt, None, activation="relu")
    xc, w = f(4, 3, 28, 28), rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    y, am = core.conv2d_relu_maxpool_forward(xc, w, None)
    out["crm"], out["crm_argmax"] = y, am
    out["crm_dx"] = core.conv2d_relu_maxpool_backward(f(*y.shape), y, am, xc, w)[0]
    out["ce"] = core.cross_entropy_forward(x[:50, :10].copy(), np.zeros(50, np.int64))[1]
    return out


def test_every_copy_and_thread_count_gives_the_same_non_finite_results(restore_threads):
    """Each copy of the kernels, on one thread and two: the same bits for any thread count; the
    same NaN and inf everywhere across copies, the elementwise results, maxima and argmaxes
    exactly (the others within float rounding: the copies sum in different orders)."""
    before = core.isa()
    copies = [name for name, ok in core.kernel_copies() if ok]
    results = {}
    try:
        for isa in copies:
            assert core.select_isa(isa)
            for threads in (1, 2):
                restore_threads.set_num_threads(threads)
                results[isa, threads] = kernel_outputs(np.random.default_rng(11))
    finally:
        core.select_isa(before)
    first = results[copies[0], 1]
    exact = ("relu", "threshold", "dropout", "maxpool")
    for (isa, threads), outs in results.items():
        for name, want in first.items():
            got = outs[name]
            if threads == 2:                           # against the same copy on one thread
                np.testing.assert_array_equal(got, results[isa, 1][name], err_msg=name)
            elif name == "crm_argmax":                 # ties within rounding may differ
                nan = np.isnan(first["crm"])
                np.testing.assert_array_equal(got[nan], want[nan], err_msg=f"{isa} {name}")
            elif name.startswith(exact):
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} {name}")
            else:
                assert_same(got, want, rtol=2e-4, atol=2e-4 * max(1.0, np.nanmax(
                    np.abs(np.where(np.isfinite(want), want, 0)))))


# ------------------------------------------------------------------------------ end to end
def test_a_model_fed_nan_predicts_nan_and_fit_refuses_it():
    """NaN inputs reach the predictions (through ReLU, the fused conv + ReLU + pool and
    Linear + ReLU steps) instead of a finite number, and fit stops at the NaN loss."""
    nf.seed(0)
    model = nf.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 16), nn.ReLU(), nn.Linear(16, 3))
    model.compile(optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    x = finite(3, 20, 1, 8, 8)
    x[5, 0, 2, 3] = np.nan
    x[11, 0, 6, 6] = -np.inf
    out = model.predict(x)
    assert np.isnan(out[5]).all()
    assert not np.isfinite(out[11]).all()
    assert np.isfinite(np.delete(out, [5, 11], axis=0)).all()
    with pytest.raises(FloatingPointError, match="the loss became nan"):
        model.fit(x, labels_for(0, 20, 3), epochs=1, batch_size=20, shuffle=False, verbose=0)
