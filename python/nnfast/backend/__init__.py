"""Backends: the one way layers, losses and optimizers reach their kernels.

A backend is an object with every function of ``INTERFACE`` below as an attribute, taking and
returning arrays of its own device. Layers hold the backend of the device their parameters live
on (``module.backend``, set by ``module.to(device)`` together with the parameters) and call only
it, so a new device is a new module implementing these functions, not edits in each layer.

- ``cpu``: nnfast's compiled kernels (``nnfast._core``), float32 NumPy arrays.
- ``reference``: the same functions in plain NumPy, written to be read; the tests run layers and
  models on both and compare.
- ``cuda``: the CUDA kernels (``nnfast._cuda``, a build with ``NNFAST_CUDA=ON``) on its device
  arrays; in BACKENDS only where that extension imports, and covering part of INTERFACE (cuda.py
  lists what it lacks).

A backend's arrays are NumPy arrays on the host ("cpu", "reference") or its device's array
type, which has ``shape``, ``dtype``, ``ndim``, ``size``, ``device`` (the device's name),
``numpy()`` (a host copy), ``copy_from(host)`` (overwrite from a NumPy array of the same dtype
and size), ``reshape(shape)`` (a view) and ``fill(0.0)``. ``device_of(x)`` names where any
array lives.

Conventions, shared by every function: row-major, C-contiguous arrays; images NCHW; float32 data
(the reference also runs float64 for finite differences); integer labels int64; ``kernel_size``,
``stride`` and ``padding`` are an int or an (h, w) pair, ``stride=None`` meaning the kernel size
for pooling. Linear's weight is kept as ``wt`` (IN, LD): the transpose of PyTorch's (OUT, IN)
weight, each row padded with zeros to LD >= OUT columns (``out_features`` = OUT). Gradients of
parameters (``dwt``, ``dw``, ``db``) are written into the caller's arrays when given: added to
them when ``accumulate``, overwriting them otherwise; a new array is returned when None is given.
Activations ``"none"``, ``"relu"``, ``"sigmoid"`` name what a fused kernel applies. Functions
with ``out`` write their result into it (the same shape as x) and return it. NaN and inf propagate
through every function as through PyTorch's (tests/test_nonfinite.py compares them).

A device backend may also record its kernel launches and run them again: the functions of
``GRAPHS`` (``backend.graphs`` says whether it has them; the CUDA backend's are CUDA graphs).
While a capture is open, kernels are recorded, not run: their outputs hold nothing until the
graph's ``replay()``, reading an array to the host or copying one from it raises RuntimeError,
the losses return their mean as a device array (float64, shape (1,)) instead of a float, and
labels and row indices, which must then be device arrays, are not range-checked (whoever
replays checks them as it writes them). A replay runs the recorded launches on the arrays they
were given, with the scalars they were given: nnfast.graph decides what is safe to record.
"""
import numpy as np

from . import cpu, cuda, reference
from ..cuda import is_available as gpu_available, unavailable_reason as gpu_missing_reason

INTERFACE = {
    # arrays of this device (``device``: "cpu" for the NumPy backends, "cuda", ...)
    "is_array": "(x) -> whether x is an array of this backend's device",
    "to_device": "(a, dtype=None) -> a copy on this device of a host array (float32 unless it "
                 "is int64, int32 or uint8, or dtype says otherwise); an array already there "
                 "is returned as it is",
    "to_host": "(a) -> a NumPy array of a's values (a itself on the CPU)",
    "zeros": "(shape, dtype='float32') -> a new array of zeros (float32: 64-byte aligned)",
    # elementwise arithmetic (a and b of one shape; each a new array)
    "add": "(a, b) -> a + b (also the sum of a graph's gradients from two branches)",
    "mul": "(a, b) -> a * b",
    "scale": "(a, alpha) -> alpha * a, alpha a float",
    "copy_columns": "(dst (R, DC), src (R, SC), dst_col, src_col, cols): in place, dst[:, "
                    "dst_col:dst_col + cols] = src[:, src_col:src_col + cols] (ValueError for "
                    "columns outside either)",
    # dense
    "matmul_forward": "(a, b, trans_a=False, trans_b=False) -> c (M, N) = op(a) @ op(b)",
    "matmul_backward": "(dc, a, b, trans_a=False, trans_b=False) -> (da, db), each in its "
                       "operand's layout",
    "linear_forward": "(x (B, IN), wt (IN, LD), b (OUT,) or None, out_features, activation, "
                      "return_nonzeros) -> y (B, OUT) = act(x @ wt[:, :OUT] + b); with "
                      "return_nonzeros, (y, aux): aux is passed back to linear_backward as "
                      "x_nonzeros (the CPU's count of x's nonzeros; -1 where not counted)",
    "linear_backward": "(dy (B, OUT), x, wt, dwt, db, need_dx, need_db, accumulate, "
                       "out_features, x_nonzeros, dx_activation) -> (dx (B, IN) or None, dwt, "
                       "db or None); dwt's padding columns stay zero; with dx_activation, x is "
                       "that activation's output and dx the gradient at its input",
    # convolution and pooling
    "conv2d_forward": "(x (N, C, H, W), w (OC, C, kh, kw), b (OC,) or None, stride, padding) "
                      "-> y (N, OC, OH, OW), OH = (H + 2 ph - kh) // sh + 1",
    "conv2d_backward": "(dy, x, w, stride, padding, dw=None, db=None, need_dx=True, "
                       "need_db=True, accumulate=True) -> (dx or None, dw, db or None)",
    "conv2d_relu_maxpool_forward": "(x, w, b, stride, padding, pool_kernel, pool_stride, "
                                   "pool_padding) -> (y, argmax) of maxpool2d_forward(relu("
                                   "conv2d_forward(x, w, b)))",
    "conv2d_relu_maxpool_backward": "(g, y, argmax, x, w, stride, padding, pool_kernel, "
                                    "pool_stride, pool_padding, dw=None, db=None, need_dx=True, "
                                    "need_db=True, accumulate=True) -> (dx or None, dw, db or "
                                    "None): conv2d_backward of maxpool2d_backward of "
                                    "relu_backward(g, y)",
    "maxpool2d_forward": "(x, kernel_size, stride=None, padding=0) -> (y, argmax int32: each "
                         "maximum's flat h * W + w index in its input plane; the first maximum "
                         "of a window wins, or the last NaN where it holds NaNs)",
    "maxpool2d_backward": "(dy, argmax, input_shape, kernel_size, stride=None, padding=0) -> dx",
    "avgpool2d_forward": "(x, kernel_size, stride=None, padding=0) -> y: window means, zero "
                         "padding counted",
    "avgpool2d_backward": "(dy, input_shape, kernel_size, stride=None, padding=0) -> dx",
    # normalisation
    "batchnorm_forward": "(x (N, C, ...), gamma or None, beta or None, running_mean or None, "
                         "running_var or None, training, momentum, eps) -> (y, mean (C,), "
                         "invstd (C,)): by the batch's statistics when training (the running "
                         "ones updated in place, with the unbiased variance), else the running "
                         "ones",
    "batchnorm_backward": "(dy, x, gamma or None, mean, invstd, dgamma, dbeta, training, need_dx, "
                          "need_dgamma, accumulate) -> (dx or None, dgamma or None, dbeta or None)",
    # elementwise and row-wise activations
    "relu_forward": "(x, out=None) -> 0 where x <= 0, else x (NaN kept)",
    "relu_backward": "(dy, x) -> 0 where x <= 0, else dy (a NaN x passes dy)",
    "leaky_relu_forward": "(x, slope=0.01, out=None) -> x if x > 0 else slope * x",
    "leaky_relu_backward": "(dy, x, slope=0.01) -> dy if x > 0 else slope * dy",
    "sigmoid_forward": "(x, out=None) -> 1 / (1 + exp(-x))",
    "sigmoid_backward": "(dy, y) -> dy * y * (1 - y)",
    "tanh_forward": "(x, out=None) -> tanh(x)",
    "tanh_backward": "(dy, y) -> dy * (1 - y^2)",
    "threshold_forward": "(x, threshold, value, out=None) -> value if x <= threshold else x",
    "threshold_backward": "(dy, x, threshold) -> 0 where x <= threshold, else dy",
    "softmax_forward": "(x (N, C)) -> softmax over the last axis",
    "softmax_backward": "(dy, y) -> y * (dy - sum(dy * y))",
    "log_softmax_forward": "(x (N, C)) -> x - logsumexp(x) over the last axis",
    "log_softmax_backward": "(dy, y) -> dy - exp(y) * sum(dy)",
    # losses: the mean over the batch, a Python float; backward scaled by `scale`
    "cross_entropy_forward": "(logits (N, C), labels (N,)) -> (loss, probs (N, C))",
    "cross_entropy_backward": "(probs, labels, scale=1.0) -> dlogits",
    "cross_entropy_soft_forward": "(logits, targets (N, C)) -> (loss, probs)",
    "cross_entropy_soft_backward": "(probs, targets, scale=1.0) -> dlogits",
    "nll_forward": "(logp (N, C), labels (N,)) -> loss",
    "nll_backward": "(labels, num_classes, scale=1.0) -> dlogp",
    "mse_forward": "(pred, target) -> loss",
    "mse_backward": "(pred, target, scale=1.0) -> dpred",
    "l1_forward": "(pred, target) -> loss",
    "l1_backward": "(pred, target, scale=1.0) -> dpred",
    "bce_forward": "(p, target) -> loss, logs clamped at -100",
    "bce_backward": "(p, target, scale=1.0) -> dp",
    "bce_with_logits_forward": "(z, target) -> loss",
    "bce_with_logits_backward": "(z, target, scale=1.0) -> dz",
    # data, dropout, optimizers
    "gather_rows": "(src (N, ...), rows int64 (B,), out=None) -> src[rows]",
    "dropout_forward": "(x, p, seed) -> (y, mask uint8): element i kept iff the splitmix64 "
                       "uniform of (seed, i) >= p, y = x * mask / (1 - p)",
    "dropout_backward": "(dy, mask, p) -> dy * mask / (1 - p)",
    "sgd_step": "(param, grad, momentum_buf, lr, momentum, dampening, weight_decay, nesterov, "
                "first_step): in place, PyTorch's SGD; each of the three an array or a list of "
                "arrays (momentum_buf None without momentum)",
    "adam_step": "(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled): in "
                 "place, PyTorch's Adam (AdamW when decoupled)",
    "rmsprop_step": "(param, grad, square_avg, momentum_buf or None, grad_avg or None, lr, alpha, "
                    "eps, weight_decay, momentum, centered): in place, PyTorch's RMSprop",
    "adagrad_step": "(param, grad, state_sum, lr, lr_decay, weight_decay, eps, step): in place, "
                    "PyTorch's Adagrad",
    "adadelta_step": "(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay): in place, "
                     "PyTorch's Adadelta",
}


GRAPHS = {
    "capture_begin": "() -> None: record this device's kernel launches from now on, instead of "
                     "running them (RuntimeError when a capture is open already)",
    "capture_end": "() -> graph: close the capture; graph.replay() runs the launches recorded",
    "capture_abort": "() -> None: drop the capture that is open, if one is",
}


def device_of(x):
    """Where an array lives, by name: "cpu" for NumPy arrays, Python data and PyTorch CPU
    tensors, the ``device`` of a backend's own arrays (nnfast's GPU arrays: "cuda"), "cuda" for
    anything else with ``__cuda_array_interface__`` (CuPy's, PyTorch's GPU arrays), else the
    name in the array's ``device`` attribute. nnfast's own arrays are named without reading
    their ``__cuda_array_interface__`` (which waits for the GPU, and is refused while a graph
    is captured)."""
    if isinstance(x, np.ndarray):
        return "cpu"
    device = getattr(x, "device", None)
    if isinstance(device, str):
        return device
    if hasattr(x, "__cuda_array_interface__"):
        return "cuda"
    if device is None:
        return "cpu"
    return str(getattr(device, "type", device))   # torch.device has .type


def as_host(x):
    """x's values as a NumPy array: x itself for NumPy, a copy from a device array."""
    if not isinstance(x, np.ndarray) and device_of(x) != "cpu":
        return x.numpy()
    return np.asarray(x)


def move(a, backend):
    """A copy of ``a`` (an array of any device) on ``backend``'s device; 64-byte aligned on the
    host, as the parameters' and optimizers' arrays are."""
    host = np.ascontiguousarray(as_host(a))
    if not backend.host:
        return backend.to_device(host, host.dtype)
    out = backend.zeros(host.shape, host.dtype)
    out[...] = host
    return out


class Backend:
    """A device's functions, taken from the module that implements them (cpu.py, reference.py):
    ``name``, ``device`` (where its arrays live; the module's DEVICE) and ``host`` (whether that
    is the CPU, NumPy arrays). Copying or pickling a module that uses it refers to it by name:
    there is one per device."""

    def __init__(self, name, module):
        self.name = name
        self.device = module.DEVICE
        self.host = self.device == "cpu"
        for function in INTERFACE:
            setattr(self, function, getattr(module, function))
        self.graphs = all(hasattr(module, function) for function in GRAPHS)
        for function in GRAPHS if self.graphs else ():
            setattr(self, function, getattr(module, function))

    def __reduce__(self):
        return get, (self.name,)

    def __repr__(self):
        return f"<nnfast backend {self.name!r}>"


def _not_implemented(name, device):
    def missing(*args, **kwargs):
        raise NotImplementedError(f"nnfast's {device} backend has no {name} kernel yet")
    missing.__name__ = name
    missing.no_kernel = True
    return missing


# The CUDA backend covers part of INTERFACE: the rest raise NotImplementedError when called.
for _name in INTERFACE:
    if not hasattr(cuda, _name):
        setattr(cuda, _name, _not_implemented(_name, "CUDA"))
del _name

BACKENDS = {"cpu": Backend("cpu", cpu), "reference": Backend("reference", reference)}
if cuda.available():
    BACKENDS["cuda"] = Backend("cuda", cuda)


def get(device):
    """The backend for a device name ("cpu", "reference", "cuda" in a CUDA build) or a backend
    object itself."""
    if not isinstance(device, str):
        return device
    if device == "cuda" and not gpu_available():
        raise RuntimeError(f"cannot use device 'cuda': {gpu_missing_reason()}")
    try:
        return BACKENDS[device]
    except KeyError:
        raise ValueError(f"unknown device {device!r}; nnfast has {sorted(BACKENDS)}") from None


def has_kernel(backend, name):
    """Whether ``backend``'s function ``name`` runs (not a stub raising NotImplementedError)."""
    function = getattr(backend, name, None)
    return callable(function) and not getattr(function, "no_kernel", False)


def missing(backend):
    """The INTERFACE functions ``backend`` lacks (empty for a complete backend)."""
    return [name for name in INTERFACE if not callable(getattr(backend, name, None))]
