"""Layers with parameters or structure: Linear, Dense, Conv2d, pooling, Flatten, Dropout,
ZeroPad2d. Layouts are PyTorch's: Linear weight (out, in); Conv2d weight
(out_channels, in_channels, kh, kw); images NCHW."""
import numpy as np

from .. import _rng
from .._grad import saved_for_backward
from ._arrays import as_float32, host_only, shape_str
from .activations import Identity, activation_by_name
from .init import initialize
from .module import Module, Parameter, add_parameter_gradients, require_forward


def _pair(v, name):
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(i, (int, np.integer)) for i in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(pair[0]), int(pair[1])


def positive_size(value, name, who):
    """``value`` as an int, or ValueError naming ``who`` and ``name`` unless it is an integer >= 1
    (a float such as 1.5 or a bool is refused, not rounded)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_window(kernel_size, stride, padding, who):
    """The pooling window rules the kernels hold to: kernel and stride >= 1, padding between 0
    and half the kernel size (so that no window lies wholly in the padding)."""
    if min(kernel_size) < 1:
        raise ValueError(f"{who}: kernel_size must be >= 1, got {kernel_size}")
    if min(stride) < 1:
        raise ValueError(f"{who}: stride must be >= 1, got {stride}")
    if min(padding) < 0 or any(p > k // 2 for p, k in zip(padding, kernel_size)):
        raise ValueError(f"{who}: padding must be between 0 and half the kernel size, got "
                         f"{padding} for kernel_size {kernel_size}")


class _WeightedLayer(Module):
    """Layers whose backward can skip the input gradient (the first layer of a model): they
    implement ``_backward(grad_out, need_dx)``."""

    def backward(self, grad_out):
        return self._backward(grad_out, True)

    def backward_parameters(self, grad_out):
        self._backward(grad_out, False)


class Linear(_WeightedLayer):
    """y (N, out_features) = x (N, in_features) @ weight.T + bias; weight (out, in)."""

    def __init__(self, in_features, out_features, bias=True, init="glorot_uniform"):
        self.in_features = positive_size(in_features, "in_features", "Linear")
        self.out_features = positive_size(out_features, "out_features", "Linear")
        self.init = init
        # weight: (out, in) for users, stored as its transpose (in, out) for the kernels
        self.weight = Parameter(initialize(init, (self.out_features, self.in_features)),
                                transposed=True)
        self.bias = Parameter(initialize("zeros", (self.out_features,))) if bias else None
        self._x, self._aux = None, -1

    def apply(self, x, activation="none"):
        """(x as float32, y, aux): y = activation(x @ weight.T + bias) by the backend's one kernel
        (activation "none", "relu" or "sigmoid"), keeping nothing; aux goes back to
        ``gradients``. ``forward`` and the fused steps of nn/fusion.py keep x and aux."""
        x = as_float32(x, self.backend, "Linear")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expected input with {self.in_features} features, "
                             f"got {shape_str(x.shape)}")
        # positional arguments (x, wt, b, out_features, activation, return_nonzeros): pybind11
        # parses keywords slowly enough to show in a training step
        y, aux = self.backend.linear_forward(
            x, self.weight.storage, self.bias.storage if self.bias else None, self.out_features,
            activation, True)
        return x, y, aux

    def gradients(self, grad_out, x, aux, need_dx=True, dx_activation="none"):
        """Add the parameter gradients for ``grad_out`` at the output of ``apply(x)`` and return
        the gradient at the input (None without ``need_dx``). With ``dx_activation`` ("relu" or
        "sigmoid"), x is that activation's output and the result the gradient at its input,
        computed in the same kernel."""
        grad_out = as_float32(grad_out, self.backend, "Linear.backward", "gradient")
        dx, _, _ = add_parameter_gradients(
            # positional: (dy, x, wt, dwt, db, need_dx, need_db, accumulate, out_features,
            # x_nonzeros, dx_activation), as in apply
            self.weight, self.bias, lambda dwt, db, accumulate: self.backend.linear_backward(
                grad_out, x, self.weight.storage, dwt, db, need_dx, db is not None, accumulate,
                self.out_features, aux, dx_activation))
        return dx

    def forward(self, x):
        x, y, aux = self.apply(x)
        self._x, self._aux = saved_for_backward(x), aux
        return y

    def _backward(self, grad_out, need_dx):
        return self.gradients(grad_out, require_forward(self, self._x), self._aux, need_dx)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "init": self.init}


def same_padding(kernel_size, who):
    """The symmetric padding that keeps the size at stride 1 ("same"): (k - 1) / 2 per side."""
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"{who}: padding='same' with the even kernel size {kernel_size} needs "
                         "uneven padding; put nn.ZeroPad2d before a layer with padding=0")
    return tuple((k - 1) // 2 for k in kernel_size)


class Conv2d(_WeightedLayer):
    """y (N, OC, OH, OW) = cross-correlation of x (N, C, H, W) with weight (OC, C, kh, kw) + bias;
    OH = (H + 2 * padding - kh) // stride + 1. ``padding`` is an int, a pair, "valid" (0) or
    "same" (stride 1 and odd kernel sizes, as PyTorch)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 init="glorot_uniform"):
        self.in_channels = positive_size(in_channels, "in_channels", "Conv2d")
        self.out_channels = positive_size(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        if padding == "same" and self.stride != (1, 1):
            raise ValueError(f"Conv2d: padding='same' needs stride 1, got {stride}")
        self.padding = (same_padding(self.kernel_size, "Conv2d") if padding == "same" else
                        (0, 0) if padding == "valid" else _pair(padding, "padding"))
        if min(self.kernel_size) < 1:
            raise ValueError(f"Conv2d: kernel_size must be >= 1, got {self.kernel_size}")
        if min(self.stride) < 1:
            raise ValueError(f"Conv2d: stride must be >= 1, got {self.stride}")
        if min(self.padding) < 0:
            raise ValueError(f"Conv2d padding must be >= 0, got {padding}")
        self.init = init
        self.weight = Parameter(initialize(
            init, (self.out_channels, self.in_channels, *self.kernel_size)))
        self.bias = Parameter(initialize("zeros", (self.out_channels,))) if bias else None
        self._x = None

    def check_input(self, x):
        """x as float32, checked to be (N, in_channels, H, W)."""
        x = as_float32(x, self.backend, "Conv2d")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d expected input (N, {self.in_channels}, H, W), "
                             f"got {shape_str(x.shape)}")
        return x

    def forward(self, x):
        x = self.check_input(x)
        self._x = saved_for_backward(x)
        return self.backend.conv2d_forward(x, self.weight.storage,
                                           self.bias.storage if self.bias else None, self.stride,
                                           self.padding)

    def gradients(self, grad_out, x, need_dx=True):
        """Add the parameter gradients for ``grad_out`` at the output of ``self(x)`` and return
        the gradient at the input (None without ``need_dx``)."""
        grad_out = as_float32(grad_out, self.backend, "Conv2d.backward", "gradient")
        dx, _, _ = add_parameter_gradients(
            self.weight, self.bias, lambda dw, db, accumulate: self.backend.conv2d_backward(
                grad_out, x, self.weight.storage, self.stride, self.padding, dw=dw, db=db,
                need_dx=need_dx, need_db=db is not None, accumulate=accumulate))
        return dx

    def _backward(self, grad_out, need_dx):
        return self.gradients(grad_out, require_forward(self, self._x), need_dx)

    def output_shape(self, input_shape):
        _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (self.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "bias": self.bias is not None, "init": self.init}


class _Pool2d(Module):
    """Shared geometry of the pooling layers (stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        check_window(self.kernel_size, self.stride, self.padding, type(self).__name__)
        self._shape = self._argmax = None

    def _input(self, x):
        x = as_float32(x, self.backend, type(self).__name__)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expected input (N, C, H, W), "
                             f"got {shape_str(x.shape)}")
        return x

    def output_shape(self, input_shape):
        c, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    def get_config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


class MaxPool2d(_Pool2d):
    """Window maxima over (N, C, H, W); backward routes each gradient to its argmax."""

    def apply(self, x):
        """(y, argmax) for x (N, C, H, W), keeping nothing."""
        return self.backend.maxpool2d_forward(self._input(x), self.kernel_size, self.stride,
                                              self.padding)

    def gradients(self, grad_out, argmax, input_shape):
        """The gradient at the input: each element of ``grad_out`` sent to its argmax."""
        return self.backend.maxpool2d_backward(
            as_float32(grad_out, self.backend, "MaxPool2d.backward", "gradient"), argmax,
            input_shape, self.kernel_size, self.stride, self.padding)

    def forward(self, x):
        y, argmax = self.apply(x)
        self._shape, self._argmax = np.shape(x), saved_for_backward(argmax)
        return y

    def backward(self, grad_out):
        argmax = require_forward(self, self._argmax)
        return self.gradients(grad_out, argmax, self._shape)


class AvgPool2d(_Pool2d):
    """Window means over (N, C, H, W) (zero padding counted, as PyTorch's default)."""

    def forward(self, x):
        x = self._input(x)
        self._shape = x.shape
        return self.backend.avgpool2d_forward(x, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_out):
        shape = require_forward(self, self._shape)
        return self.backend.avgpool2d_backward(
            as_float32(grad_out, self.backend, "AvgPool2d.backward", "gradient"), shape,
            self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): a view, of any dtype."""

    def __init__(self):
        self._shape = None

    def _own(self, x, who):
        """x as an array of this module's device (Python data becomes NumPy's)."""
        return x if self.backend.is_array(x) else as_float32(x, self.backend, who)

    def forward(self, x):
        x = self._own(x, "Flatten")
        if x.ndim < 1:
            raise ValueError("Flatten expected an input with a batch dimension")
        self._shape = tuple(x.shape)
        return x.reshape((x.shape[0], -1))

    def backward(self, grad_out):
        shape = require_forward(self, self._shape)
        return self._own(grad_out, "Flatten.backward").reshape(shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1/(1-p); identity in eval mode. Masks come from ``nnfast.seed``'s generator."""

    def __init__(self, p=0.5):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self._mask = None

    def capturable(self):
        return not self.training or self.p == 0.0   # a new seed every step otherwise

    def forward(self, x):
        x = as_float32(x, self.backend, "Dropout")
        if not self.training or self.p == 0.0:
            self._mask = False
            return x
        seed = int(_rng.generator().integers(0, 2**63))
        y, mask = self.backend.dropout_forward(x, self.p, seed)
        self._mask = saved_for_backward(mask)
        return y

    def backward(self, grad_out):
        mask = require_forward(self, self._mask)
        if mask is False:
            return grad_out
        return self.backend.dropout_backward(
            as_float32(grad_out, self.backend, "Dropout.backward", "gradient"), mask, self.p)

    def get_config(self):
        return {"p": self.p}


class ConstantPad2d(Module):
    """Padding of (N, C, H, W) with ``value``: an int, or (left, right, top, bottom) as PyTorch."""

    def __init__(self, padding, value=0.0):
        pad = (padding,) * 4 if isinstance(padding, (int, np.integer)) else tuple(padding)
        if len(pad) != 4 or min(pad) < 0:
            raise ValueError(f"{type(self).__name__} padding must be an int or 4 non-negative "
                             f"ints, got {padding}")
        self.padding, self.value = tuple(int(p) for p in pad), float(value)
        self._shape = None

    def forward(self, x):
        host_only(self)
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expected input (N, C, H, W), "
                             f"got {shape_str(x.shape)}")
        self._shape = x.shape
        left, right, top, bottom = self.padding
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                      constant_values=self.value)

    def backward(self, grad_out):
        _, _, h, w = require_forward(self, self._shape)
        left, _, top, _ = self.padding
        return np.ascontiguousarray(grad_out[:, :, top:top + h, left:left + w])

    def output_shape(self, input_shape):
        c, h, w = input_shape
        left, right, top, bottom = self.padding
        return (c, h + top + bottom, w + left + right)

    def get_config(self):
        return {"padding": list(self.padding), "value": self.value}


class ZeroPad2d(ConstantPad2d):
    """Zero padding of (N, C, H, W): an int, or (left, right, top, bottom) as PyTorch."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def get_config(self):
        return {"padding": list(self.padding)}


class Dense(Module):
    """Keras's Dense: ``Dense(units, activation=None)``, a Linear layer whose input size is
    inferred on first use (or given as ``input_dim``), followed by an optional activation
    ("relu", "sigmoid", "tanh", "softmax", "leaky_relu", "linear" / None)."""

    transparent = True   # its Linear's weights are named as its own ("weight", "bias")

    def __init__(self, units, activation=None, init="glorot_uniform", use_bias=True,
                 input_dim=None, input_shape=None):
        if input_shape is not None:
            if len(tuple(input_shape)) != 1:
                raise ValueError(f"Dense takes input_shape (features,), got {input_shape}")
            input_dim = tuple(input_shape)[0]
        self.units = positive_size(units, "units", "Dense")
        self.activation_name, self.init = activation, init
        self.use_bias = bool(use_bias)
        self.activation = activation_by_name(activation)
        self.linear = None
        if input_dim is not None:
            self.build(input_dim)

    def build(self, input_dim):
        """Create the weights for inputs of ``input_dim`` features, on this layer's device."""
        self.linear = Linear(int(input_dim), self.units, bias=self.use_bias, init=self.init)
        self.linear.to(self.backend)

    def is_built(self):
        return self.linear is not None

    @property
    def input_shape(self):
        """One sample's shape, (features,), once known."""
        return None if self.linear is None else (self.linear.in_features,)

    def parts(self):
        """The layers Dense runs, in order, for a model's fusion plan (see nn/fusion.py): its
        Linear and its activation; None until the Linear is built."""
        if self.linear is None:
            return None
        return [self.linear] if isinstance(self.activation, Identity) else [self.linear,
                                                                             self.activation]

    @property
    def weight(self):
        return self.linear.weight if self.linear else None

    @property
    def bias(self):
        return self.linear.bias if self.linear else None

    def forward(self, x):
        x = as_float32(x, self.backend, "Dense")
        if self.linear is None:
            if x.ndim != 2:
                raise ValueError(f"Dense expected input (N, features), got {shape_str(x.shape)}")
            self.build(x.shape[1])
        return self.activation.forward_overwriting(self.linear(x))

    def backward(self, grad_out):
        return self.linear.backward(self.activation.backward(grad_out))

    def backward_parameters(self, grad_out):
        self.linear.backward_parameters(self.activation.backward(grad_out))

    def output_shape(self, input_shape):
        return (self.units,)

    def get_config(self):
        return {"units": self.units, "activation": self.activation_name, "init": self.init,
                "use_bias": self.use_bias,
                "input_dim": self.linear.in_features if self.linear else None}
