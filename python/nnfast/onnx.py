"""ONNX export: ``nnfast.onnx.export(model, path, input_shape)`` writes the model, in eval mode,
as a standard ONNX file that onnxruntime (or any ONNX runtime) can run.

    import nnfast.onnx
    nnfast.onnx.export(model, "lenet.onnx", input_shape=(1, 28, 28))

The graph takes "input" (N, *input_shape) float32, N dynamic, and gives "output". Weights are
written in PyTorch's layouts (Linear (out, in), Conv2d (out, in, kh, kw)) and named by their
``state_dict`` keys. The ``onnx`` package is optional (``pip install onnx``): this module imports it
only when ``export`` runs."""
import numpy as np

from ._grad import no_grad
from .backend import as_host
from .model import Sequential
from .nn.activations import (Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh,
                             Threshold)
from .nn.keras import Input, ToChannelsFirst
from .nn.layers import AvgPool2d, ConstantPad2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d
from .nn.normalization import _BatchNorm


def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ImportError("nnfast.onnx.export needs the onnx package: pip install onnx "
                          "(or pip install nnfast[onnx], which adds onnxruntime)") from e
    return onnx


def _layers(module, prefix=""):
    """(state_dict prefix, layer) for each layer ``module`` runs, in order: nested Sequentials
    flattened, a composite (Dense, the Keras layers) as its parts."""
    parts = module.parts() if hasattr(module, "parts") else None
    if isinstance(module, Sequential):
        for i, layer in enumerate(module.layers):
            yield from _layers(layer, f"{prefix}{i}.")
    elif parts is not None:
        for part in parts:
            yield prefix, part
    else:
        yield prefix, module


class _Graph:
    """The nodes and initializers of the graph being written; ``node`` returns its output's name."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers = onnx, [], []

    def node(self, op, inputs, **attributes):
        output = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], **attributes))
        return output

    def unique(self, name):
        """``name``, or ``name`` with a suffix when an initializer already has it (the parts of
        one composite layer share its prefix)."""
        taken = {t.name for t in self.initializers}
        suffix, candidate = 1, name
        while candidate in taken:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        return candidate

    def constant(self, name, array):
        """An initializer of ``array`` (float arrays as float32, ints as int64) named ``name``."""
        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name


def _with_weights(g, prefix, layer, x):
    """The inputs of a Gemm or Conv node: x, the layer's weight and its bias (if it has one)."""
    inputs = [x, g.constant(prefix + "weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(g.constant(prefix + "bias", layer.bias.data))
    return inputs


def _pads(padding):
    """ONNX pads (top, left, bottom, right) from a layer's symmetric (ph, pw)."""
    return [*padding, *padding]


def _emit(g, prefix, layer, x):
    """Append the nodes computing ``layer`` on the tensor named ``x``; returns its output's name
    (``x`` itself for a layer that is the identity at inference)."""
    if isinstance(layer, Linear):   # y = x @ weight.T + bias: Gemm with transB
        return g.node("Gemm", _with_weights(g, prefix, layer, x), transB=1)
    if isinstance(layer, Conv2d):
        return g.node("Conv", _with_weights(g, prefix, layer, x),
                      kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=_pads(layer.padding))
    if isinstance(layer, MaxPool2d):
        return g.node("MaxPool", [x], kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=_pads(layer.padding))
    if isinstance(layer, AvgPool2d):   # zero padding counted in the mean, as PyTorch's default
        return g.node("AveragePool", [x], kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=_pads(layer.padding), count_include_pad=1)
    if isinstance(layer, ConstantPad2d):
        left, right, top, bottom = layer.padding
        pads = g.constant(g.unique(prefix + "pads"), [0, 0, top, left, 0, 0, bottom, right])
        value = g.constant(g.unique(prefix + "pad_value"), np.float32(layer.value))
        return g.node("Pad", [x, pads, value], mode="constant")
    if isinstance(layer, ToChannelsFirst):   # and ToChannelsLast, its subclass
        return g.node("Transpose", [x], perm=list(layer.order))
    if isinstance(layer, _BatchNorm):   # inference: the running statistics
        if not layer.track_running_stats:
            raise TypeError(f"nnfast.onnx.export: {type(layer).__name__} without running "
                            "statistics normalises by each batch's, which ONNX cannot express")
        c = layer.num_features
        scale = layer.weight.data if layer.affine else np.ones(c, np.float32)
        shift = layer.bias.data if layer.affine else np.zeros(c, np.float32)
        inputs = [x] + [g.constant(g.unique(prefix + name), value) for name, value in (
            ("weight", scale), ("bias", shift), ("running_mean", as_host(layer.running_mean)),
            ("running_var", as_host(layer.running_var)))]
        return g.node("BatchNormalization", inputs, epsilon=layer.eps)
    if isinstance(layer, Flatten):
        return g.node("Flatten", [x], axis=1)
    if isinstance(layer, (Dropout, Identity, Input)):
        return x
    if isinstance(layer, ReLU):
        return g.node("Relu", [x])
    if isinstance(layer, LeakyReLU):
        return g.node("LeakyRelu", [x], alpha=layer.negative_slope)
    if isinstance(layer, Sigmoid):
        return g.node("Sigmoid", [x])
    if isinstance(layer, Tanh):
        return g.node("Tanh", [x])
    if isinstance(layer, Softmax):
        return g.node("Softmax", [x], axis=-1)
    if isinstance(layer, LogSoftmax):
        return g.node("LogSoftmax", [x], axis=-1)
    if isinstance(layer, Threshold):   # y = x if x > threshold else value
        above = g.node("Greater", [x, g.constant(prefix + "threshold", layer.threshold)])
        return g.node("Where", [above, x, g.constant(prefix + "value", layer.value)])
    raise TypeError(f"nnfast.onnx.export: no ONNX operator for layer {type(layer).__name__} "
                    f"({prefix.rstrip('.') or 'the model'}); export supports Sequential models of "
                    "Linear, Dense, Conv2d, MaxPool2d, AvgPool2d, ZeroPad2d / ConstantPad2d, "
                    "Flatten, Dropout, BatchNorm, the Keras image layers and the activations")


def export(model, path, input_shape, opset=17):
    """Write ``model`` (a Sequential or a single layer) to ``path`` as an ONNX model of opset
    ``opset`` (13 or newer) and return the ``onnx.ModelProto``.

    ``input_shape`` is one sample's shape, e.g. (784,) or (1, 28, 28): the graph's input "input"
    is (N, *input_shape) float32 with N dynamic; its output "output" is what ``model.predict``
    returns. One zero sample is run through the model first (in eval mode), which builds Dense
    layers whose input size is not known yet and checks ``input_shape``. Raises TypeError for a
    layer without an ONNX operator and ImportError when the onnx package is missing."""
    onnx = _import_onnx()
    if opset < 13:
        raise ValueError(f"nnfast.onnx.export needs opset 13 or newer, got {opset}")
    input_shape = tuple(int(d) for d in input_shape)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            zeros = model.backend.to_device(np.zeros((1, *input_shape), np.float32))
            sample_out = as_host(model.forward(zeros))
        g, name = _Graph(onnx), "input"
        for prefix, layer in _layers(model):
            name = _emit(g, prefix, layer, name)
    finally:
        model.train(was_training)
    if g.nodes and g.nodes[-1].output[0] == name:
        g.nodes[-1].output[0] = "output"
    else:   # no node, or the last layers were identities
        g.nodes.append(onnx.helper.make_node("Identity", [name], ["output"]))
    float32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, type(model).__name__.lower(),
        [onnx.helper.make_tensor_value_info("input", float32, ["N", *input_shape])],
        [onnx.helper.make_tensor_value_info("output", float32, ["N", *sample_out.shape[1:]])],
        initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", int(opset))]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="nnfast",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto
