"""The reference backend: every function of ``nnfast.backend.INTERFACE`` in pure NumPy.

Each function has the name, argument order, defaults and return convention of its twin in the
CPU backend (``nnfast._core``), so that tests call both with the same arguments and a model runs
on either (``model.to("reference")``). It is written as a careful NumPy user would
write it (im2col by stride tricks, ``@`` for products, no Python loops over elements), because
the benchmarks compare against it. Functions work in the dtype they are given (float32 to compare
with the kernels, float64 for finite-difference checks).

Layouts: row-major; images NCHW; Linear weight (out, in); Conv2d weight (out, in, kh, kw).

NaN and inf propagate as in PyTorch, in forms that keep them: ``np.where(x <= 0, 0, x)`` for the
ReLU (``np.where(x > 0, x, 0)`` would turn a NaN into 0), the gradient passed where not
``x <= 0``, the window maximum taking a NaN over, zero terms kept in sums (0 * inf = NaN).
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._core import get_precision

from .host import (DEVICE, add, copy_columns, is_array, mul, scale,  # noqa: F401
                   to_device, to_host, zeros)


def _pair(v):
    """An int or a pair of ints, as PyTorch's kernel_size / stride / padding."""
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


# ------------------------------------------------------------------------------------- dense
def _op(a, trans):
    return a.T if trans else a


def sgemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """c = alpha * op(a) @ op(b) + beta * c; written into ``c`` in place when given."""
    prod = alpha * (_op(a, trans_a) @ _op(b, trans_b))
    if c is None:
        return prod.astype(a.dtype, copy=False)
    c[...] = prod if beta == 0 else beta * c + prod
    return c


def matmul_forward(a, b, trans_a=False, trans_b=False):
    """c (M, N) = op(a) @ op(b)."""
    return _op(a, trans_a) @ _op(b, trans_b)


def matmul_backward(dc, a, b, trans_a=False, trans_b=False):
    """(da, db) for c = op(a) @ op(b), each in its operand's own layout."""
    d_opa = dc @ _op(b, trans_b).T
    d_opb = _op(a, trans_a).T @ dc
    return _op(d_opa, trans_a), _op(d_opb, trans_b)


def _bf16(a):
    """float32 a rounded to bfloat16 (to nearest even; NaN stays NaN), as float32."""
    a = np.ascontiguousarray(a, np.float32)
    u = a.view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return np.where(np.isnan(a), a, r.view(np.float32))


def _linear_operands(*arrays):
    """Linear's product operands at the precision nnfast.set_precision chose: rounded to
    bfloat16 under "bf16" (the products then summed in float32, as the kernels do)."""
    if get_precision() == "bf16":
        return tuple(_bf16(a) for a in arrays)
    return arrays


def linear_forward(x, wt, b=None, out_features=None, activation="none", return_nonzeros=False):
    """y (B, OUT) = act(x (B, IN) @ wt[:, :OUT] + b (OUT,)); wt (IN, LD) is the weight w (OUT, IN)
    transposed, its rows maybe padded past OUT = out_features (default LD): the layout nnfast's
    Linear keeps in memory. With return_nonzeros, (y, -1): the reference counts nothing."""
    xp, wp = _linear_operands(x, wt[:, :out_features])
    y = xp @ wp
    if b is not None:
        y = y + b
    y = _ACTIVATIONS[activation][0](y)
    return (y, -1) if return_nonzeros else y


def _write(grad, into, accumulate=True):
    """A parameter gradient into the caller's array when one is given: added to it when
    ``accumulate``, replacing its values otherwise."""
    if into is None:
        return grad
    if accumulate:
        into += grad
    else:
        into[...] = grad
    return into


def linear_backward(dy, x, wt, dwt=None, db=None, need_dx=True, need_db=True, accumulate=True,
                    out_features=None, x_nonzeros=-1, dx_activation="none"):
    """(dx (B, IN), dwt (IN, LD), db (OUT,)) for y = x @ wt[:, :OUT] + b, dwt zero in the padding
    columns; None where not needed. With dx_activation, x is that activation's output and dx the
    gradient at its input."""
    out = dy.shape[1]
    dyp, xp, wp = _linear_operands(dy, x, wt[:, :out])
    dx = None
    if need_dx:
        dx = _ACTIVATIONS[dx_activation][1](dyp @ wp.T, x)
    db = _write(dy.sum(axis=0), db, accumulate) if need_db else None
    if dwt is None:
        dwt = np.zeros_like(wt)
        accumulate = True
    _write(xp.T @ dyp, dwt[:, :out], accumulate)
    return dx, dwt, db


# ------------------------------------------------------------------------------------- conv
def _windows(x, kh, kw, sh, sw):
    """View (N, C, OH, OW, kh, kw) of the windows of x (N, C, H, W), without copying."""
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = x.strides
    return as_strided(x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]),
                      writeable=False)


def _pad(x, ph, pw, value=0.0):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _im2col(x, kh, kw, stride, padding):
    """Columns (N*OH*OW, C*kh*kw) of x (N, C, H, W) and the output size (OH, OW)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    win = _windows(_pad(x, ph, pw), kh, kw, sh, sw)          # N, C, OH, OW, kh, kw
    n, c, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    return cols, oh, ow


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """y (N, OC, OH, OW) = cross-correlation of x (N, C, H, W) with w (OC, C, kh, kw) + b."""
    oc, _, kh, kw = w.shape
    cols, oh, ow = _im2col(x, kh, kw, stride, padding)
    y = cols @ w.reshape(oc, -1).T                            # N*OH*OW, OC
    if b is not None:
        y += b
    return y.reshape(x.shape[0], oh, ow, oc).transpose(0, 3, 1, 2).copy()


def conv2d_backward(dy, x, w, stride=1, padding=0, dw=None, db=None, need_dx=True, need_db=True,
                    accumulate=True):
    """(dx (N, C, H, W), dw (OC, C, kh, kw), db (OC,)) for y = conv2d(x, w) + b."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    cols, oh, ow = _im2col(x, kh, kw, stride, padding)
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, oc)        # N*OH*OW, OC
    dw = _write((dy_rows.T @ cols).reshape(w.shape), dw, accumulate)
    db = _write(dy.sum(axis=(0, 2, 3)), db, accumulate) if need_db else None
    dx = None
    if need_dx:
        dcols = (dy_rows @ w.reshape(oc, -1)).reshape(n, oh, ow, c, kh, kw)
        dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=dy.dtype)
        for i in range(kh):                                   # col2im: one slice per offset
            for j in range(kw):
                dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += \
                    dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        dx = dxp[:, :, ph:ph + h, pw:pw + wd]
        dx = np.ascontiguousarray(dx)
    return dx, dw, db


# ------------------------------------------------------------------------------------- pooling
def _pool_geometry(kernel_size, stride, padding):
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    return kh, kw, sh, sw, _pair(padding)


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """(y (N, C, OH, OW), argmax int32): window maxima and their flat h*W+w index in the plane:
    the first maximum in row-major window order, never a padding position (a window of -inf takes
    its first element in the image), or, where the window holds NaNs, the last NaN (PyTorch's
    ``val > maxval || isnan(val)``)."""
    kh, kw, sh, sw, (ph, pw) = _pool_geometry(kernel_size, stride, padding)
    n, c, h, w = x.shape
    win = _windows(_pad(x, ph, pw, -np.inf), kh, kw, sh, sw)
    oh, ow = win.shape[2:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    inside = _windows(_pad(np.ones((1, 1, h, w), bool), ph, pw, False), kh, kw, sh, sw)
    inside = inside.reshape(1, 1, oh, ow, kh * kw)
    first_max = np.argmax(inside & (flat == flat.max(axis=-1, keepdims=True)), axis=-1)
    nan = np.isnan(flat)
    last_nan = kh * kw - 1 - np.argmax(nan[..., ::-1], axis=-1)
    k = np.where(nan.any(axis=-1), last_nan, first_max)
    y = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    row = np.arange(oh)[:, None] * sh - ph + k // kw
    col = np.arange(ow)[None, :] * sw - pw + k % kw
    return np.ascontiguousarray(y), (row * w + col).astype(np.int32)


def maxpool2d_backward(dy, argmax, input_shape, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): each dy added at its argmax."""
    n, c, h, w = input_shape
    dx = np.zeros((n * c, h * w), dtype=dy.dtype)
    planes = np.repeat(np.arange(n * c), argmax[0, 0].size)
    np.add.at(dx, (planes, argmax.reshape(-1)), dy.reshape(-1))
    return dx.reshape(input_shape)


def avgpool2d_forward(x, kernel_size, stride=None, padding=0):
    """y (N, C, OH, OW): window means, zero padding counted (divisor kh*kw)."""
    kh, kw, sh, sw, (ph, pw) = _pool_geometry(kernel_size, stride, padding)
    return _windows(_pad(x, ph, pw), kh, kw, sh, sw).mean(axis=(4, 5))


def avgpool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0):
    """dx (N, C, H, W): each dy / (kh*kw) added over its window."""
    kh, kw, sh, sw, (ph, pw) = _pool_geometry(kernel_size, stride, padding)
    n, c, h, w = input_shape
    oh, ow = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dy.dtype)
    g = dy / (kh * kw)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += g
    return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w])


def conv2d_relu_maxpool_forward(x, w, b=None, stride=1, padding=0, pool_kernel=2, pool_stride=None,
                                pool_padding=0):
    """(y, argmax) = maxpool2d_forward(relu_forward(conv2d_forward(x, w, b, stride, padding)))."""
    return maxpool2d_forward(relu_forward(conv2d_forward(x, w, b, stride, padding)), pool_kernel,
                             pool_stride, pool_padding)


def conv2d_relu_maxpool_backward(g, y, argmax, x, w, stride=1, padding=0, pool_kernel=2,
                                 pool_stride=None, pool_padding=0, dw=None, db=None, need_dx=True,
                                 need_db=True, accumulate=True):
    """(dx, dw, db): conv2d_backward of maxpool2d_backward of relu_backward(g, y)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(w.shape[2:]), _pair(stride), _pair(padding)
    n, _, h, wd = x.shape
    conv_shape = (n, w.shape[0], (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1)
    dz = maxpool2d_backward(relu_backward(g, y), argmax, conv_shape, pool_kernel, pool_stride,
                            pool_padding)
    return conv2d_backward(dz, x, w, stride, padding, dw, db, need_dx, need_db, accumulate)


# ------------------------------------------------------------------------------------- batchnorm
def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    """A (C,) array shaped to broadcast over x (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batchnorm_forward(x, gamma=None, beta=None, running_mean=None, running_var=None,
                      training=True, momentum=0.1, eps=1e-5):
    """(y, mean, invstd): batch normalisation over x (N, C, ...) by the batch's statistics
    (training; running ones updated in place, with the unbiased variance) or the running ones."""
    axes = _channel_axes(x)
    if training:
        mean = x.mean(axis=axes, dtype=np.float64)
        var = x.var(axis=axes, dtype=np.float64)
        if running_mean is not None:
            count = x.size // x.shape[1]
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    invstd = 1 / np.sqrt(var + eps)
    y = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    if gamma is not None:
        y = y * _per_channel(gamma, x)
    if beta is not None:
        y = y + _per_channel(beta, x)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batchnorm_backward(dy, x, gamma, mean, invstd, dgamma=None, dbeta=None, training=True,
                       need_dx=True, need_dgamma=True, accumulate=True):
    """(dx, dgamma, dbeta) for batchnorm_forward's y."""
    axes = _channel_axes(x)
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    dg = db = dx = None
    if need_dgamma:
        dg = _write((dy * xhat).sum(axis=axes), dgamma, accumulate)
        db = _write(dy.sum(axis=axes), dbeta, accumulate)
    if need_dx:
        k = _per_channel(invstd if gamma is None else invstd * gamma, x)
        if training:
            dx = k * (dy - dy.mean(axis=axes, keepdims=True)
                      - xhat * (dy * xhat).mean(axis=axes, keepdims=True))
        else:
            dx = k * dy
        dx = dx.astype(dy.dtype)
    return dx, dg, db


# ------------------------------------------------------------------------------------- activations
def _into(y, out):
    """y, or y written into ``out`` (the activations' ``out`` argument)."""
    if out is None:
        return y
    out[...] = y
    return out


def relu_forward(x, out=None):
    """0 where x <= 0 (-0 included), else x (NaN kept)."""
    return _into(np.where(x <= 0, 0, x).astype(x.dtype), out)


def relu_backward(dy, x):
    """dy where not x <= 0 (a NaN x passes it, as PyTorch's threshold_backward), else 0."""
    return np.where(x <= 0, 0, dy).astype(dy.dtype)


def leaky_relu_forward(x, slope=0.01, out=None):
    return _into(np.where(x > 0, x, slope * x).astype(x.dtype), out)


def leaky_relu_backward(dy, x, slope=0.01):
    return np.where(x > 0, dy, slope * dy).astype(dy.dtype)


def sigmoid_forward(x, out=None):
    """1 / (1 + exp(-x)) through exp(-|x|), so it never overflows."""
    e = np.exp(-np.abs(x))
    return _into(np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype), out)


def sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def tanh_forward(x, out=None):
    return _into(np.tanh(x), out)


def tanh_backward(dy, y):
    return dy * (1 - y * y)


def threshold_forward(x, threshold, value, out=None):
    return _into(np.where(x <= threshold, value, x).astype(x.dtype), out)


def threshold_backward(dy, x, threshold):
    return np.where(x <= threshold, 0, dy).astype(dy.dtype)


def softmax_forward(x):
    """Softmax over the last axis, max-subtracted."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def log_softmax_forward(x):
    """x - logsumexp(x) over the last axis."""
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def log_softmax_backward(dy, y):
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


def _identity(x, y=None):
    return x


# (forward, backward from the output) of the activations fused kernels apply, by name
_ACTIVATIONS = {"none": (_identity, _identity), "relu": (relu_forward, relu_backward),
                "sigmoid": (sigmoid_forward, sigmoid_backward)}


# ------------------------------------------------------------------------------------- losses
def _logsumexp_rows(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def cross_entropy_forward(logits, labels):
    """(mean cross-entropy, softmax probs) for logits (N, C) and integer labels (N,)."""
    n = logits.shape[0]
    lse = _logsumexp_rows(logits)[:, 0]
    loss = float(np.mean(lse - logits[np.arange(n), labels]))
    return loss, softmax_forward(logits)


def cross_entropy_backward(probs, labels, scale=1.0):
    """dlogits = scale * (probs - onehot(labels)) / N."""
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return (d * (scale / len(labels))).astype(probs.dtype)


def cross_entropy_soft_forward(logits, targets):
    """(mean_i sum_j -t_ij log_softmax(z)_ij, probs) for one-hot / probability targets (every
    term summed: a zero target at a -inf logit gives 0 * inf = NaN, as PyTorch)."""
    logp = logits.astype(np.float64) - _logsumexp_rows(logits)
    loss = float(-np.sum(targets * logp) / logits.shape[0])
    return loss, softmax_forward(logits)


def cross_entropy_soft_backward(probs, targets, scale=1.0):
    """dlogits = scale * (probs * sum_j t_ij - t) / N."""
    d = probs * targets.sum(axis=1, keepdims=True) - targets
    return (d * (scale / probs.shape[0])).astype(probs.dtype)


def nll_forward(logp, labels):
    return float(-np.mean(logp[np.arange(len(labels)), labels], dtype=np.float64))


def nll_backward(labels, num_classes, scale=1.0, dtype=np.float32):
    d = np.zeros((len(labels), num_classes), dtype=dtype)
    d[np.arange(len(labels)), labels] = -scale / len(labels)
    return d


def mse_forward(pred, target):
    return float(np.mean((pred.astype(np.float64) - target) ** 2))


def mse_backward(pred, target, scale=1.0):
    return ((2 * scale / pred.size) * (pred - target)).astype(pred.dtype)


def l1_forward(pred, target):
    return float(np.mean(np.abs(pred.astype(np.float64) - target)))


def l1_backward(pred, target, scale=1.0):
    """scale * sign(p - t) / n with PyTorch's sign: 0 for 0 and for NaN."""
    d = pred - target
    return ((scale / pred.size) * ((d > 0).astype(d.dtype) - (d < 0))).astype(pred.dtype)


def bce_forward(p, target):
    """PyTorch's BCELoss: logs clamped at -100."""
    p64 = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p64), -100.0)
        l1p = np.maximum(np.log1p(-p64), -100.0)
    return float(-np.mean(target * lp + (1 - target) * l1p))


def bce_backward(p, target, scale=1.0):
    return ((scale / p.size) * (p - target) / np.maximum(p * (1 - p), 1e-12)).astype(p.dtype)


def bce_with_logits_forward(z, target):
    z64 = z.astype(np.float64)
    return float(np.mean(np.maximum(z64, 0) - z64 * target + np.log1p(np.exp(-np.abs(z64)))))


def bce_with_logits_backward(z, target, scale=1.0):
    return ((scale / z.size) * (sigmoid_forward(z) - target)).astype(z.dtype)


# ------------------------------------------------------------------------------------- data
def gather_rows(src, rows, out=None):
    """src[rows] (IndexError for a row out of range), or written into ``out``."""
    return _into(src[rows], out)


# ------------------------------------------------------------------------------------- dropout
def dropout_mask(shape, p, seed):
    """uint8 keep-mask: element i (flat) kept iff splitmix64-uniform(seed, i) >= p."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return (u >= np.float32(p)).astype(np.uint8).reshape(shape)


def dropout_forward(x, p, seed):
    """(y, mask): inverted dropout, y = x * mask / (1 - p)."""
    mask = dropout_mask(x.shape, p, seed)
    scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return x * mask * scale, mask


def dropout_backward(dy, mask, p):
    return dy * mask * np.asarray(1.0 / (1.0 - p), dtype=dy.dtype)


# ------------------------------------------------------------------------------------- optimizers
def sgd_step(param, grad, momentum_buf=None, lr=0.01, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, first_step=True):
    """In-place SGD update with PyTorch semantics (see cpp/include/nnfast/optim.h), of one array
    or of each array of a list."""
    if isinstance(param, (list, tuple)):
        bufs = momentum_buf if momentum_buf is not None else [None] * len(param)
        for p, g, buf in zip(param, grad, bufs):
            sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step)
        return
    g = grad + weight_decay * param
    if momentum != 0:
        if first_step:
            momentum_buf[...] = g
        else:
            momentum_buf *= momentum
            momentum_buf += (1 - dampening) * g
        g = g + momentum * momentum_buf if nesterov else momentum_buf
    param -= lr * g


def adam_step(param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              step=1, decoupled=False):
    """In-place Adam (or AdamW when decoupled) update with bias correction at ``step``."""
    g = grad
    if decoupled:
        param *= 1 - lr * weight_decay
    else:
        g = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    param -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)


def rmsprop_step(param, grad, square_avg, momentum_buf=None, grad_avg=None, lr=0.01, alpha=0.99,
                 eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """In-place RMSprop update with PyTorch semantics: momentum_buf given when momentum > 0,
    grad_avg when centered."""
    g = grad + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg *= alpha
        grad_avg += (1 - alpha) * g
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buf *= momentum
        momentum_buf += g / avg
        param -= lr * momentum_buf
    else:
        param -= lr * (g / avg)


def adagrad_step(param, grad, state_sum, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 step=1):
    """In-place Adagrad update with PyTorch semantics at ``step`` (from 1)."""
    g = grad + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    param -= clr * (g / (np.sqrt(state_sum) + eps))


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0):
    """In-place Adadelta update with PyTorch semantics."""
    g = grad + weight_decay * param
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    param -= lr * delta
