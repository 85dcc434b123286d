"""Sequential: a stack of modules applied in order (PyTorch's container, Keras's model)."""
import numpy as np

from .activations import ReLU, Sigmoid
from .layers import Conv2d, Linear, MaxPool2d
from .module import Module


class Sequential(Module):
    """``Sequential(layer1, layer2, ...)`` or ``Sequential([layers])``; indexing, slicing (a new
    Sequential sharing the same layer objects), ``len``, iteration, ``add`` and ``pop``."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = layers[0]
        self.layers = []
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.add expects a Module, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def pop(self):
        """Remove and return the last layer."""
        if not self.layers:
            raise IndexError("pop from an empty Sequential")
        return self.layers.pop()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        """The layers in order. Conv2d -> ReLU -> MaxPool2d runs as one fused kernel
        (Conv2d.forward_relu_maxpool), and Linear -> ReLU / Sigmoid too (Linear.forward_activation):
        the same numbers without the intermediate passes."""
        temporary = False   # x is an array made by nnfast's own layers in this loop
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            if (type(layer) is Conv2d and i + 2 < len(layers) and type(layers[i + 1]) is ReLU
                    and type(layers[i + 2]) is MaxPool2d):
                y = layer.forward_relu_maxpool(x, layers[i + 1], layers[i + 2])
                x, temporary, i = y, True, i + 3
                continue
            if type(layer) is Linear:   # always a new array: a temporary
                if i + 1 < len(layers) and type(layers[i + 1]) in (ReLU, Sigmoid):
                    x, temporary, i = layer.forward_activation(x, layers[i + 1]), True, i + 2
                else:
                    x, temporary, i = layer.forward(x), True, i + 1
                continue
            i += 1
            y = layer.forward_overwriting(x) if temporary else layer(x)
            # A new array from one of nnfast's layers is a temporary; a view of x or x itself
            # (Flatten, Identity, Dropout in eval) keeps x's status. A user-defined layer (or a
            # nested Sequential, which may end in one) might return an array it keeps, so its
            # output is never overwritten.
            if not np.may_share_memory(y, x):
                temporary = (type(layer).__module__.startswith("nnfast.")
                             and not isinstance(layer, Sequential))
            x = y
        return x

    def backward(self, grad_out):
        return self._backward(grad_out, need_input_grad=True)

    def backward_parameters(self, grad_out):
        """Backward for training: like ``backward`` but the first layer may skip its input
        gradient, which nobody needs (saves a GEMM per step for Linear / Conv2d)."""
        self._backward(grad_out, need_input_grad=False)

    def _backward(self, grad_out, need_input_grad):
        """The layers' backward passes, last to first. Conv2d -> ReLU -> MaxPool2d that ran fused
        forward goes back in one kernel too (Conv2d.backward_relu_maxpool); any other ReLU feeding
        a MaxPool2d is taken with it in one step (MaxPool2d.backward_through_relu: the same
        numbers, with the ReLU's mask applied to the pooled gradient instead of the full-size
        one); a Linear fed by a ReLU / Sigmoid is taken with it in one kernel
        (Linear.backward_through_activation)."""
        layers, i = self.layers, len(self.layers) - 1
        while i >= 0:
            layer = layers[i]
            if (i > 1 and type(layer) is MaxPool2d and type(layers[i - 1]) is ReLU
                    and type(layers[i - 2]) is Conv2d and layers[i - 1].ran_fused_last()):
                # the three layers' forward ran as one kernel: so does their backward
                grad_out = layers[i - 2].backward_relu_maxpool(
                    grad_out, layer, need_dx=need_input_grad or i > 2)
                i -= 3
            elif i > 0 and type(layer) is MaxPool2d and type(layers[i - 1]) is ReLU:
                grad_out = layer.backward_through_relu(grad_out)
                i -= 2
            elif (i > 0 and type(layer) is Linear and type(layers[i - 1]) in (ReLU, Sigmoid)
                  and (need_input_grad or i > 1)):
                grad_out = layer.backward_through_activation(grad_out, layers[i - 1])
                i -= 2
            elif i == 0 and not need_input_grad:
                layer.backward_parameters(grad_out)
                i -= 1
            else:
                grad_out = layer.backward(grad_out)
                i -= 1
        return grad_out

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
