"""Activation layers: elementwise (ReLU, LeakyReLU, Sigmoid, Tanh, Threshold) and over the last
axis (Softmax, LogSoftmax). Each caches what its backward needs: the input or the output."""
from .. import _core
from .._grad import grad_enabled, saved_for_backward
from ._arrays import as_float32, is_float32_array
from .module import Module, require_forward


class _Activation(Module):
    """y = f(x) by a _core kernel pair; backward from the saved input or output."""

    uses_output = False   # backward needs the output y (sigmoid, tanh, softmax) or the input x
    elementwise = True    # y[i] depends on x[i] alone, so y may be written over x
    fused_name = None     # the name Linear's kernel knows this activation by, if it does

    def __init__(self):
        self._saved = None

    def _forward(self, x, out=None):
        raise NotImplementedError

    def _backward(self, grad_out, saved):
        raise NotImplementedError

    def forward(self, x):
        x = as_float32(x, type(self).__name__)
        y = self._forward(x)
        self._saved = saved_for_backward(y if self.uses_output else x)
        return y

    def forward_overwriting(self, x):
        """Forward that may write its output over ``x``, a temporary nobody else holds: under
        ``no_grad`` an elementwise activation does so, which saves an activation-sized array."""
        if grad_enabled() or not self.elementwise or not is_float32_array(x):
            return self.forward(x)
        self._saved = None
        return self._forward(x, out=x)

    def backward(self, grad_out):
        saved = require_forward(self, self._saved)
        return self._backward(as_float32(grad_out, f"{type(self).__name__}.backward", "gradient"),
                              saved)

    def keep_output(self, y):
        """Keep what backward needs after a forward computed elsewhere (Linear's fused kernel):
        its output y. (For ReLU, y > 0 exactly where x > 0, so y serves as its input would.)"""
        self._saved = saved_for_backward(y)


_FUSED = object()   # ReLU._saved after a fused forward


class ReLU(_Activation):
    fused_name = "relu"

    def _forward(self, x, out=None):
        return _core.relu_forward(x, out=out)

    def ran_fused(self):
        """Mark that this ReLU's forward ran inside a fused Conv2d -> ReLU -> MaxPool2d kernel
        (Conv2d.forward_relu_maxpool): it kept nothing, and its backward is taken by the pooling
        layer's ``backward_through_relu``."""
        self._saved = _FUSED

    def ran_fused_last(self):
        """True when the last forward ran fused (see ``ran_fused``)."""
        return self._saved is _FUSED

    def backward(self, grad_out):
        if self._saved is _FUSED:
            raise RuntimeError("ReLU.backward: this ReLU ran fused with the Conv2d before it and "
                               "the MaxPool2d after it (inside a Sequential), so it kept nothing "
                               "of its own; call backward on the Sequential")
        return super().backward(grad_out)

    def _backward(self, g, x):
        return _core.relu_backward(g, x)


class LeakyReLU(_Activation):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _forward(self, x, out=None):
        return _core.leaky_relu_forward(x, self.negative_slope, out=out)

    def _backward(self, g, x):
        return _core.leaky_relu_backward(g, x, self.negative_slope)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Activation):
    uses_output = True
    fused_name = "sigmoid"

    def _forward(self, x, out=None):
        return _core.sigmoid_forward(x, out=out)

    def _backward(self, g, y):
        return _core.sigmoid_backward(g, y)


class Tanh(_Activation):
    uses_output = True

    def _forward(self, x, out=None):
        return _core.tanh_forward(x, out=out)

    def _backward(self, g, y):
        return _core.tanh_backward(g, y)


class Threshold(_Activation):
    """y = x if x > threshold else value (PyTorch's Threshold)."""

    def __init__(self, threshold, value):
        super().__init__()
        self.threshold, self.value = float(threshold), float(value)

    def _forward(self, x, out=None):
        return _core.threshold_forward(x, self.threshold, self.value, out=out)

    def _backward(self, g, x):
        return _core.threshold_backward(g, x, self.threshold)

    def get_config(self):
        return {"threshold": self.threshold, "value": self.value}


class Softmax(_Activation):
    """Softmax over the last axis."""
    uses_output = True
    elementwise = False

    def _forward(self, x, out=None):
        return _core.softmax_forward(x)

    def _backward(self, g, y):
        return _core.softmax_backward(g, y)


class LogSoftmax(_Activation):
    """Log-softmax over the last axis."""
    uses_output = True
    elementwise = False

    def _forward(self, x, out=None):
        return _core.log_softmax_forward(x)

    def _backward(self, g, y):
        return _core.log_softmax_backward(g, y)


def activation_by_name(name):
    """The activation layer for a Keras activation string (None / "linear": identity)."""
    from .layers import Identity
    table = {None: Identity, "linear": Identity, "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh,
             "softmax": Softmax, "leaky_relu": LeakyReLU, "log_softmax": LogSoftmax}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{sorted(k for k in table if k)}")
    return table[name]()
