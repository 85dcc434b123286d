"""Fuzzing the bindings: every _core function called with drawn junk (zero, negative and huge
sizes, wrong dtypes, non-contiguous, read-only and broadcast arrays, NaN / inf, mismatched
batches, wrong Python types) either returns or raises a Python exception; nothing crashes.

CI runs the "ci" hypothesis profile; ``scripts/fuzz.sh`` runs the long profile (>= 10,000 cases).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

core = pytest.importorskip("nnfast._core")

# Argument templates of each binding: f float32 array, f? float array or None, l int64 labels,
# m uint8 mask, a int32 argmax, s a shape tuple, p int-or-pair, p? pair or None, x float,
# n int, b bool, t a name (an activation), i a name (a copy of the kernels), r a name (a
# precision).
SIGNATURES = {
    "sgemm": "f f b b x x f?", "matmul_forward": "f f b b", "matmul_backward": "f f f b b",
    "linear_forward": "f f f? n t b", "linear_backward": "f f f f? f? b b b n n t",
    "conv2d_forward": "f f f? p p", "conv2d_backward": "f f f p p f? f? b b b",
    "conv2d_relu_maxpool_forward": "f f f? p p p p? p",
    "conv2d_relu_maxpool_backward": "f f a f f p p p p? p f? f? b b b",
    "maxpool2d_forward": "f p p? p", "maxpool2d_backward": "f a s p p? p",
    "avgpool2d_forward": "f p p? p", "avgpool2d_backward": "f s p p? p",
    "relu_forward": "f f?", "relu_backward": "f f", "leaky_relu_forward": "f x f?",
    "leaky_relu_backward": "f f x", "sigmoid_forward": "f f?", "sigmoid_backward": "f f",
    "tanh_forward": "f f?", "tanh_backward": "f f", "threshold_forward": "f x x f?",
    "threshold_backward": "f f x", "softmax_forward": "f", "softmax_backward": "f f",
    "log_softmax_forward": "f", "log_softmax_backward": "f f",
    "cross_entropy_forward": "f l", "cross_entropy_backward": "f l x",
    "cross_entropy_soft_forward": "f f", "cross_entropy_soft_backward": "f f x",
    "nll_forward": "f l", "nll_backward": "l n x",
    "mse_forward": "f f", "mse_backward": "f f x", "l1_forward": "f f", "l1_backward": "f f x",
    "bce_forward": "f f", "bce_backward": "f f x", "bce_with_logits_forward": "f f",
    "bce_with_logits_backward": "f f x", "dropout_forward": "f x n", "dropout_backward": "f m x",
    "gather_rows": "f l f?", "sgd_step": "f f f? x x x x b b", "adam_step": "f f f f x x x x x n b",
    "rmsprop_step": "f f f f? f? x x x x x b", "adagrad_step": "f f f x x x x n",
    "adadelta_step": "f f f f x x x x",
    "batchnorm_forward": "f f? f? f? f? b x x", "batchnorm_backward": "f f f? f f f? f? b b b b",
    "set_num_threads": "n", "select_isa": "i", "set_precision": "r", "fma_peak": "n",
}
# The bindings without arguments, which only report.
REPORTS = {"get_num_threads", "isa", "vector_isa", "kernel_copies", "build_info",
           "fma_peak_chains", "get_precision", "bf16_available"}

DTYPES = [np.float32, np.float32, np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_,
          np.float16, np.complex64]
ints = st.one_of(st.integers(-3, 8), st.sampled_from([0, -1, 2**31 - 1, 2**31, -2**31, 2**40,
                                                       2**63 - 1]))
floats = st.one_of(st.floats(-10, 10), st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30]),
                   st.just(float("nan")), st.just(float("inf")))


@st.composite
def junk_array(draw, dtype=None):
    """An array of drawn rank, size and dtype, sometimes strided, read-only or broadcast."""
    rank = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=rank, max_size=rank)))
    dtype = dtype if dtype is not None and draw(st.integers(0, 9)) else draw(st.sampled_from(DTYPES))
    values = draw(st.sampled_from(["normal", "nan", "inf", "big", "labels"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.standard_normal(shape)
    if values == "nan" and a.size:
        a.reshape(-1)[0] = np.nan
    elif values == "inf" and a.size:
        a.reshape(-1)[-1] = np.inf
    elif values == "big":
        a *= 1e30
    elif values == "labels":
        a = rng.integers(-2, 12, shape)
    with np.errstate(all="ignore"):
        a = a.astype(dtype)
    layout = draw(st.sampled_from(["plain"] * 12 + ["strided", "readonly", "broadcast",
                                                     "fortran"]))
    if layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        a.setflags(write=False)
    elif layout == "broadcast":
        a = np.broadcast_to(np.ones((), dtype), draw(st.sampled_from(
            [(70000, 70000), (2, 3, 100000, 100000), (1,) * 4, (0, 5)])))
    elif layout == "fortran":
        a = np.asfortranarray(a)
    return a


def argument(kind):
    if kind in ("f", "f?"):
        arr = junk_array(np.float32)
        return st.one_of(arr, st.none(), st.just([1.0, 2.0])) if kind == "f?" else \
            st.one_of(arr, arr, arr, arr, arr, arr, st.none(), st.just("x"), ints)
    if kind == "l":
        return st.one_of(junk_array(np.int64), st.none())
    if kind == "m":
        return junk_array(np.uint8)
    if kind == "a":
        return junk_array(np.int32)
    if kind == "s":
        return st.one_of(st.tuples(ints, ints, ints, ints), st.tuples(ints, ints), st.none(),
                         st.just("shape"))
    if kind in ("p", "p?"):
        pair = st.one_of(ints, st.tuples(ints, ints), st.tuples(ints), st.just(1.5),
                         st.just("2"))
        return st.one_of(pair, st.none()) if kind == "p?" else pair
    if kind == "x":
        return st.one_of(floats, st.none(), st.just("0.1"))
    if kind == "n":
        return st.one_of(ints, floats, st.none())
    if kind == "i":
        return st.one_of(st.sampled_from(["avx512", "avx2", "baseline", "native", "", "AVX2"]),
                         st.none(), ints)
    if kind == "r":
        return st.one_of(st.sampled_from(["float32", "bf16", "fp16", "BF16", ""]), st.none(),
                         ints)
    if kind == "t":
        return st.one_of(st.sampled_from(["none", "relu", "sigmoid", "tanh", ""]), st.none(),
                         ints)
    return st.one_of(st.booleans(), st.none(), ints)


calls = st.sampled_from(sorted(SIGNATURES)).flatmap(
    lambda name: st.tuples(st.just(name),
                           st.tuples(*[argument(k) for k in SIGNATURES[name].split()])))


def test_every_binding_is_fuzzed():
    public = {n for n in dir(core) if not n.startswith("_")} - REPORTS
    assert public == set(SIGNATURES)


@settings(max_examples=settings().max_examples * 40)
@given(calls, st.booleans())
def test_junk_raises_python_exceptions_never_crashes(call, bf16):
    name, args = call
    before, isa, precision = core.get_num_threads(), core.isa(), core.get_precision()
    try:
        if bf16 and core.bf16_available():
            core.set_precision("bf16")  # Linear's junk through the bf16 products too
        getattr(core, name)(*args)
    except (TypeError, ValueError, IndexError, OverflowError, MemoryError):
        pass   # IndexError: gather_rows's row indices out of range, as NumPy raises
    except RuntimeError:
        if name != "set_precision" or core.bf16_available():
            raise  # only a CPU without bf16 products refuses that way
    finally:
        core.set_num_threads(before)
        core.select_isa(isa)
        core.set_precision(precision)
