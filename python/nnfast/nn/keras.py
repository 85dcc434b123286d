"""Keras spellings of the image layers: ``Input``, ``Conv2D``, ``MaxPooling2D``,
``AveragePooling2D``, ``BatchNormalization``, channels-last (N, H, W, C) by default as Keras has them.

Each is a composite of nnfast's own layers (``parts()``): the layout change to channels-first,
the NCHW layer (and the activation), the change back. A model's plan runs the parts and drops
each change back that the next layer's change to channels-first would undo, so a chain of these
layers transposes once on the way in and once on the way out, and Conv2D -> MaxPooling2D fuses
as Conv2d -> ReLU -> MaxPool2d does."""
import math

import numpy as np

from ._arrays import host_only, shape_str
from .activations import Identity, activation_by_name
from .layers import AvgPool2d, ConstantPad2d, Conv2d, MaxPool2d, _pair, positive_size
from .module import Module, require_forward
from .normalization import BatchNorm1d, BatchNorm2d
from .symbolic import SymbolicTensor

_FORMATS = ("channels_last", "channels_first")


class ToChannelsFirst(Module):
    """(N, H, W, C) -> (N, C, H, W), a C-contiguous copy."""

    order, inverse = (0, 3, 1, 2), (0, 2, 3, 1)

    def forward(self, x):
        host_only(self)
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expected a 4-D batch of images, "
                             f"got {shape_str(x.shape)}")
        return np.ascontiguousarray(x.transpose(self.order))

    def backward(self, grad_out):
        return np.ascontiguousarray(np.asarray(grad_out).transpose(self.inverse))

    def output_shape(self, input_shape):
        return tuple(input_shape[i - 1] for i in self.order[1:])


class ToChannelsLast(ToChannelsFirst):
    """(N, C, H, W) -> (N, H, W, C), a C-contiguous copy."""

    order, inverse = (0, 2, 3, 1), (0, 3, 1, 2)


def cancel_layout_changes(layers):
    """``layers`` without each ToChannelsLast that a ToChannelsFirst right after it undoes (the
    pair is dropped)."""
    out = []
    for layer in layers:
        if type(layer) is ToChannelsFirst and out and type(out[-1]) is ToChannelsLast:
            out.pop()
        else:
            out.append(layer)
    return out


class Input(Module, SymbolicTensor):
    """Keras's ``Input(shape=...)``: one sample's shape (``shape`` here, without the batch).
    As a Sequential's first layer it lets ``summary()`` show every output shape (and build lazy
    layers) before any data is seen, and refuses batches of another shape; in the functional API
    it is the symbolic tensor layers are first called on (``nf.Model(inputs, outputs)``)."""

    shape = None   # an attribute here, not SymbolicTensor's property

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"Input needs a shape of positive sizes, got {shape}")

    @property
    def input_shape(self):
        return self.shape

    @property
    def sample_shape(self):
        return self.shape

    def forward(self, x):
        if np.shape(x)[1:] != self.shape:
            raise ValueError(f"Input expected samples of shape {self.shape}, got a batch of "
                             f"{shape_str(np.shape(x))}")
        return x

    def backward(self, grad_out):
        return grad_out

    def get_config(self):
        return {"shape": list(self.shape)}


class _Composite(Module):
    """A Keras layer run as its ``parts()`` (None until the first input builds them)."""

    transparent = True   # its NCHW layer's weights are named as its own
    data_format = "channels_last"
    input_shape = None

    def _layout(self, data_format):
        if data_format not in _FORMATS:
            raise ValueError(f"data_format must be one of {_FORMATS}, got {data_format!r}")
        self.data_format = data_format
        if data_format == "channels_last":
            self.to_first, self.to_last = ToChannelsFirst(), ToChannelsLast()

    def _wrap(self, inner):
        """The parts: ``inner`` between the layout changes, when channels-last."""
        if self.data_format == "channels_first":
            return list(inner)
        return [self.to_first, *inner, self.to_last]

    def build(self, sample_shape):
        """Create the parts for samples of ``sample_shape`` (in this layer's data format), which
        becomes ``input_shape`` (saved in the config, so a loaded model is built the same)."""
        if sample_shape is not None:
            self.input_shape = tuple(int(d) for d in sample_shape)
        self.make_parts(self.input_shape)
        self.train(self.training)   # the new parts take this layer's mode

    def make_parts(self, sample_shape):
        raise NotImplementedError

    def channels_first_shape(self, sample_shape):
        sample_shape = tuple(sample_shape)
        if len(sample_shape) != 3:
            raise ValueError(f"{type(self).__name__} expected images (H, W, C) or (C, H, W), "
                             f"got samples of shape {sample_shape}")
        if self.data_format == "channels_last":
            return (sample_shape[2], sample_shape[0], sample_shape[1])
        return sample_shape

    def forward(self, x):
        if self.parts() is None:
            self.build(np.shape(x)[1:])
        for part in self.parts():
            x = part(x)
        return x

    def backward(self, grad_out):
        for part in reversed(require_forward(self, self.parts())):
            grad_out = part.backward(grad_out)
        return grad_out

    def output_shape(self, input_shape):
        if self.parts() is None:
            self.build(input_shape)
        for part in self.parts():
            input_shape = part.output_shape(input_shape)
        return tuple(input_shape)

    def is_built(self):
        return self.parts() is not None


def _keras_padding(padding, kernel, strides, size, who):
    """(top, bottom, left, right) of Keras's "same" padding for one sample's (H, W), or zeros
    for "valid": the output is ceil(size / stride), the extra row or column at the bottom or
    right."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding != "same":
        raise ValueError(f"{who}: padding must be 'valid' or 'same', got {padding!r}")
    pads = []
    for k, s, n in zip(kernel, strides, size):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Conv2D(_Composite):
    """Keras's ``Conv2D(filters, kernel_size, strides=1, padding="valid" | "same",
    activation=None, use_bias=True, data_format="channels_last", input_shape=None)``: nnfast's
    Conv2d (weight (filters, C, kh, kw), PyTorch's layout) on images (N, H, W, C), the input
    channels taken from the first input (or ``input_shape``)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, data_format="channels_last", input_shape=None,
                 kernel_initializer="glorot_uniform"):
        self.filters = positive_size(filters, "filters", "Conv2D")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides, self.padding = _pair(strides, "strides"), padding
        if min(self.kernel_size) < 1 or min(self.strides) < 1:
            raise ValueError(f"Conv2D: kernel_size and strides must be >= 1, got "
                             f"{self.kernel_size}, {self.strides}")
        self.activation_name, self.use_bias = activation, bool(use_bias)
        self.kernel_initializer = kernel_initializer
        _keras_padding(padding, self.kernel_size, self.strides, (1, 1), "Conv2D")
        self.activation = activation_by_name(activation)
        self._layout(data_format)
        self.conv = self.pad = None
        if input_shape is not None:
            self.build(input_shape)

    def make_parts(self, sample_shape):
        channels, h, w = self.channels_first_shape(sample_shape)
        top, bottom, left, right = _keras_padding(self.padding, self.kernel_size, self.strides,
                                                  (h, w), "Conv2D")
        if top == bottom and left == right:
            padding = (top, left)
        else:
            padding, self.pad = 0, ConstantPad2d((left, right, top, bottom)).to(self.backend)
        self.conv = Conv2d(channels, self.filters, self.kernel_size, self.strides, padding,
                           bias=self.use_bias, init=self.kernel_initializer).to(self.backend)

    def parts(self):
        if self.conv is None:
            return None
        inner = [self.pad] if self.pad is not None else []
        inner.append(self.conv)
        if not isinstance(self.activation, Identity):
            inner.append(self.activation)
        return self._wrap(inner)

    def get_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "activation": self.activation_name, "use_bias": self.use_bias,
                "data_format": self.data_format, "kernel_initializer": self.kernel_initializer,
                "input_shape": None if self.input_shape is None else list(self.input_shape)}


class _Pooling2D(_Composite):
    pool = MaxPool2d
    pad_value = -np.inf   # what "same" padding holds, so that it never wins a window

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format="channels_last", input_shape=None):
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = padding
        _keras_padding(padding, self.pool_size, self.strides, (1, 1), type(self).__name__)
        self._layout(data_format)
        self.layer = self.pad = None
        if input_shape is not None or padding == "valid":   # "same" depends on the image size
            self.build(input_shape)

    def make_parts(self, sample_shape):
        pads = (0, 0, 0, 0)
        if sample_shape is not None:
            _, h, w = self.channels_first_shape(sample_shape)
            pads = _keras_padding(self.padding, self.pool_size, self.strides, (h, w),
                                  type(self).__name__)
        top, bottom, left, right = pads
        if any(pads):
            self.pad = ConstantPad2d((left, right, top, bottom), self.pad_value).to(self.backend)
        self.layer = self.pool(self.pool_size, self.strides).to(self.backend)

    def parts(self):
        if self.layer is None:
            return None
        return self._wrap(([self.pad] if self.pad is not None else []) + [self.layer])

    def get_config(self):
        return {"pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "input_shape": None if self.input_shape is None else list(self.input_shape)}


class MaxPooling2D(_Pooling2D):
    """Keras's ``MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid" | "same",
    data_format="channels_last")``."""


class AveragePooling2D(_Pooling2D):
    """Keras's ``AveragePooling2D(pool_size=(2, 2), strides=None, padding="valid",
    data_format="channels_last")``. ("same" averages would leave the padding out of the count,
    which nnfast's AvgPool2d does not do: refused.)"""

    pool = AvgPool2d

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format="channels_last", input_shape=None):
        if padding != "valid":
            raise ValueError("AveragePooling2D supports padding='valid' only")
        super().__init__(pool_size, strides, padding, data_format, input_shape)


class BatchNormalization(_Composite):
    """Keras's ``BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True,
    scale=True)``: BatchNorm1d on (N, features), BatchNorm2d on images (N, H, W, C) with
    ``axis=-1`` (or (N, C, H, W) with ``axis=1``). Keras's momentum is the running statistics'
    decay: PyTorch's momentum is 1 - it. (The running variance is PyTorch's, unbiased.)"""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 input_shape=None):
        if axis not in (-1, 1, 3):
            raise ValueError(f"BatchNormalization normalises axis -1 (channels last) or 1, got "
                             f"{axis}")
        if center != scale:
            raise ValueError("BatchNormalization needs center and scale both on or both off")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self._layout("channels_first" if axis == 1 else "channels_last")
        self.norm = None
        if input_shape is not None:
            self.build(input_shape)

    def make_parts(self, sample_shape):
        options = dict(eps=self.epsilon, momentum=1.0 - self.momentum, affine=self.center)
        if len(sample_shape) == 1:
            self.norm = BatchNorm1d(sample_shape[0], **options).to(self.backend)
            self.data_format = "channels_first"     # (N, C): no layout to change
        else:
            channels = self.channels_first_shape(sample_shape)[0]
            self.norm = BatchNorm2d(channels, **options).to(self.backend)

    def parts(self):
        return None if self.norm is None else self._wrap([self.norm])

    def get_config(self):
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "input_shape": None if self.input_shape is None else list(self.input_shape)}
