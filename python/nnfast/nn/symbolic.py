"""Symbolic tensors: what Keras's functional API passes between layers while a model is being
described. Calling a layer on one records a Node (the layer, the tensors it read) and returns the
node's output, another SymbolicTensor; ``nf.Model(inputs, outputs)`` then walks the nodes back
from its outputs (nnfast/functional.py).

    x = nn.Input(shape=(784,))                 # an Input is the source SymbolicTensor
    h = nn.Dense(64, activation="relu")(x)     # Node(Dense, [x]) -> h
    y = nn.Dense(10)(nn.Concatenate()([h, x]))
"""
import numpy as np

from .._grad import no_grad


class SymbolicTensor:
    """A value not computed yet: ``sample_shape`` (one sample's shape; ``shape`` has Keras's
    None for the batch) and the ``node`` that produces it (None for an Input)."""

    node = None
    slicer = None   # index -> Slice layers; nn/merge.py, which defines Slice, sets it
    merges = {}     # "+", "-", "*" -> the merge layer class; set by nn/merge.py

    def __init__(self, sample_shape, node):
        self.sample_shape, self.node = tuple(sample_shape), node

    @property
    def shape(self):
        return (None, *self.sample_shape)

    def __getitem__(self, index):
        """``x[:, a:b]``, ``x[:, :, a:b]``: one Slice layer per sliced axis (step 1; the batch
        axis whole)."""
        tensor = self
        for layer in SymbolicTensor.slicer(index, len(self.sample_shape)):
            tensor = layer(tensor)
        return tensor

    def __add__(self, other):
        return self.merges["+"]()([self, other])

    def __sub__(self, other):
        return self.merges["-"]()([self, other])

    def __mul__(self, other):
        return self.merges["*"]()([self, other])

    def __bool__(self):
        raise TypeError("a symbolic tensor has no value yet: Python control flow that depends on "
                        "values (if, while, comparisons) cannot be traced into a graph")

    __array_ufunc__ = None   # NumPy's ufuncs refuse it (TypeError) instead of making objects

    def __array_function__(self, *args, **kwargs):
        raise TypeError("a symbolic tensor has no value yet: NumPy functions cannot be traced; "
                        "use nnfast layers (and +, -, *, slicing) in forward")

    __array__ = __array_function__

    def __repr__(self):
        made_by = "an Input" if self.node is None else type(self.node.layer).__name__
        return f"<SymbolicTensor shape={self.shape} from {made_by}>"


class Node:
    """One call of ``layer`` on ``inputs`` (SymbolicTensors) in a graph; ``output`` is the
    SymbolicTensor it returned; ``several`` says the layer took a list of inputs (merges)."""

    def __init__(self, layer, inputs, several):
        self.layer, self.inputs, self.several = layer, list(inputs), several
        self.output = None


def is_symbolic(args):
    """Whether a layer's call arguments are SymbolicTensors (one, or a list of them)."""
    if not args:
        return False
    first = args[0]
    if isinstance(first, (list, tuple)):
        return bool(first) and all(isinstance(t, SymbolicTensor) for t in first)
    return isinstance(first, SymbolicTensor)


def _run_on_zeros(layer, sample):
    """layer's output for a zero sample, in eval mode without keeping anything for backward
    (builds a lazy layer)."""
    was_training = layer.training
    layer.eval()
    if not layer.backend.host:   # a layer already moved to a device: the sample goes there too
        sample = ([layer.backend.to_device(s) for s in sample] if isinstance(sample, list)
                  else layer.backend.to_device(sample))
    try:
        with no_grad():
            return layer.forward(sample)
    finally:
        layer.train(was_training)


def call_symbolic(layer, args):
    """Record ``layer(*args)`` on SymbolicTensors: the output shape comes from one zero sample
    run through the layer (which also builds a lazy layer). A shape the layer refuses is a
    ValueError naming the layer."""
    several = isinstance(args[0], (list, tuple))
    inputs = list(args[0]) if several else [args[0]]
    if len(args) > 1:
        raise TypeError(f"{type(layer).__name__}: call it on one tensor or one list of tensors")
    zeros = [np.zeros((1, *t.sample_shape), np.float32) for t in inputs]
    try:
        out = _run_on_zeros(layer, zeros if several else zeros[0])
    except (ValueError, TypeError, IndexError) as e:
        shapes = ", ".join(str(t.shape) for t in inputs)
        raise ValueError(f"{type(layer).__name__} cannot take input(s) of shape {shapes}: {e}") \
            from e
    node = Node(layer, inputs, several)
    node.output = SymbolicTensor(np.shape(out)[1:], node)
    return node.output
