"""Activation layers: elementwise (ReLU, LeakyReLU, Sigmoid, Tanh, Threshold, Identity) and over
the last axis (Softmax, LogSoftmax). Each caches what its backward needs: the input or the
output."""
from .._grad import grad_enabled, saved_for_backward
from ._arrays import as_float32, is_float32_array
from .module import Module, require_forward


class _Activation(Module):
    """y = f(x) by a backend kernel pair; backward from the saved input or output."""

    uses_output = False   # backward needs the output y (sigmoid, tanh, softmax) or the input x
    elementwise = True    # y[i] depends on x[i] alone, so y may be written over x
    fused_name = None     # the name fused kernels know this activation by ("relu"), if they do

    def __init__(self):
        self._saved = None

    def apply(self, x, out=None):
        """y = f(x) (into ``out`` when given)."""
        raise NotImplementedError

    def gradients(self, grad_out, saved):
        """The gradient at the input from the one at the output and the saved input or output
        (for ReLU, its output serves as its input would: y <= 0 exactly where x <= 0, and y is
        NaN where x is)."""
        raise NotImplementedError

    def forward(self, x):
        x = as_float32(x, self.backend, type(self).__name__)
        y = self.apply(x)
        self._saved = saved_for_backward(y if self.uses_output else x)
        return y

    def forward_overwriting(self, x):
        """Forward that may write its output over ``x``, a temporary nobody else holds: under
        ``no_grad`` an elementwise activation does so, which saves an activation-sized array."""
        if grad_enabled() or not self.elementwise or not is_float32_array(x):
            return self.forward(x)
        self._saved = None
        return self.apply(x, out=x)

    def backward(self, grad_out):
        saved = require_forward(self, self._saved)
        return self.gradients(as_float32(grad_out, self.backend,
                                         f"{type(self).__name__}.backward", "gradient"), saved)


class ReLU(_Activation):
    fused_name = "relu"

    def apply(self, x, out=None):
        return self.backend.relu_forward(x, out=out)

    def gradients(self, g, x):
        return self.backend.relu_backward(g, x)


class LeakyReLU(_Activation):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def apply(self, x, out=None):
        return self.backend.leaky_relu_forward(x, self.negative_slope, out=out)

    def gradients(self, g, x):
        return self.backend.leaky_relu_backward(g, x, self.negative_slope)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Activation):
    uses_output = True
    fused_name = "sigmoid"

    def apply(self, x, out=None):
        return self.backend.sigmoid_forward(x, out=out)

    def gradients(self, g, y):
        return self.backend.sigmoid_backward(g, y)


class Tanh(_Activation):
    uses_output = True

    def apply(self, x, out=None):
        return self.backend.tanh_forward(x, out=out)

    def gradients(self, g, y):
        return self.backend.tanh_backward(g, y)


class Threshold(_Activation):
    """y = x if x > threshold else value (PyTorch's Threshold)."""

    def __init__(self, threshold, value):
        super().__init__()
        self.threshold, self.value = float(threshold), float(value)

    def apply(self, x, out=None):
        return self.backend.threshold_forward(x, self.threshold, self.value, out=out)

    def gradients(self, g, x):
        return self.backend.threshold_backward(g, x, self.threshold)

    def get_config(self):
        return {"threshold": self.threshold, "value": self.value}


class _RowActivation(_Activation):
    """An activation over the last axis; ``dim`` (PyTorch's argument) may name it (-1, or 1 for
    (N, C) rows)."""

    uses_output = True
    elementwise = False

    def __init__(self, dim=-1):
        super().__init__()
        if dim not in (-1, 1):
            raise ValueError(f"{type(self).__name__} works over the last axis: dim must be -1 "
                             f"(or 1 for (N, C) inputs), got {dim}")
        self.dim = dim

    def forward(self, x):
        if self.dim == 1 and getattr(x, "ndim", 2) != 2:
            raise ValueError(f"{type(self).__name__}(dim=1) takes (N, C) inputs, got "
                             f"{x.ndim} dimensions")
        return super().forward(x)

    def get_config(self):
        return {} if self.dim == -1 else {"dim": self.dim}


class Softmax(_RowActivation):
    """Softmax over the last axis."""

    def apply(self, x, out=None):
        return self.backend.softmax_forward(x)

    def gradients(self, g, y):
        return self.backend.softmax_backward(g, y)


class LogSoftmax(_RowActivation):
    """Log-softmax over the last axis."""

    def apply(self, x, out=None):
        return self.backend.log_softmax_forward(x)

    def gradients(self, g, y):
        return self.backend.log_softmax_backward(g, y)


class Identity(_Activation):
    """Returns its input unchanged (Keras's "linear" activation)."""

    def forward(self, x):
        return x

    def forward_overwriting(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


_BY_NAME = {None: Identity, "linear": Identity, "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh,
            "softmax": Softmax, "leaky_relu": LeakyReLU, "log_softmax": LogSoftmax}


def activation_by_name(name):
    """The activation layer for a Keras activation string (None / "linear": identity)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{sorted(k for k in _BY_NAME if k)}")
    return _BY_NAME[name]()
