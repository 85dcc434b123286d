"""Every _core kernel, forward and backward, equals the NumPy reference (float32, rtol ~1e-4) on
shapes and values drawn by hypothesis, edge cases included; results do not depend on threads."""
import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import random_array, seeds
from test_reference_gradients import ACTIVATIONS, conv_cases, pool_cases

core = pytest.importorskip("nnfast._core")
from nnfast import reference as ref  # noqa: E402
from nnfast.nn._arrays import aligned_zeros  # noqa: E402


def assert_close(actual, expected, rtol=1e-4):
    """float32 kernels against the reference: relative to the size of the values involved."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * scale)


def assert_all_close(actual, expected):
    for a, e in zip(actual, expected):
        assert (a is None) == (e is None)
        if a is not None:
            assert_close(a, e)


def f32(seed, *shape, scale=1.0):
    return random_array(seed, shape, np.float32, scale)


# ------------------------------------------------------------------------------------- dense
@st.composite
def gemm_cases(draw):
    m, n, k = draw(st.integers(1, 70)), draw(st.integers(1, 70)), draw(st.integers(1, 300))
    return m, n, k, draw(st.booleans()), draw(st.booleans())


@given(seeds, gemm_cases(), st.floats(-2, 2), st.sampled_from([0.0, 1.0, -0.5]))
def test_sgemm(seed, case, alpha, beta):
    m, n, k, ta, tb = case
    a = f32(seed, *((k, m) if ta else (m, k)))
    b = f32(seed + 1, *((n, k) if tb else (k, n)))
    c = f32(seed + 2, m, n)
    expected = ref.sgemm(a, b, ta, tb, alpha, beta, c.copy())
    assert_close(core.sgemm(a, b, ta, tb, alpha, beta, c), expected)


def test_sgemm_large_blocks():
    """Sizes past every cache block (KC, MC, NC) and every tile edge."""
    a, b = f32(1, 300, 700), f32(2, 700, 2100)
    assert_close(core.sgemm(a, b), a.astype(np.float64) @ b)


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,n,k", [(16, 25, 20000), (16, 25, 57600), (64, 128, 9216)])
def test_sgemm_long_k_split_is_correct_and_thread_independent(restore_threads, ta, tb, m, n, k):
    """Small outputs with K >= 8192 are summed in fixed K chunks (a convolution's dW, the Linear
    9216-128 of PyTorch's example network), each on one of the threads, then added row by row
    (in parallel for the larger output); K = 57600 (LeNet's first layer) leaves a last chunk of
    256, a product too small for two threads, multiplied by whichever thread of the chunks' team
    takes it."""
    b, c = f32(2, *((n, k) if tb else (k, n))), f32(3, m, n)
    same_a, outputs = f32(1, *((k, m) if ta else (m, k))), []
    for threads in (2, 1, 3):   # two first: no earlier call's chunk sums left in the workspace
        restore_threads.set_num_threads(threads)
        a = f32(k + threads, *same_a.shape)   # new operands for each: no stale sums pass either
        out = core.sgemm(a, b, ta, tb, 0.5, 0.25, c.copy())
        assert_close(out, 0.5 * (_op(a, ta).astype(np.float64) @ _op(b, tb)) + 0.25 * c)
        outputs.append(core.sgemm(same_a, b, ta, tb, 0.5, 0.25, c.copy()))
    for other in outputs[1:]:   # the same operands on every thread count: the same bits
        np.testing.assert_array_equal(outputs[0], other)


def _op(x, trans):
    return x.T if trans else x


@pytest.mark.parametrize("m,n,k", [
    (100, 100, 784),   # unpacked path, threads split rows (an MLP's first layer)
    (8, 300, 50),      # unpacked path, threads split 32-column blocks (a single row band)
    (40, 700, 1000),   # unpacked path for few rows although op(B) is past 1 MB
    (130, 700, 600),   # packed (GotoBLAS) path
    (100, 10, 100),    # with trans_a, taken as (op(B)^T A)^T (an output layer's dW); without,
                       # as dot products of A's rows with op(B)'s columns (its forward)
    (1000, 10, 784),   # dot products, the threads splitting the rows (softmax regression)
    (70, 1, 37),       # dot products for a single column, K not a multiple of 16
    (200, 256, 100),   # op(B)'s rows 256 floats apart: copied into a panel first (an L1 alias)
])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_sgemm_paths_are_correct_and_thread_independent(restore_threads, m, n, k, ta, tb):
    a = f32(1, *((k, m) if ta else (m, k)))
    b = f32(2, *((n, k) if tb else (k, n)))
    c = f32(3, m, n)
    expected = -1.5 * (_op(a, ta).astype(np.float64) @ _op(b, tb)) + 0.5 * c
    outputs = []
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        outputs.append(core.sgemm(a, b, ta, tb, -1.5, 0.5, c.copy()))
    assert_close(outputs[0], expected)
    for other in outputs[1:]:
        np.testing.assert_array_equal(outputs[0], other)


@pytest.mark.parametrize("m,n,k,ta", [(5, 6, 4, False), (40, 10, 30, True)])
def test_sgemm_beta_zero_ignores_garbage(m, n, k, ta):
    a, b = f32(1, *((k, m) if ta else (m, k))), f32(2, k, n)
    c = np.full((m, n), np.nan, dtype=np.float32)
    assert_close(core.sgemm(a, b, ta, beta=0.0, c=c), _op(a, ta) @ b)


@given(seeds, gemm_cases())
def test_matmul(seed, case):
    m, n, k, ta, tb = case
    a = f32(seed, *((k, m) if ta else (m, k)))
    b = f32(seed + 1, *((n, k) if tb else (k, n)))
    assert_close(core.matmul_forward(a, b, ta, tb), ref.matmul_forward(a, b, ta, tb))
    dc = f32(seed + 2, m, n)
    assert_all_close(core.matmul_backward(dc, a, b, ta, tb), ref.matmul_backward(dc, a, b, ta, tb))


@given(seeds, st.integers(1, 64), st.integers(1, 200), st.integers(1, 40), st.booleans())
def test_linear(seed, batch, n_in, n_out, bias):
    x, wt = f32(seed, batch, n_in), f32(seed + 1, n_in, n_out)   # wt: the weight transposed
    b = f32(seed + 2, n_out) if bias else None
    assert_close(core.linear_forward(x, wt, b), ref.linear_forward(x, wt, b))
    dy = f32(seed + 3, batch, n_out)
    assert_all_close(core.linear_backward(dy, x, wt), ref.linear_backward(dy, x, wt))


@pytest.mark.parametrize("density", [1.0, 0.15])
def test_linear_with_padded_weight_rows(density):
    """wt (IN, LD) with rows padded past out_features, as the Linear layer stores it: the padding
    is read by no product and written by no gradient."""
    x = sparse_input(1, 40, 300, density)
    wt = f32(2, 300, 48)
    wt[:, 37:] = np.nan                                  # padding: must never be used
    b, dy = f32(3, 37), f32(4, 40, 37)
    y = core.linear_forward(x, wt, b, out_features=37)
    assert_close(y, ref.linear_forward(x, wt, b, out_features=37))
    dwt0 = np.full_like(wt, 7.0)
    dx, dwt, db = core.linear_backward(dy, x, wt, dwt=dwt0.copy(), out_features=37)
    dx_ref, dwt_ref, db_ref = ref.linear_backward(dy, x, wt, dwt=dwt0.copy(), out_features=37)
    assert_close(dx, dx_ref)
    assert_close(dwt[:, :37], dwt_ref[:, :37])
    assert (dwt[:, 37:] == 7.0).all()
    with pytest.raises(ValueError, match="out_features must be between 1 and wt's 48 columns"):
        core.linear_forward(x, wt, None, out_features=49)
    with pytest.raises(TypeError, match="out_features must be an int"):
        core.linear_forward(x, wt, None, out_features=3.5)


@pytest.mark.parametrize("density", [1.0, 0.15])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_linear_forward_with_activation_is_the_two_kernels_exactly(density, activation):
    """The activation applied inside linear_forward (on the dense and the zero-skipping paths)
    gives relu_forward / sigmoid_forward of the plain product, number for number."""
    x = sparse_input(5, 60, 300, density)
    wt, b = f32(6, 300, 48, scale=0.2), f32(7, 40)
    plain = core.linear_forward(x, wt, b, out_features=40)
    fused = core.linear_forward(x, wt, b, out_features=40, activation=activation)
    np.testing.assert_array_equal(fused, getattr(core, activation + "_forward")(plain))
    with pytest.raises(ValueError, match="activation must be 'none', 'relu' or 'sigmoid'"):
        core.linear_forward(x, wt, b, out_features=40, activation="tanh")


@pytest.mark.parametrize("batch,n_in,n_out", [
    (60, 300, 40),     # read in place by the GEMM's tiles, finished in their epilogue
    (60, 300, 10),     # few outputs: dot products of x's rows, each row finished in turn
    (60, 12, 200),     # few inputs: dx = dy @ wt^T as dot products, through the activation
    (90, 1100, 260),   # the weight past L2: packed GEMM, then a pass over the output
])
@pytest.mark.parametrize("activation", ["none", "relu", "sigmoid"])
def test_dense_linear_finishes_each_tile_as_the_separate_kernels(
        restore_threads, batch, n_in, n_out, activation):
    """A dense input's bias and activation (forward) and the gradient through the activation
    before the layer (backward dx) are applied to the GEMM's output tiles: the same bits as the
    activation kernel after the plain layer, or after the product for dx, for any thread count."""
    x, wt, b = f32(11, batch, n_in), f32(12, n_in, n_out, scale=0.1), f32(13, n_out)
    dy = f32(14, batch, n_out)
    h = core.relu_forward(x) if activation == "none" else getattr(core, activation + "_forward")(x)
    plain = core.linear_forward(x, wt, b)
    assert_close(plain, ref.linear_forward(x, wt, b))
    expected_y = plain if activation == "none" else getattr(core, activation + "_forward")(plain)
    grad_h = core.matmul_forward(dy, wt, trans_b=True)
    expected_dx = grad_h if activation == "none" else getattr(core, activation + "_backward")(
        grad_h, h)
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        y = core.linear_forward(x, wt, b, activation=activation)
        dx, _, _ = core.linear_backward(dy, h, wt, dx_activation=activation)
        np.testing.assert_array_equal(y, expected_y)
        np.testing.assert_array_equal(dx, expected_dx)


def test_linear_input_with_dense_first_rows_takes_the_gemm():
    """The zero-skipping path is chosen by x's zeros: a glance at its first 8 rows (over 37.5 %
    nonzero: the GEMM, without counting the rest), then the count (at most 25 %). Either path
    gives the product's values."""
    x = sparse_input(15, 100, 784, 0.1)
    wt, b, dy = f32(16, 784, 64), f32(17, 64), f32(18, 100, 64)
    _, counted = core.linear_forward(x, wt, b, return_nonzeros=True)
    assert counted == np.count_nonzero(x)
    x[:8] = f32(19, 8, 784)          # 8 dense rows: 17 % of x nonzero, but not at a glance
    y, nonzeros = core.linear_forward(x, wt, b, return_nonzeros=True)
    assert nonzeros == -1
    assert_close(y, ref.linear_forward(x, wt, b))
    assert_all_close(core.linear_backward(dy, x, wt), ref.linear_backward(dy, x, wt))


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_linear_backward_through_activation_is_the_two_kernels_exactly(activation):
    """dx_activation: x is that activation's output and dx the gradient at its input, number
    for number relu_backward / sigmoid_backward of the plain dx; dwt and db unchanged."""
    x = getattr(core, activation + "_forward")(f32(8, 70, 300))
    wt, dy = f32(9, 300, 48, scale=0.2), f32(10, 70, 40)
    plain = core.linear_backward(dy, x, wt, out_features=40)
    fused = core.linear_backward(dy, x, wt, out_features=40, dx_activation=activation)
    np.testing.assert_array_equal(fused[0], getattr(core, activation + "_backward")(plain[0], x))
    np.testing.assert_array_equal(fused[1], plain[1])
    np.testing.assert_array_equal(fused[2], plain[2])
    assert not fused[1][:, 40:].any()   # a new dwt's padding columns are zero
    with pytest.raises(ValueError, match="dx_activation must be 'none', 'relu' or 'sigmoid'"):
        core.linear_backward(dy, x, wt, out_features=40, dx_activation="tanh")


def test_linear_backward_accumulates_and_skips():
    x, wt, dy = f32(1, 8, 5), f32(2, 5, 3), f32(3, 8, 3)
    dwt, db = f32(4, 5, 3), f32(5, 3)
    dwt0, db0 = dwt.copy(), db.copy()
    dx, dwt_out, db_out = core.linear_backward(dy, x, wt, dwt=dwt, db=db, need_dx=False)
    assert dx is None and dwt_out is dwt and db_out is db
    _, dwt_ref, db_ref = ref.linear_backward(dy, x, wt)
    assert_close(dwt, dwt0 + dwt_ref)
    assert_close(db, db0 + db_ref)
    assert core.linear_backward(dy, x, wt, need_db=False)[2] is None


def sparse_input(seed, batch, n_in, density):
    """Inputs with exact zeros (like MNIST pixels): about ``density`` of them nonzero."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    return np.where(rng.random((batch, n_in)) < density, x, np.float32(0))


@pytest.mark.parametrize("batch,n_in,n_out", [
    (100, 784, 100),   # an MNIST MLP's first layer
    (100, 784, 10),    # softmax regression (stays on the GEMM below 32 outputs)
    (7, 785, 300),     # ragged: inputs past a 16-lane vector, two column chunks of outputs
    (37, 130, 33),
    (300, 130, 40),    # more rows than the forward lists at a time (256)
])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.2])
def test_linear_on_mostly_zero_inputs_is_correct_and_thread_independent(
        restore_threads, batch, n_in, n_out, density):
    """Inputs at most a quarter nonzero take the path that skips zeros (cpp/src/linear.cpp):
    the same values as the dense products, the same bits for any thread count."""
    x = sparse_input(1, batch, n_in, density)
    wt, b, dy = f32(2, n_in, n_out), f32(3, n_out), f32(4, batch, n_out)
    dwt0, db0 = f32(5, n_in, n_out), f32(6, n_out)
    _, dwt_ref, db_ref = ref.linear_backward(dy, x, wt)
    runs = []
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        y = core.linear_forward(x, wt, b)
        _, dwt_new, _ = core.linear_backward(dy, x, wt, dwt=np.full_like(wt, np.nan),
                                             need_dx=False, need_db=False, accumulate=False)
        _, dwt_acc, db_acc = core.linear_backward(dy, x, wt, dwt=dwt0.copy(), db=db0.copy(),
                                                  need_dx=False)
        runs.append((y, dwt_new, dwt_acc, db_acc))
    y, dwt_new, dwt_acc, db_acc = runs[0]
    assert_close(y, ref.linear_forward(x, wt, b))
    # The forward's count of x's nonzeros (when it counted them to choose its path), handed to
    # the backward, gives the same bits as the backward counting; a wrong count only picks the
    # other path, never a wrong result.
    y_counted, nonzeros = core.linear_forward(x, wt, b, return_nonzeros=True)
    np.testing.assert_array_equal(y_counted, y)
    counts = n_out >= 32 and x.size >= 4096
    assert nonzeros == (np.count_nonzero(x) if counts else -1)
    hinted = core.linear_backward(dy, x, wt, dwt=dwt0.copy(), db=db0.copy(), need_dx=False,
                                  x_nonzeros=nonzeros)
    np.testing.assert_array_equal(hinted[1], dwt_acc)
    np.testing.assert_array_equal(hinted[2], db_acc)
    for wrong in (0, x.size):
        _, dwt_wrong, _ = core.linear_backward(dy, x, wt, need_dx=False, x_nonzeros=wrong)
        assert_close(dwt_wrong, dwt_ref)
    assert_close(dwt_new, dwt_ref)
    assert_close(dwt_acc, dwt0 + dwt_ref)
    assert_close(db_acc, db0 + db_ref)
    for other in runs[1:]:
        for mine, theirs in zip(runs[0], other):
            np.testing.assert_array_equal(mine, theirs)


def test_linear_skipping_zeros_reads_dy_in_place_or_copied_alike(restore_threads):
    """The zero-skipping backward reads dy in place when its rows are whole cache lines (OUT a
    multiple of 16 and dy 64-byte aligned, as the kernels' own outputs are) and a padded copy
    otherwise: the same bits either way, for any thread count."""
    x = sparse_input(20, 100, 784, 0.2)
    wt, values = f32(21, 784, 64), f32(22, 100, 64)
    aligned = aligned_zeros((100, 64))
    aligned[...] = values
    memory = np.zeros(100 * 64 + 1, np.float32)
    shifted = memory[1:].reshape(100, 64)        # 4 bytes past an aligned block: never aligned
    shifted[...] = values
    assert aligned.ctypes.data % 64 == 0 and shifted.ctypes.data % 64 != 0
    results = []
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        for dy in (aligned, shifted):
            results.append(core.linear_backward(dy, x, wt, need_dx=False)[1])
    assert_close(results[0], ref.linear_backward(values, x, wt)[1])
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_linear_skipping_zeros_keeps_ieee_results_for_inf_and_nan(bad):
    """0 * inf is NaN: with a non-finite weight (forward) or gradient (backward) the zeros of x
    may not be skipped, so the results are the dense product's, NaN included."""
    x = sparse_input(1, 50, 200, 0.1)
    x[:, 3] = 0.0                       # input 3 is zero in every row
    x[5, 7] = np.nan                    # a NaN input still propagates
    wt, dy = f32(2, 200, 40), f32(3, 50, 40)
    expected_y = x.astype(np.float64) @ wt
    assert np.array_equal(np.isnan(core.linear_forward(x, wt)), np.isnan(expected_y))
    wt[3, 2] = bad                      # only ever multiplied by zeros
    y = core.linear_forward(x, wt)
    assert np.isnan(y[:, 2]).all()
    with np.errstate(invalid="ignore"):
        assert np.array_equal(np.isnan(y), np.isnan(x.astype(np.float64) @ wt))
    dy[4, 9] = bad                      # row 4 of x has zeros: dwt[k, 9] = bad * 0 there
    _, dwt, _ = core.linear_backward(dy, x, wt, need_dx=False)
    with np.errstate(invalid="ignore"):
        expected_dwt = x.T.astype(np.float64) @ dy
    assert np.array_equal(np.isnan(dwt), np.isnan(expected_dwt))
    assert np.isnan(dwt[x[4] == 0, 9]).all()


@pytest.mark.parametrize("kernel", ["linear", "conv2d"])
def test_backward_overwrites_or_accumulates_parameter_gradients(kernel):
    if kernel == "linear":
        x, wt, dy = f32(1, 8, 5), f32(2, 5, 3), f32(3, 8, 3)
        run = lambda dw=None, **kw: core.linear_backward(dy, x, wt, dwt=dw, **kw)  # noqa: E731
        _, dw_ref, db_ref = ref.linear_backward(dy, x, wt)
    else:
        x, w, dy = f32(1, 2, 3, 6, 6), f32(2, 4, 3, 3, 3), f32(3, 2, 4, 4, 4)
        run = functools.partial(core.conv2d_backward, dy, x, w)
        _, dw_ref, db_ref = ref.conv2d_backward(dy, x, w)
    garbage = np.full_like(dw_ref, np.nan), np.full_like(db_ref, np.nan)
    _, dw, db = run(dw=garbage[0], db=garbage[1], accumulate=False)   # overwritten
    assert_close(dw, dw_ref)
    assert_close(db, db_ref)
    dw0 = f32(4, *dw_ref.shape)
    _, dw, db = run(dw=dw0.copy())                 # dw accumulates, the new db starts at zero
    assert_close(dw, dw0 + dw_ref)
    assert_close(db, db_ref)


# ------------------------------------------------------------------------------------- conv
@st.composite
def wide_conv_cases(draw):
    """The gradient check's geometry, plus many channels and bigger images."""
    if draw(st.booleans()):
        return draw(conv_cases())
    n, c, oc = draw(st.integers(1, 3)), draw(st.integers(1, 32)), draw(st.integers(1, 32))
    h, w = draw(st.integers(5, 16)), draw(st.integers(5, 16))
    k = draw(st.integers(1, 5))
    return (n, c, h, w), (oc, c, k, k), (draw(st.integers(1, 2)),) * 2, (draw(st.integers(0, 2)),) * 2


@given(seeds, wide_conv_cases(), st.booleans())
def test_conv2d(seed, case, bias):
    xs, ws, stride, pad = case
    x, w = f32(seed, *xs), f32(seed + 1, *ws)
    b = f32(seed + 2, ws[0]) if bias else None
    y = core.conv2d_forward(x, w, b, stride, pad)
    assert_close(y, ref.conv2d_forward(x, w, b, stride, pad))
    dy = f32(seed + 3, *y.shape)
    assert_all_close(core.conv2d_backward(dy, x, w, stride, pad),
                     ref.conv2d_backward(dy, x, w, stride, pad))


@pytest.mark.parametrize("xs,ws,stride,pad", [
    ((1, 1, 5, 5), (1, 1, 5, 5), 1, 0),        # batch 1, one channel, kernel = image
    ((2, 3, 4, 4), (2, 3, 6, 6), 1, 1),        # kernel as large as the padded image
    ((2, 2, 9, 9), (3, 2, 2, 2), 4, 0),        # stride larger than the kernel
    ((3, 16, 12, 12), (32, 16, 5, 5), 1, 0),   # LeNet's second layer
    ((2, 1, 28, 28), (16, 1, 5, 5), 1, 2),     # padded "same" convolution
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1),        # 8-wide output rows, odd counts of valid rows
    ((3, 2, 9, 10), (2, 2, 2, 3), 1, 0),       # 8-wide output rows, no padding
])
def test_conv2d_edge_cases(xs, ws, stride, pad):
    x, w, b = f32(1, *xs), f32(2, *ws), f32(3, ws[0])
    y = core.conv2d_forward(x, w, b, stride, pad)
    assert_close(y, ref.conv2d_forward(x, w, b, stride, pad))
    dy = f32(4, *y.shape)
    assert_all_close(core.conv2d_backward(dy, x, w, stride, pad),
                     ref.conv2d_backward(dy, x, w, stride, pad))


@given(seeds, wide_conv_cases(), st.sampled_from([(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), 0)]))
def test_conv2d_relu_maxpool_fused_matches_the_three_kernels(seed, case, pool):
    """The fused forward equals conv2d -> relu -> maxpool2d number for number (same argmax), and
    the NumPy reference of the chain within rounding; the fused backward equals the three
    backward kernels in turn within rounding."""
    xs, ws, stride, pad = case
    x, w, b = f32(seed, *xs), f32(seed + 1, *ws), f32(seed + 2, ws[0])
    conv_y = core.conv2d_forward(x, w, b, stride, pad)
    k, ps, pp = pool
    try:
        y_chain, argmax_chain = core.maxpool2d_forward(core.relu_forward(conv_y), k, ps, pp)
    except ValueError:   # the window does not fit the convolution's output: refused alike
        with pytest.raises(ValueError):
            core.conv2d_relu_maxpool_forward(x, w, b, stride, pad, k, ps, pp)
        return
    y, argmax = core.conv2d_relu_maxpool_forward(x, w, b, stride, pad, k, ps, pp)
    np.testing.assert_array_equal(y, y_chain)
    np.testing.assert_array_equal(argmax, argmax_chain)
    y_ref, _ = ref.maxpool2d_forward(ref.relu_forward(ref.conv2d_forward(x, w, b, stride, pad)),
                                     k, ps, pp)
    assert_close(y, y_ref)
    # its gradient path: conv2d_backward of maxpool2d_backward of relu_backward (within rounding:
    # where pooling leaves dy mostly zeros, the fused kernel skips them)
    g = f32(seed + 3, *y.shape)
    g.reshape(-1)[::7] = 0.0
    fused = core.conv2d_relu_maxpool_backward(g, y, argmax, x, w, stride, pad, k, ps, pp)
    dy = core.maxpool2d_backward(core.relu_backward(g, y), argmax, conv_y.shape, k, ps, pp)
    assert_all_close(fused, core.conv2d_backward(dy, x, w, stride, pad))


@pytest.mark.parametrize("xs,ws", [
    ((3, 1, 28, 28), (16, 1, 5, 5)),    # LeNet's first layer: im2col two output rows at a time
    ((2, 2, 27, 21), (5, 2, 3, 3)),     # 25 x 19 outputs: bands of 3 rows, the last one row
])
def test_conv2d_relu_maxpool_forward_by_bands_of_rows(restore_threads, xs, ws):
    """A few output rows at a time (their im2col in L1) gives the chain's numbers exactly, for
    any thread count."""
    x, w, b = f32(31, *xs), f32(32, *ws), f32(33, ws[0])
    y_chain, argmax_chain = core.maxpool2d_forward(
        core.relu_forward(core.conv2d_forward(x, w, b, 1, 0)), 2, None, 0)
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        y, argmax = core.conv2d_relu_maxpool_forward(x, w, b, 1, 0, 2, None, 0)
        np.testing.assert_array_equal(y, y_chain)
        np.testing.assert_array_equal(argmax, argmax_chain)


@pytest.mark.parametrize("bad", [None, "x_inf", "w_nan"])
def test_conv2d_relu_maxpool_backward_skipping_zeros(restore_threads, bad):
    """LeNet's second layer: the fused backward skips dy's zeros (3/4 or more after 2x2 pooling).
    It matches the three backward kernels, gives the same bits on 1 and 2 threads, and with inf
    or NaN in x or w (where 0 * inf = NaN matters) takes the dense products: the same NaNs."""
    x, w, b = f32(1, 20, 16, 12, 12), f32(2, 32, 16, 5, 5, scale=0.2), f32(3, 32)
    if bad == "x_inf":
        x[3, 2, 4, 4] = np.inf
    elif bad == "w_nan":
        w[5, 1, 2, 2] = np.nan
    y, argmax = core.conv2d_relu_maxpool_forward(x, w, b, 1, 0, 2)
    g = f32(4, *y.shape)
    dy = core.maxpool2d_backward(core.relu_backward(g, y), argmax, (20, 32, 8, 8), 2)
    expected = core.conv2d_backward(dy, x, w)
    runs = []
    for threads in (1, 2):
        restore_threads.set_num_threads(threads)
        runs.append(core.conv2d_relu_maxpool_backward(g, y, argmax, x, w, pool_kernel=2))
    for a, b_ in zip(*runs):
        np.testing.assert_array_equal(a, b_)
    for a, e in zip(runs[0], expected):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(e), rtol=1e-4, atol=1e-4)
    if bad is None:
        assert_all_close(runs[0], ref.conv2d_backward(
            ref.maxpool2d_backward(ref.relu_backward(g, y), argmax, (20, 32, 8, 8), 2), x, w))


@pytest.mark.parametrize("xs,ws", [
    ((9, 1, 28, 28), (16, 1, 5, 5)),    # LeNet's first layer
    ((5, 2, 13, 11), (6, 2, 3, 3)),     # two channels: six kernel rows
    ((4, 1, 20, 22), (8, 1, 7, 7)),     # seven kernel rows of seven
])
def test_conv2d_relu_maxpool_weight_gradient_from_windows(restore_threads, xs, ws):
    """Few short kernel rows: the zero-skipping weight gradient reads each window from x instead
    of a copy of them all (conv.cpp, window_sums). It matches the three backward kernels and the
    NumPy reference within rounding, the same bits on 1-3 threads, with and without dx."""
    x, w, b = f32(41, *xs), f32(42, *ws, scale=0.3), f32(43, ws[0])
    y, argmax = core.conv2d_relu_maxpool_forward(x, w, b, 1, 0, 2)
    g = f32(44, *y.shape)
    conv_shape = (xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1)
    dy = core.maxpool2d_backward(core.relu_backward(g, y), argmax, conv_shape, 2)
    expected = core.conv2d_backward(dy, x, w)
    assert_all_close(expected[1:], ref.conv2d_backward(
        ref.maxpool2d_backward(ref.relu_backward(g, y), argmax, conv_shape, 2), x, w)[1:])
    runs = []
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        runs.append(core.conv2d_relu_maxpool_backward(g, y, argmax, x, w, pool_kernel=2))
        _, dw_only, db_only = core.conv2d_relu_maxpool_backward(g, y, argmax, x, w,
                                                                pool_kernel=2, need_dx=False)
        np.testing.assert_array_equal(dw_only, runs[-1][1])
        np.testing.assert_array_equal(db_only, runs[-1][2])
    assert_all_close(runs[0], expected)
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            np.testing.assert_array_equal(a, b_)


def test_conv2d_backward_accumulates():
    x, w, dy = f32(1, 2, 3, 6, 6), f32(2, 4, 3, 3, 3), f32(3, 2, 4, 4, 4)
    dw, db = f32(4, 4, 3, 3, 3), f32(5, 4)
    dw0, db0 = dw.copy(), db.copy()
    dx, _, _ = core.conv2d_backward(dy, x, w, dw=dw, db=db, need_dx=False)
    _, dw_ref, db_ref = ref.conv2d_backward(dy, x, w)
    assert dx is None
    assert_close(dw, dw0 + dw_ref)
    assert_close(db, db0 + db_ref)


def test_conv2d_large_batch_is_correct_and_thread_independent(restore_threads):
    """37 images: more than the 16 fixed batch chunks of dW, split unevenly, on 1-3 threads."""
    x, w, b = f32(1, 37, 3, 13, 11), f32(2, 7, 3, 3, 3), f32(3, 7)
    dy = f32(4, 37, 7, 7, 6)
    results = []
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        y = core.conv2d_forward(x, w, b, 2, 1)
        results.append([y, *core.conv2d_backward(dy, x, w, 2, 1)])
    assert_close(results[0][0], ref.conv2d_forward(x, w, b, 2, 1))
    assert_all_close(results[0][1:], ref.conv2d_backward(dy, x, w, 2, 1))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


# ------------------------------------------------------------------------------------- pooling
@given(seeds, pool_cases())
def test_maxpool2d(seed, case):
    shape, k, s, p = case
    x = f32(seed, *shape)
    y, argmax = core.maxpool2d_forward(x, k, s, p)
    y_ref, argmax_ref = ref.maxpool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = f32(seed + 1, *y.shape)
    assert_close(core.maxpool2d_backward(dy, argmax, shape, k, s, p),
                 ref.maxpool2d_backward(dy, argmax_ref, shape, k, s, p))


def test_maxpool2d_ties_and_nan():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 1, 1] = np.nan
    y, argmax = core.maxpool2d_forward(x, 2)
    y_ref, argmax_ref = ref.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(y, y_ref)              # NaN propagates; ties take the first
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 5


@pytest.mark.parametrize("h,w", [(2, 2), (8, 8), (24, 24), (28, 28), (7, 30), (5, 33), (9, 66)])
def test_maxpool2d_2x2_stride_2(restore_threads, h, w):
    """The dedicated 2 x 2 / stride 2 path: every row tail, odd sizes, ties, NaNs and -inf."""
    x = np.round(f32(h * w, 37, 3, h, w) * 2) / 2         # many ties
    flat = x.reshape(-1)
    flat[::7] = np.nan                                   # NaNs in every window position
    flat[::11] = -np.inf
    flat[3::13] = np.nan
    outputs = []
    for threads in (1, 2):
        restore_threads.set_num_threads(threads)
        y, argmax = core.maxpool2d_forward(x, 2)
        dy = f32(5, *y.shape)
        outputs.append((y, argmax, core.maxpool2d_backward(dy, argmax, x.shape, 2)))
    y_ref, argmax_ref = ref.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(outputs[0][0], y_ref)
    np.testing.assert_array_equal(outputs[0][1], argmax_ref)
    assert_close(outputs[0][2], ref.maxpool2d_backward(dy, argmax_ref, x.shape, 2))
    for a, b in zip(outputs[0], outputs[1]):
        np.testing.assert_array_equal(a, b)


def test_maxpool2d_backward_takes_any_argmax_in_the_plane():
    """An argmax outside its own window (not from maxpool2d_forward) is still routed exactly."""
    dy = f32(1, 1, 2, 3, 3)
    argmax = np.random.default_rng(0).integers(0, 36, dy.shape).astype(np.int32)
    assert_close(core.maxpool2d_backward(dy, argmax, (1, 2, 6, 6), 2),
                 ref.maxpool2d_backward(dy, argmax, (1, 2, 6, 6), 2))


@given(seeds, pool_cases())
def test_avgpool2d(seed, case):
    shape, k, s, p = case
    x = f32(seed, *shape)
    y = core.avgpool2d_forward(x, k, s, p)
    assert_close(y, ref.avgpool2d_forward(x, k, s, p))
    dy = f32(seed + 1, *y.shape)
    assert_close(core.avgpool2d_backward(dy, shape, k, s, p),
                 ref.avgpool2d_backward(dy, shape, k, s, p))


# ------------------------------------------------------------------------------------- activations
CORE_ACTIVATIONS = {
    "relu": (core.relu_forward, core.relu_backward),
    "leaky_relu": (lambda x: core.leaky_relu_forward(x, 0.1),
                   lambda g, x: core.leaky_relu_backward(g, x, 0.1)),
    "sigmoid": (core.sigmoid_forward, core.sigmoid_backward),
    "tanh": (core.tanh_forward, core.tanh_backward),
    "threshold": (lambda x: core.threshold_forward(x, 0.3, -2.0),
                  lambda g, x: core.threshold_backward(g, x, 0.3)),
    "softmax": (core.softmax_forward, core.softmax_backward),
    "log_softmax": (core.log_softmax_forward, core.log_softmax_backward),
}


@given(seeds, st.sampled_from(sorted(ACTIVATIONS)),
       st.lists(st.integers(1, 9), min_size=1, max_size=4), st.sampled_from([1.0, 30.0, 1e4]))
def test_activation(seed, name, shape, scale):
    forward, backward = CORE_ACTIVATIONS[name]
    ref_forward, ref_backward, from_output = ACTIVATIONS[name]
    x = f32(seed, *shape, scale=scale)
    y = forward(x)
    assert np.all(np.isfinite(y))
    assert_close(y, ref_forward(x))
    dy = f32(seed + 1, *shape)
    saved = y if from_output else x
    assert_close(backward(dy, saved), ref_backward(dy, saved))


def test_activations_large_tensor_uses_threads_consistently():
    x = f32(7, 300, 1000, scale=5.0)
    for name, (forward, _) in CORE_ACTIVATIONS.items():
        assert_close(forward(x), ACTIVATIONS[name][0](x))


# ------------------------------------------------------------------------------------- losses
@given(seeds, st.integers(1, 40), st.integers(1, 12), st.sampled_from([1.0, 10.0, 1e4]),
       st.floats(0.1, 2.0))
def test_cross_entropy(seed, n, c, logit_scale, scale):
    z = f32(seed, n, c, scale=logit_scale)
    y = np.random.default_rng(seed).integers(0, c, n)
    loss, probs = core.cross_entropy_forward(z, y)
    loss_ref, probs_ref = ref.cross_entropy_forward(z.astype(np.float64), y)
    assert np.isfinite(loss)
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-5)
    assert_close(probs, probs_ref)
    assert_close(core.cross_entropy_backward(probs, y, scale),
                 ref.cross_entropy_backward(probs_ref, y, scale))
    # The same loss with one-hot targets, and with probability targets.
    onehot = np.eye(c, dtype=np.float32)[y]
    loss_1h, _ = core.cross_entropy_soft_forward(z, onehot)
    assert loss_1h == pytest.approx(loss, rel=1e-5, abs=1e-5)
    t = np.random.default_rng(seed + 1).random((n, c)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    loss_t, probs_t = core.cross_entropy_soft_forward(z, t)
    assert loss_t == pytest.approx(ref.cross_entropy_soft_forward(z.astype(np.float64), t)[0],
                                   rel=1e-5, abs=1e-5)
    assert_close(core.cross_entropy_soft_backward(probs_t, t, scale),
                 ref.cross_entropy_soft_backward(probs_t, t, scale))


@given(seeds, st.integers(1, 40), st.integers(1, 12), st.floats(0.1, 2.0))
def test_nll(seed, n, c, scale):
    logp = core.log_softmax_forward(f32(seed, n, c, scale=5.0))
    y = np.random.default_rng(seed).integers(0, c, n)
    assert core.nll_forward(logp, y) == pytest.approx(ref.nll_forward(logp, y), rel=1e-6)
    assert_close(core.nll_backward(y, c, scale), ref.nll_backward(y, c, scale))


@given(seeds, st.sampled_from(["mse", "l1", "bce", "bce_with_logits"]),
       st.lists(st.integers(1, 20), min_size=1, max_size=3), st.floats(0.1, 2.0))
def test_elementwise_losses(seed, name, shape, scale):
    rng = np.random.default_rng(seed)
    if name == "bce":
        pred = rng.uniform(0, 1, shape).astype(np.float32)
        pred.reshape(-1)[0] = 0.0                          # log clamped at -100, as in PyTorch
    else:
        pred = f32(seed, *shape, scale=10.0)
    target = rng.random(shape).astype(np.float32)
    forward, backward = getattr(core, name + "_forward"), getattr(core, name + "_backward")
    loss = forward(pred, target)
    assert np.isfinite(loss)
    assert loss == pytest.approx(getattr(ref, name + "_forward")(pred, target), rel=1e-5, abs=1e-6)
    assert_close(backward(pred, target, scale), getattr(ref, name + "_backward")(pred, target, scale))


# ------------------------------------------------------------------------------------- dropout
@given(seeds, st.lists(st.integers(1, 30), min_size=1, max_size=3), st.floats(0.0, 0.95))
def test_dropout_matches_reference_mask(seed, shape, p):
    x = f32(seed, *shape)
    y, mask = core.dropout_forward(x, p, seed)
    y_ref, mask_ref = ref.dropout_forward(x, p, seed)
    np.testing.assert_array_equal(mask, mask_ref)
    assert_close(y, y_ref)
    dy = f32(seed + 1, *shape)
    assert_close(core.dropout_backward(dy, mask, p), ref.dropout_backward(dy, mask_ref, p))


def test_dropout_keeps_the_expected_fraction():
    x = np.ones((1000, 1000), dtype=np.float32)
    for p in (0.1, 0.5, 0.8):
        _, mask = core.dropout_forward(x, p, 42)
        assert abs(mask.mean() - (1 - p)) < 0.005
    a = core.dropout_forward(x, 0.5, 1)[1]
    b = core.dropout_forward(x, 0.5, 2)[1]
    assert not np.array_equal(a, b)


# ------------------------------------------------------------------------------------- optimizers
@given(seeds, st.integers(1, 300), st.floats(0.001, 0.5), st.sampled_from([0.0, 0.5, 0.9]),
       st.booleans(), st.sampled_from([0.0, 1e-2]), st.sampled_from([0.0, 0.3]))
def test_sgd(seed, n, lr, momentum, nesterov, weight_decay, dampening):
    nesterov = nesterov and momentum > 0
    dampening = 0.0 if nesterov else dampening
    p, p_ref = f32(seed, n), f32(seed, n)
    buf, buf_ref = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for step in range(4):
        g = f32(seed + 1 + step, n)
        kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                  nesterov=nesterov, first_step=step == 0)
        core.sgd_step(p, g, buf if momentum else None, **kw)
        ref.sgd_step(p_ref, g, buf_ref, **kw)
    assert_close(p, p_ref)
    assert_close(buf, buf_ref)


def test_sgd_over_a_list_equals_each_array_on_any_thread_count(restore_threads):
    """sgd_step on a list gives each thread its share of every array (sizes that split at and
    off 16-float boundaries, and arrays too small to split): the same bits as one array at a
    time, for 1, 2 and 3 threads (sizes around the 65,536 elements from which it runs in
    parallel)."""
    sizes = [5, 40000, 1, 30000, 777, 33, 65536]
    start = [f32(i, n) for i, n in enumerate(sizes)]
    grads = [f32(10 + i, n) for i, n in enumerate(sizes)]
    kw = dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3, nesterov=False,
              first_step=False)
    expected = [a.copy() for a in start]
    expected_bufs = [np.full_like(a, 0.5) for a in start]
    for p, g, b in zip(expected, grads, expected_bufs):
        core.sgd_step(p, g, b, **kw)
    for threads in (1, 2, 3):
        restore_threads.set_num_threads(threads)
        params, bufs = [a.copy() for a in start], [np.full_like(a, 0.5) for a in start]
        core.sgd_step(params, grads, bufs, **kw)
        for mine, theirs in zip(params + bufs, expected + expected_bufs):
            np.testing.assert_array_equal(mine, theirs)


@given(seeds, st.integers(1, 300), st.floats(1e-4, 0.1), st.sampled_from([0.0, 1e-2]),
       st.booleans())
def test_adam(seed, n, lr, weight_decay, decoupled):
    p, p_ref = f32(seed, n), f32(seed, n)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    m_ref, v_ref = m.copy(), v.copy()
    for step in range(1, 5):
        g = f32(seed + step, n)
        kw = dict(lr=lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay, step=step,
                  decoupled=decoupled)
        core.adam_step(p, g, m, v, **kw)
        ref.adam_step(p_ref, g, m_ref, v_ref, **kw)
    assert_close(p, p_ref)
    assert_close(m, m_ref)
    assert_close(v, v_ref)


# ------------------------------------------------------------------------------------- exp
def test_vectorised_exp_is_accurate_over_the_whole_float_range():
    """sigmoid(x) = exp(x) / (1 + exp(x)) for x <= 0: within a few ulp of float64 everywhere,
    subnormal results included; the ends of the range and NaN behave."""
    x = np.concatenate([np.linspace(-110, 110, 200003), np.geomspace(1e-30, 80, 5001),
                        -np.geomspace(1e-30, 104, 5001), [0.0, -0.0]]).astype(np.float32)
    got = core.sigmoid_forward(x).astype(np.float64)
    want = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    normal = want >= np.finfo(np.float32).tiny
    ulp = np.spacing(want[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= 4
    assert np.max(np.abs(got[~normal] - want[~normal])) <= 2 * np.finfo(np.float32).smallest_subnormal
    special = core.sigmoid_forward(np.array([np.inf, -np.inf, np.nan, 89.0, -89.0], np.float32))
    np.testing.assert_array_equal(special[:2], [1.0, 0.0])
    assert np.isnan(special[2]) and special[3] == 1.0 and 0 < special[4] < 1e-38
    z = np.array([[0.0, -200.0, 50.0, np.float32(88.5)], [1.0, 2.0, 3.0, np.nan]], np.float32)
    p = core.softmax_forward(z)
    np.testing.assert_allclose(p[0], np.exp(z[0].astype(np.float64) - 88.5) /
                               np.exp(z[0].astype(np.float64) - 88.5).sum(), rtol=1e-6, atol=1e-30)
    assert np.isnan(p[1]).all()


# ------------------------------------------------------------------------------------- threads
def _run_everything(seed):
    """One output of every kernel family, on sizes large enough to use several threads."""
    x, w = f32(seed, 8, 3, 28, 28), f32(seed + 1, 8, 3, 5, 5)
    y = core.conv2d_forward(x, w, f32(seed + 2, 8))
    dy = f32(seed + 3, *y.shape)
    a, b = f32(seed + 4, 256, 300), f32(seed + 5, 300, 200)
    pooled, argmax = core.maxpool2d_forward(y, 2)
    z = f32(seed + 6, 512, 100, scale=3.0)
    labels = np.random.default_rng(seed).integers(0, 100, 512)
    p, g, buf = f32(seed + 7, 100000), f32(seed + 8, 100000), np.zeros(100000, np.float32)
    core.sgd_step(p, g, buf, lr=0.1, momentum=0.9)
    m, v = np.zeros_like(p), np.zeros_like(p)
    core.adam_step(p, g, m, v, lr=0.01)
    loss, probs = core.cross_entropy_forward(z, labels)
    return [y, *core.conv2d_backward(dy, x, w), core.sgemm(a, b), core.sgemm(b, a, True, True),
            *core.linear_backward(f32(seed + 9, 256, 200), a, f32(seed + 10, 300, 200)),
            pooled, core.maxpool2d_backward(pooled, argmax, y.shape, 2),
            core.avgpool2d_forward(y, 2), core.sigmoid_forward(z), core.softmax_forward(z),
            np.float64(loss), probs, core.cross_entropy_backward(probs, labels),
            np.float64(core.mse_forward(z, z * 0.5)), core.dropout_forward(z, 0.5, 3)[0],
            p, buf, m, v]


def test_one_and_two_threads_give_identical_bits(restore_threads):
    restore_threads.set_num_threads(1)
    single = _run_everything(11)
    restore_threads.set_num_threads(2)
    double = _run_everything(11)
    assert len(single) == len(double)
    for a, b in zip(single, double):
        np.testing.assert_array_equal(a, b)


def test_set_num_threads(restore_threads):
    restore_threads.set_num_threads(1)
    assert restore_threads.get_num_threads() == 1
    restore_threads.set_num_threads(3)
    assert restore_threads.get_num_threads() == 3
    with pytest.raises(ValueError):
        restore_threads.set_num_threads(0)
