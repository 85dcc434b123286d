"""Layers that join or cut tensors, for models that branch (Keras's merge and cropping layers):
Concatenate, Add, Subtract, Multiply, Average take a list of inputs and return one output,
their backward a list of input gradients; Slice and Cropping2D take one. Shapes include the
batch axis: axis 1 is the first axis of a sample. Add, Subtract, Multiply and Average compute
with their backend's elementwise functions (add, mul, scale) and Concatenate copies with its
copy_columns, so they also run on a device; Slice and Cropping2D copy with NumPy on the host
arrays."""
import numpy as np

from ._arrays import as_float32, host_only, shape_str
from .module import Module, require_forward
from .symbolic import SymbolicTensor


def _inputs(module, xs, who, at_least=2):
    if not isinstance(xs, (list, tuple)) or len(xs) < at_least:
        raise ValueError(f"{who} takes a list of at least {at_least} inputs")
    return [as_float32(x, module.backend, who) for x in xs]


def _axis(axis, ndim, who):
    a = axis + ndim if axis < 0 else axis
    if not 1 <= a < ndim:
        raise ValueError(f"{who}: axis {axis} is not a sample axis of {ndim}-D inputs "
                         "(axis 0 is the batch)")
    return a


class _Elementwise(Module):
    """Merges of inputs of one shape."""

    def _same_shapes(self, xs):
        xs = _inputs(self, xs, type(self).__name__)
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"{type(self).__name__} needs inputs of one shape, got "
                             + ", ".join(shape_str(x.shape) for x in xs))
        return xs


class Add(_Elementwise):
    """y = x_1 + ... + x_n (inputs of one shape), summed in input order on the backend's
    device; the backward hands grad_out itself to every input (nnfast never writes into a
    gradient it was given)."""

    def forward(self, xs):
        xs = self._same_shapes(xs)
        self._n = len(xs)
        return _fold(self.backend.add, xs)

    def backward(self, grad_out):
        require_forward(self, "_n")
        return [grad_out] * self._n


def _fold(op, xs):
    """op(...op(op(xs[0], xs[1]), xs[2])..., xs[-1]): the inputs combined in order."""
    y = xs[0]
    for x in xs[1:]:
        y = op(y, x)
    return y


class Average(_Elementwise):
    """y = (x_1 + ... + x_n) * (1 / n), summed in input order; every input's gradient is the one
    array grad_out / n."""

    def forward(self, xs):
        xs = self._same_shapes(xs)
        self._n = len(xs)
        return self.backend.scale(_fold(self.backend.add, xs), 1.0 / len(xs))

    def backward(self, grad_out):
        require_forward(self, "_n")
        return [self.backend.scale(grad_out, 1.0 / self._n)] * self._n


class Subtract(_Elementwise):
    """y = x_1 - x_2 (exactly two inputs of one shape)."""

    def forward(self, xs):
        if isinstance(xs, (list, tuple)) and len(xs) != 2:
            raise ValueError(f"Subtract takes exactly 2 inputs, got {len(xs)}")
        a, b = self._same_shapes(xs)
        self._n = 2
        return self.backend.add(a, self.backend.scale(b, -1.0))

    def backward(self, grad_out):
        require_forward(self, "_n")
        return [grad_out, self.backend.scale(grad_out, -1.0)]


class Multiply(_Elementwise):
    """y = x_1 * ... * x_n (elementwise)."""

    def forward(self, xs):
        self._xs = xs = self._same_shapes(xs)
        return _fold(self.backend.mul, xs)

    def backward(self, grad_out):
        require_forward(self, "_xs")
        mul = self.backend.mul
        return [mul(grad_out, _fold(mul, [x for j, x in enumerate(self._xs) if j != i]))
                for i in range(len(self._xs))]


class Concatenate(Module):
    """y = the inputs joined along ``axis`` (default -1, the last; axis 0 is the batch), their
    other sizes equal."""

    def __init__(self, axis=-1):
        self.axis = int(axis)

    def forward(self, xs):
        """Each input, seen as (rows, its columns) with rows the product of the sizes before the
        axis, copied into its columns of y seen the same way."""
        xs = _inputs(self, xs, "Concatenate")
        axis = _axis(self.axis, len(xs[0].shape), "Concatenate")
        first = tuple(xs[0].shape)
        for x in xs[1:]:
            if len(x.shape) != len(first) or any(a != b for i, (a, b) in
                                                 enumerate(zip(x.shape, first)) if i != axis):
                raise ValueError("Concatenate needs inputs whose sizes agree off axis "
                                 f"{self.axis}, got " + ", ".join(shape_str(x.shape) for x in xs))
        self._shapes = [tuple(x.shape) for x in xs]
        self._rows = int(np.prod(first[:axis], dtype=np.int64))
        self._columns = [int(np.prod(s[axis:], dtype=np.int64)) for s in self._shapes]
        shape = first[:axis] + (sum(s[axis] for s in self._shapes),) + first[axis + 1:]
        y = self.backend.zeros(shape)
        y2, at = y.reshape((self._rows, sum(self._columns))), 0
        for x, cols in zip(xs, self._columns):
            self.backend.copy_columns(y2, x.reshape((self._rows, cols)), at, 0, cols)
            at += cols
        return y

    def backward(self, grad_out):
        require_forward(self, "_shapes")
        g2, at, grads = grad_out.reshape((self._rows, sum(self._columns))), 0, []
        for shape, cols in zip(self._shapes, self._columns):
            g = self.backend.zeros((self._rows, cols))
            self.backend.copy_columns(g, g2, 0, at, cols)
            grads.append(g.reshape(shape))
            at += cols
        return grads

    def get_config(self):
        return {"axis": self.axis}


class Slice(Module):
    """y = x[:, ..., start:stop] along ``axis`` (1 is the first axis of a sample)."""

    def __init__(self, axis, start, stop):
        self.axis, self.start, self.stop = int(axis), start, stop
        if self.axis == 0:
            raise ValueError("Slice: axis 0 is the batch; slice a sample axis (1 or more)")

    def _index(self, ndim):
        axis = _axis(self.axis, ndim, "Slice")
        return (slice(None),) * axis + (slice(self.start, self.stop),)

    def forward(self, x):
        host_only(self, "Slice")
        x = as_float32(x, self.backend, "Slice")
        self._shape = x.shape
        y = x[self._index(x.ndim)]
        if y.size == 0:
            raise ValueError(f"{self!r} leaves nothing of an input of shape "
                             f"{shape_str(x.shape)}")
        return np.ascontiguousarray(y)

    def backward(self, grad_out):
        require_forward(self, "_shape")
        dx = np.zeros(self._shape, np.float32)
        dx[self._index(len(self._shape))] = grad_out
        return dx

    def output_shape(self, input_shape):
        full = (1, *input_shape)
        return np.zeros(full, np.bool_)[self._index(len(full))].shape[1:]

    def get_config(self):
        return {"axis": self.axis, "start": self.start, "stop": self.stop}


class Cropping2D(Slice):
    """Keras's Cropping2D(cropping=((top, bottom), (left, right)) or an int or a pair,
    data_format="channels_last"): images (N, H, W, C) (or NCHW) with rows and columns cut off."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format="channels_last"):
        if isinstance(cropping, int):
            cropping = ((cropping, cropping), (cropping, cropping))
        elif all(isinstance(c, int) for c in cropping):
            cropping = ((cropping[0], cropping[0]), (cropping[1], cropping[1]))
        (top, bottom), (left, right) = cropping
        if min(top, bottom, left, right) < 0:
            raise ValueError(f"Cropping2D needs non-negative croppings, got {cropping}")
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                             f"{data_format!r}")
        self.cropping, self.data_format = ((top, bottom), (left, right)), data_format

    def _index(self, ndim):
        if ndim != 4:
            raise ValueError(f"Cropping2D takes 4-D images, got {ndim}-D inputs")
        (top, bottom), (left, right) = self.cropping
        rows, cols = slice(top, -bottom or None), slice(left, -right or None)
        if self.data_format == "channels_last":
            return (slice(None), rows, cols)
        return (slice(None), slice(None), rows, cols)

    def get_config(self):
        return {"cropping": [list(c) for c in self.cropping], "data_format": self.data_format}


def slices_of(index, sample_ndim):
    """The Slice layers of ``x[index]`` on a symbolic tensor: the batch axis whole, each other
    axis a start:stop slice of step 1 (integers and strides are refused)."""
    index = index if isinstance(index, tuple) else (index,)
    if not index or index[0] != slice(None):
        raise IndexError("a symbolic tensor is sliced as x[:, ...]: the batch axis whole")
    if len(index) > sample_ndim + 1:
        raise IndexError(f"too many indices for a tensor of {sample_ndim + 1} axes")
    layers = []
    for axis, item in enumerate(index[1:], 1):
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise IndexError("a symbolic tensor takes start:stop slices of step 1, got "
                             f"{item!r}")
        if item != slice(None):
            layers.append(Slice(axis, item.start, item.stop))
    return layers


SymbolicTensor.slicer = staticmethod(slices_of)
SymbolicTensor.merges = {"+": Add, "-": Subtract, "*": Multiply}
