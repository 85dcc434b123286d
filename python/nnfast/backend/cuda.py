"""The CUDA backend: the kernels of cpp/cuda (``nnfast._cuda``) on its device arrays.

Each function has the name, arguments and return convention of its twin in ``INTERFACE``; it
takes ``nnfast._cuda.DeviceArray`` inputs (a NumPy array where a CPU array is given raises
TypeError naming both devices) and returns new device arrays. ``to_device`` / ``to_host`` move
arrays (another library's GPU arrays are viewed in place, through __cuda_array_interface__).
Every INTERFACE function has its CUDA kernel here (one that lacked it would be filled in by
nnfast.backend with a function raising NotImplementedError naming itself).

Registered in ``nnfast.backend.BACKENDS`` only where the extension imports. UNTESTED on a GPU
in the session that wrote it (none was at hand): tests/test_cuda.py compares every function
here with the CPU backend where a device is found, and skips with the reason otherwise.
"""
import numpy as np

from ..cuda import _cuda as _k
from . import host

__all__ = ["available", "is_array", "to_device", "to_host", "zeros"]

DEVICE = "cuda"


def available():
    """Whether the CUDA extension imported (a device may still be missing)."""
    return _k is not None


def is_array(a):
    """Whether ``a`` is one of nnfast's device arrays."""
    return _k is not None and isinstance(a, _k.DeviceArray)


def _dev(a, name="array"):
    """``a`` itself when it is a device array; TypeError naming both devices otherwise."""
    if not is_array(a):
        where = "the CPU (a NumPy array)" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"the CUDA backend needs {name} on the GPU (cuda), got one on {where}; "
                        "move it with nnfast.backend.cuda.to_device")
    return a


def to_device(a, dtype=None):
    """A device copy of a host array (float32 unless it is int64, int32 or uint8, or ``dtype``
    says otherwise); a device array is returned as it is, and another library's GPU array
    (CuPy's, PyTorch's: ``__cuda_array_interface__``) as a view of its memory, without a copy."""
    if is_array(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        view = _k.from_cuda_array_interface(a)
        if dtype is not None and view.dtype != np.dtype(dtype):
            raise TypeError(f"expected a {np.dtype(dtype)} GPU array, got {view.dtype}")
        return view
    return _k.to_device(host.to_device(a, dtype))   # the host's dtype rule, then the copy


def to_host(a):
    """A NumPy copy of a device array (anything else as a NumPy array)."""
    return a.numpy() if is_array(a) else np.asarray(a)


def _empty(shape, dtype="float32"):
    return _k.empty([int(d) for d in shape], dtype)


def zeros(shape, dtype="float32"):
    return _k.zeros([int(d) for d in shape], dtype)


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


# ------------------------------------------------------------------------------------- dense
def _matmul_sizes(a, b, trans_a, trans_b):
    """(M, N, K) of op(a) (M, K) @ op(b) (K, N)."""
    M, K = reversed(_dev(a, "a").shape) if trans_a else a.shape
    N = _dev(b, "b").shape[0] if trans_b else b.shape[1]
    return M, N, K


def matmul_forward(a, b, trans_a=False, trans_b=False):
    M, N, K = _matmul_sizes(a, b, trans_a, trans_b)
    c = _empty((M, N))
    _k.matmul_forward(c, a, b, M, N, K, bool(trans_a), bool(trans_b))
    return c


def matmul_backward(dc, a, b, trans_a=False, trans_b=False):
    M, N, K = _matmul_sizes(a, b, trans_a, trans_b)
    da, db = _empty(a.shape), _empty(b.shape)
    _k.matmul_backward(da, db, _dev(dc, "dc"), a, b, M, N, K, bool(trans_a), bool(trans_b))
    return da, db


def linear_forward(x, wt, b=None, out_features=None, activation="none", return_nonzeros=False):
    B, IN = _dev(x, "x").shape
    ld = _dev(wt, "wt").shape[1]
    out = ld if out_features is None else int(out_features)
    y = _empty((B, out))
    _k.linear_forward(y, x, wt, ld, None if b is None else _dev(b, "b"), B, IN, out, activation)
    return (y, -1) if return_nonzeros else y


def linear_backward(dy, x, wt, dwt=None, db=None, need_dx=True, need_db=True, accumulate=True,
                    out_features=None, x_nonzeros=-1, dx_activation="none"):
    """A gradient array not given is a new one of zeros (so its padding stays zero), which
    accumulating into leaves the gradient itself."""
    B, IN = _dev(x, "x").shape
    ld = _dev(wt, "wt").shape[1]
    out = ld if out_features is None else int(out_features)
    dx = _empty((B, IN)) if need_dx else None
    dwt = zeros(wt.shape) if dwt is None else _dev(dwt, "dwt")
    if need_db:
        db = zeros((out,)) if db is None else _dev(db, "db")
    else:
        db = None
    _k.linear_backward(dx, dwt, db, _dev(dy, "dy"), x, wt, ld, B, IN, out, bool(accumulate),
                       dx_activation)
    return dx, dwt, db


# ------------------------------------------------------------------ convolution and pooling
def _conv_geometry(x, w, stride, padding):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, C, H, W = _dev(x, "x").shape
    OC, _, KH, KW = _dev(w, "w").shape
    return (N, C, H, W, OC, KH, KW, sh, sw, ph, pw)


def _conv_out(g):
    N, _, H, W, OC, KH, KW, sh, sw, ph, pw = g
    return (N, OC, (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    g = _conv_geometry(x, w, stride, padding)
    y = _empty(_conv_out(g))
    _k.conv2d_forward(y, x, w, None if b is None else _dev(b, "b"), g)
    return y


def _conv_gradients(x, w, dw, db, need_dx, need_db):
    """(dx, dw, db) for a convolution's backward: dx new (or None), gradients not given new ones
    of zeros (accumulating into them leaves the gradients themselves), db None unless need_db."""
    dx = _empty(x.shape) if need_dx else None
    dw = zeros(w.shape) if dw is None else _dev(dw, "dw")
    if not need_db:
        return dx, dw, None
    return dx, dw, zeros((w.shape[0],)) if db is None else _dev(db, "db")


def conv2d_backward(dy, x, w, stride=1, padding=0, dw=None, db=None, need_dx=True, need_db=True,
                    accumulate=True):
    g = _conv_geometry(x, w, stride, padding)
    dx, dw, db = _conv_gradients(x, w, dw, db, need_dx, need_db)
    _k.conv2d_backward(dx, dw, db, _dev(dy, "dy"), x, w, g, bool(accumulate))
    return dx, dw, db


def conv2d_relu_maxpool_forward(x, w, b=None, stride=1, padding=0, pool_kernel=2, pool_stride=None,
                                pool_padding=0):
    g = _conv_geometry(x, w, stride, padding)
    pg, out = _pool_geometry(_conv_out(g), pool_kernel, pool_stride, pool_padding)
    y, argmax = _empty(out), _empty(out, "int32")
    _k.conv2d_relu_maxpool_forward(y, argmax, x, w, None if b is None else _dev(b, "b"), g, pg)
    return y, argmax


def conv2d_relu_maxpool_backward(g, y, argmax, x, w, stride=1, padding=0, pool_kernel=2,
                                 pool_stride=None, pool_padding=0, dw=None, db=None, need_dx=True,
                                 need_db=True, accumulate=True):
    geometry = _conv_geometry(x, w, stride, padding)
    pg, _ = _pool_geometry(_conv_out(geometry), pool_kernel, pool_stride, pool_padding)
    dx, dw, db = _conv_gradients(x, w, dw, db, need_dx, need_db)
    _k.conv2d_relu_maxpool_backward(dx, dw, db, _dev(g, "g"), _dev(y, "y"),
                                    _dev(argmax, "argmax"), x, w, geometry, pg, bool(accumulate))
    return dx, dw, db


def _pool_geometry(shape, kernel_size, stride, padding):
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    (ph, pw) = _pair(padding)
    N, C, H, W = (int(d) for d in shape)
    g = (N, C, H, W, kh, kw, sh, sw, ph, pw)
    return g, (N, C, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    g, out = _pool_geometry(_dev(x, "x").shape, kernel_size, stride, padding)
    y, argmax = _empty(out), _empty(out, "int32")
    _k.maxpool2d_forward(y, argmax, x, g)
    return y, argmax


def maxpool2d_backward(dy, argmax, input_shape, kernel_size, stride=None, padding=0):
    g, _ = _pool_geometry(input_shape, kernel_size, stride, padding)
    dx = _empty(input_shape)
    _k.maxpool2d_backward(dx, _dev(dy, "dy"), _dev(argmax, "argmax"), g)
    return dx


def avgpool2d_forward(x, kernel_size, stride=None, padding=0):
    g, out = _pool_geometry(_dev(x, "x").shape, kernel_size, stride, padding)
    y = _empty(out)
    _k.avgpool2d_forward(y, x, g)
    return y


def avgpool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0):
    g, _ = _pool_geometry(input_shape, kernel_size, stride, padding)
    dx = _empty(input_shape)
    _k.avgpool2d_backward(dx, _dev(dy, "dy"), g)
    return dx


# ---------------------------------------------------------------------------- normalisation
def _channels(x):
    """(C, N, S) of x (N, C, ...): S the product of the sizes after C."""
    N, C = int(x.shape[0]), int(x.shape[1])
    return C, N, int(np.prod(x.shape[2:], dtype=np.int64))


def _optional(a, name):
    return None if a is None else _dev(a, name)


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None,
                      training=True, momentum=0.1, eps=1e-5):
    C, N, S = _channels(_dev(x, "x"))
    y, mean, invstd = _empty(x.shape), _empty((C,)), _empty((C,))
    _k.batchnorm_forward(y, mean, invstd, x, _optional(gamma, "gamma"), _optional(beta, "beta"),
                         _optional(running_mean, "running_mean"),
                         _optional(running_var, "running_var"), C, N, S, bool(training),
                         float(momentum), float(eps))
    return y, mean, invstd


def batchnorm_backward(dy, x, gamma, mean, invstd, dgamma=None, dbeta=None, training=True,
                       need_dx=True, need_dgamma=True, accumulate=True):
    """Gradient arrays not given are new ones of zeros (accumulating into them leaves the
    gradients themselves)."""
    C, N, S = _channels(_dev(x, "x"))
    dx = _empty(x.shape) if need_dx else None
    if need_dgamma:
        dgamma = zeros((C,)) if dgamma is None else _dev(dgamma, "dgamma")
        dbeta = zeros((C,)) if dbeta is None else _dev(dbeta, "dbeta")
    else:
        dgamma = dbeta = None
    _k.batchnorm_backward(dx, dgamma, dbeta, _dev(dy, "dy"), x, _optional(gamma, "gamma"),
                          _dev(mean, "mean"), _dev(invstd, "invstd"), C, N, S, bool(training),
                          bool(accumulate))
    return dx, dgamma, dbeta


# ------------------------------------------------------------------- elementwise activations
def _unary(kernel, x, out, *extra):
    y = _empty(_dev(x, "x").shape) if out is None else _dev(out, "out")
    kernel(y, x, *extra)
    return y


def _unary_backward(kernel, dy, saved, *extra):
    dx = _empty(_dev(dy, "dy").shape)
    kernel(dx, dy, _dev(saved), *extra)
    return dx


def _binary(kernel, name, a, b):
    a, b = _dev(a, "a"), _dev(b, "b")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: a {tuple(a.shape)} and b {tuple(b.shape)} differ in shape")
    y = _empty(a.shape)
    kernel(y, a, b)
    return y


def add(a, b):
    return _binary(_k.add, "add", a, b)


def mul(a, b):
    return _binary(_k.mul, "mul", a, b)


def scale(a, alpha):
    return _unary(_k.scale, a, None, float(alpha))


def copy_columns(dst, src, dst_col, src_col, cols):
    dst, src = _dev(dst, "dst"), _dev(src, "src")
    host.check_columns(tuple(dst.shape), tuple(src.shape), dst_col, src_col, cols)
    _k.copy_columns(dst, src, int(dst.shape[0]), int(dst.shape[1]), int(src.shape[1]),
                    int(dst_col), int(src_col), int(cols))


def relu_forward(x, out=None):
    return _unary(_k.relu_forward, x, out)


def relu_backward(dy, x):
    return _unary_backward(_k.relu_backward, dy, x)


def leaky_relu_forward(x, slope=0.01, out=None):
    return _unary(_k.leaky_relu_forward, x, out, float(slope))


def leaky_relu_backward(dy, x, slope=0.01):
    return _unary_backward(_k.leaky_relu_backward, dy, x, float(slope))


def sigmoid_forward(x, out=None):
    return _unary(_k.sigmoid_forward, x, out)


def sigmoid_backward(dy, y):
    return _unary_backward(_k.sigmoid_backward, dy, y)


def tanh_forward(x, out=None):
    return _unary(_k.tanh_forward, x, out)


def tanh_backward(dy, y):
    return _unary_backward(_k.tanh_backward, dy, y)


def threshold_forward(x, threshold, value, out=None):
    return _unary(_k.threshold_forward, x, out, float(threshold), float(value))


def threshold_backward(dy, x, threshold):
    return _unary_backward(_k.threshold_backward, dy, x, float(threshold))


def _rows(x):
    """(N, C) of the rows over x's last axis."""
    C = int(x.shape[-1]) if x.ndim else 1
    return (x.size // C if C else 0), C


def _softmax(x, log):
    y = _empty(_dev(x, "x").shape)
    _k.softmax_forward(y, x, *_rows(x), log)
    return y


def _softmax_backward(dy, y, log):
    dx = _empty(_dev(dy, "dy").shape)
    _k.softmax_backward(dx, dy, _dev(y, "y"), *_rows(y), log)
    return dx


def softmax_forward(x):
    return _softmax(x, False)


def softmax_backward(dy, y):
    return _softmax_backward(dy, y, False)


def log_softmax_forward(x):
    return _softmax(x, True)


def log_softmax_backward(dy, y):
    return _softmax_backward(dy, y, True)


# ---------------------------------------------------------------------------------- losses
def _checked_labels(labels, C):
    """Labels on the device, after checking on the host that they lie in [0, C) (one copy of
    the N labels back, which waits for the kernels before it); while a graph is captured, the
    device labels as they are (nnfast.backend: whoever replays checks them)."""
    if _k.is_capturing():
        return _dev(labels, "labels")
    values = to_host(labels)
    host.check_labels(values, C)
    return to_device(values, np.int64)


def _loss(kernel, *args):
    """The mean loss of a loss kernel as a float, or while a graph is captured as the float64
    device array (1,) the kernel writes it to."""
    if not _k.is_capturing():
        return kernel(*args)
    out = _empty((1,), "float64")
    kernel(*args, loss_out=out)
    return out


def cross_entropy_forward(logits, labels):
    N, C = _dev(logits, "logits").shape
    probs = _empty((N, C))
    loss = _loss(_k.cross_entropy_forward, probs, logits, _checked_labels(labels, C), N, C)
    return loss, probs


def cross_entropy_backward(probs, labels, scale=1.0):
    N, C = _dev(probs, "probs").shape
    d = _empty((N, C))
    _k.cross_entropy_backward(d, probs, _checked_labels(labels, C), N, C, float(scale))
    return d


def cross_entropy_soft_forward(logits, targets):
    N, C = _dev(logits, "logits").shape
    probs = _empty((N, C))
    loss = _loss(_k.cross_entropy_soft_forward, probs, logits, _dev(targets, "targets"), N, C)
    return loss, probs


def cross_entropy_soft_backward(probs, targets, scale=1.0):
    N, C = _dev(probs, "probs").shape
    d = _empty((N, C))
    _k.cross_entropy_soft_backward(d, probs, _dev(targets, "targets"), N, C, float(scale))
    return d


def nll_forward(logp, labels):
    N, C = _dev(logp, "logp").shape
    return _loss(_k.nll_forward, logp, _checked_labels(labels, C), N, C)


def nll_backward(labels, num_classes, scale=1.0):
    C = int(num_classes)
    labels = _checked_labels(labels, C)
    d = _empty((labels.size, C))
    _k.nll_backward(d, labels, labels.size, C, float(scale))
    return d


def _pointwise(name):
    """The INTERFACE pair <name>_forward(pred, target) / <name>_backward(pred, target, scale)."""
    def forward(pred, target):
        return _loss(getattr(_k, name + "_forward"), _dev(pred, "pred"), _dev(target, "target"))

    def backward(pred, target, scale=1.0):
        d = _empty(_dev(pred, "pred").shape)
        getattr(_k, name + "_backward")(d, pred, _dev(target, "target"), float(scale))
        return d

    forward.__name__, backward.__name__ = name + "_forward", name + "_backward"
    return forward, backward


mse_forward, mse_backward = _pointwise("mse")
l1_forward, l1_backward = _pointwise("l1")
bce_forward, bce_backward = _pointwise("bce")
bce_with_logits_forward, bce_with_logits_backward = _pointwise("bce_with_logits")


# ------------------------------------------------------------------------------ CUDA graphs
def capture_begin():
    _k.capture_begin()


def capture_end():
    return _k.capture_end()


def capture_abort():
    _k.capture_abort()


# ---------------------------------------------------------------- data, dropout, optimizers
def gather_rows(src, rows, out=None):
    """src[rows]; rows (int64, host or device) are checked on the host to lie in range (while a
    graph is captured, device rows are used as they are: nnfast.backend)."""
    n = _dev(src, "src").shape[0]
    if _k.is_capturing():
        rows = _dev(rows, "rows")
    else:
        values = np.asarray(to_host(rows), dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() >= n):
            raise IndexError(f"gather_rows: rows must lie in [0, {n})")
        rows = to_device(values, np.int64)
    width = int(np.prod(src.shape[1:], dtype=np.int64))
    out = _empty((rows.size,) + tuple(src.shape[1:])) if out is None else _dev(out, "out")
    _k.gather_rows(out, src, rows, width)
    return out


def dropout_forward(x, p, seed):
    y, mask = _empty(_dev(x, "x").shape), _empty(x.shape, "uint8")
    _k.dropout_forward(y, mask, x, float(p), int(seed) & (2**64 - 1))
    return y, mask


def dropout_backward(dy, mask, p):
    dx = _empty(_dev(dy, "dy").shape)
    _k.dropout_backward(dx, dy, _dev(mask, "mask"), float(p))
    return dx


def _listed(a):
    return list(a) if isinstance(a, (list, tuple)) else [a]


def sgd_step(param, grad, momentum_buf=None, lr=0.01, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, first_step=True):
    bufs = None if momentum_buf is None or momentum == 0 else _listed(momentum_buf)
    _k.sgd_update_all(_listed(param), _listed(grad), bufs, float(lr), float(momentum),
                      float(dampening), float(weight_decay), bool(nesterov), bool(first_step))


def rmsprop_step(param, grad, square_avg, momentum_buf=None, grad_avg=None, lr=0.01, alpha=0.99,
                 eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    _k.rmsprop_update(_dev(param, "param"), _dev(grad, "grad"), _dev(square_avg, "square_avg"),
                      _dev(momentum_buf, "momentum_buf") if momentum > 0 else None,
                      _dev(grad_avg, "grad_avg") if centered else None, float(lr), float(alpha),
                      float(eps), float(weight_decay), float(momentum))


def adagrad_step(param, grad, state_sum, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 step=1):
    _k.adagrad_update(_dev(param, "param"), _dev(grad, "grad"), _dev(state_sum, "state_sum"),
                      float(lr), float(lr_decay), float(weight_decay), float(eps), int(step))


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0):
    _k.adadelta_update(_dev(param, "param"), _dev(grad, "grad"), _dev(square_avg, "square_avg"),
                       _dev(acc_delta, "acc_delta"), float(lr), float(rho), float(eps),
                       float(weight_decay))


def adam_step(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              step=1, decoupled=False):
    _k.adam_update_all(_listed(param), _listed(grad), _listed(m), _listed(v), float(lr),
                       float(beta1), float(beta2), float(eps), float(weight_decay), int(step),
                       bool(decoupled))
