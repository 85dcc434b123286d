"""Graph models: Keras's functional API.

    x = nn.Input(shape=(784,))
    h = nn.Dense(64, activation="relu")(x)
    model = nf.Model(inputs=x, outputs=nn.Dense(10)(nn.Concatenate()([h, x])))

``nf.Model(inputs, outputs)`` is a Functional: the nodes recorded while layers were called on
symbolic tensors (nn/symbolic.py), put in topological order once. Forward runs them in that
order; backward runs them in reverse, each layer's own backward, the gradients of a tensor read
by several nodes summed. A layer called twice shares its weights: its second node runs a copy
of the layer holding the same Parameters (and buffers), so each call keeps its own cache for
backward and both add into the same gradients.

PyTorch style: a ``class Net(nf.Model)`` with a ``forward`` and no ``backward`` is traced (see
``Model.__init_subclass__``): on the first batch its forward runs once on nn.Input tensors of the
batch's sample shapes, and the graph it records runs every later forward and backward (traced
again when the sample shapes change). Tracing captures calls of nnfast layers, of the merge
layers, ``+``, ``-``, ``*`` and ``x[:, a:b]`` slices, and Python code that depends only on
shapes. It cannot capture control flow on values (``if``, ``while``, comparisons) or NumPy
functions on tensors: those raise TypeError at the trace, saying so. Layers created inside
forward run, but only the model's attributes count as its parameters (and are trained).
"""
import copy

from .model import Model, layer_names
from .nn.fusion import Plan
from .nn.keras import Input
from .nn.module import describe, rebuild


def _as_list(tensors, who):
    several = isinstance(tensors, (list, tuple))
    tensors = list(tensors) if several else [tensors]
    if not tensors:
        raise ValueError(f"Model needs at least one {who}")
    return tensors, several


def _topological(outputs, inputs):
    """The nodes the outputs depend on, each after the nodes it reads; ValueError naming the
    layer for a path to an Input the model was not given, or an input nothing reads."""
    order, done, given = [], set(), {id(t) for t in inputs}
    reached = set()

    def visit(tensor, path):
        if tensor.node is None:
            if id(tensor) not in given:
                raise ValueError(f"Model: {path} reads an Input of shape {tensor.sample_shape} "
                                 "that is not among the model's inputs")
            reached.add(id(tensor))
            return
        node = tensor.node
        if id(node) in done:
            return
        for t in node.inputs:
            visit(t, type(node.layer).__name__)
        done.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t, "an output")
    unused = [t for t in inputs if id(t) not in reached]
    if unused:
        raise ValueError(f"Model: the input of shape {unused[0].sample_shape} does not lead to "
                         "any output")
    return order


class Functional(Model):
    """A Model whose layers form a graph (Keras's functional API; made by
    ``nf.Model(inputs, outputs)``). Inputs and outputs are one symbolic tensor or a list; so are
    the arrays ``forward`` takes and returns, and ``backward``'s gradients."""

    def __init__(self, inputs, outputs, fuse=True):
        self.fuse = bool(fuse)
        self.inputs, self._several_inputs = _as_list(inputs, "input")
        self.outputs, self._several_outputs = _as_list(outputs, "output")
        for t in self.inputs:
            if not isinstance(t, Input):
                raise TypeError(f"Model inputs must be nn.Input tensors, got {t!r}")
        self.nodes = _topological(self.outputs, self.inputs)
        self.layers, self._layer_index = [], {}   # first-use order; id(layer) -> its index
        for node in self.nodes:
            if id(node.layer) not in self._layer_index:
                self._layer_index[id(node.layer)] = len(self.layers)
                self.layers.append(node.layer)
        self._runners = self._make_runners()
        self._units = self._make_units()

    def _make_runners(self):
        """The module each node runs: its layer for the layer's first node, for later ones a copy
        sharing the layer's Parameters and buffers (kept in a dict: not children)."""
        runners, seen = {}, set()
        for i, node in enumerate(self.nodes):
            layer = node.layer
            if id(layer) not in seen:
                seen.add(id(layer))
                runners[i] = layer
                continue
            shared = {id(p): p for p in layer.parameters()}
            shared.update({id(b): b for _, b in layer.named_buffers()})
            runners[i] = copy.deepcopy(layer, shared)
        return runners

    def _make_units(self):
        """The nodes grouped into what runs them: each chain of one-input nodes (a node's output
        read only by the next one) as a fusion Plan of their modules, each merge on its own;
        as (first node, last node, plan or None) over node indices."""
        readers = {}
        for node in self.nodes:
            for t in node.inputs:
                readers[id(t)] = readers.get(id(t), 0) + 1
        for t in self.outputs:
            readers[id(t)] = readers.get(id(t), 0) + 1
        units, start = [], None
        for i, node in enumerate(self.nodes):
            joins = (start is not None and not node.several
                     and node.inputs[0] is self.nodes[i - 1].output
                     and readers[id(self.nodes[i - 1].output)] == 1)
            if not joins:
                if start is not None:
                    units.append((start, i - 1))
                start = None if node.several else i
                if node.several:
                    units.append((i, i))
        if start is not None:
            units.append((start, len(self.nodes) - 1))
        return [(a, b, None if self.nodes[a].several else
                 Plan([self._runners[i] for i in range(a, b + 1)], self.fuse, self.backend))
                for a, b in units]

    def named_children(self):
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    @property
    def output_names(self):
        """The name of the layer making each output (summary's names): the keys of dicts of
        targets, losses and loss weights."""
        names = layer_names(list(self.inputs) + self.layers)[len(self.inputs):]
        return [names[self._layer_index[id(t.node.layer)]] if t.node is not None else "input"
                for t in self.outputs]

    def train(self, mode=True):
        super().train(mode)
        for runner in self._runners.values():
            runner.train(mode)
        return self

    def to(self, device):
        super().to(device)
        self._runners = self._make_runners()   # copies that share the moved arrays again
        self._units = self._make_units()   # fused for the kernels the new backend has
        return self

    # ------------------------------------------------------------------ running
    def forward(self, *xs):
        xs = list(xs[0]) if len(xs) == 1 and isinstance(xs[0], (list, tuple)) else list(xs)
        if len(xs) != len(self.inputs):
            raise ValueError(f"Model takes {len(self.inputs)} input(s), got {len(xs)}")
        values = {id(t): t.forward(x) for t, x in zip(self.inputs, xs)}   # Input checks shapes
        for first, last, plan in self._units:
            args = [values[id(t)] for t in self.nodes[first].inputs]
            if plan is None:
                out = self._runners[first].forward(args)
            else:
                out = plan.forward(args[0])
            values[id(self.nodes[last].output)] = out
        outs = [values[id(t)] for t in self.outputs]
        return outs if self._several_outputs else outs[0]

    def backward(self, grad_out, need_input_grad=True):
        """The gradients at the inputs (None for an input no loss depends on). Without
        ``need_input_grad`` (training) chains that read a model input skip its gradient."""
        grads = grad_out if self._several_outputs else [grad_out]
        if len(grads) != len(self.outputs):
            raise ValueError(f"Model has {len(self.outputs)} outputs, got {len(grads)} gradients")
        pending, sources = {}, {id(t) for t in self.inputs}
        for t, g in zip(self.outputs, grads):
            _add(pending, t, g, self.backend)
        for first, last, plan in reversed(self._units):
            g = pending.pop(id(self.nodes[last].output), None)
            if g is None:    # nothing downstream of these nodes reached a loss
                continue
            inputs = self.nodes[first].inputs
            if plan is None:
                dxs = self._runners[first].backward(g)
            else:
                need = need_input_grad or id(inputs[0]) not in sources
                dxs = [plan.backward(g, need)]
            for t, d in zip(inputs, dxs):
                _add(pending, t, d, self.backend)
        dxs = [pending.get(id(t)) for t in self.inputs]
        return dxs if self._several_inputs else dxs[0]

    def backward_parameters(self, grad_out):
        self.backward(grad_out, need_input_grad=False)

    def step_of(self, layer):
        """The fusion step that runs ``layer`` at its first node, or None."""
        for _, _, plan in self._units:
            step = plan.step_of(layer) if plan is not None else None
            if step is not None:
                return step
        return None

    # ------------------------------------------------------------------ description
    def known_input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes if self._several_inputs else shapes[0]

    def is_built(self):
        return True   # every layer ran a zero sample when it was called on a symbolic tensor

    def _build_from_shape(self, input_shape):
        pass

    def output_shape(self, input_shape):
        shapes = [t.sample_shape for t in self.outputs]
        return shapes if self._several_outputs else shapes[0]

    summary_column = "Connected to"

    def summary_rows(self, input_shape=None):
        """(name (type), output shape, parameters, connected to) per Input and node; a shared
        layer's parameters count at its first node."""
        names = layer_names(list(self.inputs) + self.layers)
        label = {id(t): names[i] for i, t in enumerate(self.inputs)}
        rows = [(f"{names[i]} (InputLayer)", (None, *t.sample_shape), 0, "")
                for i, t in enumerate(self.inputs)]
        counted = set()
        for node in self.nodes:
            name = names[len(self.inputs) + self._layer_index[id(node.layer)]]
            count = 0 if id(node.layer) in counted else (node.layer.count_params()
                                                          + node.layer.count_non_trainable())
            counted.add(id(node.layer))
            rows.append((f"{name} ({type(node.layer).__name__})", node.output.shape, count,
                         ", ".join(label[id(t)] for t in node.inputs)))
            label[id(node.output)] = name
        return rows

    def get_config(self):
        """Inputs' shapes, the layers, and each node as (layer index, the tensors it reads);
        a tensor is ["input", i] or ["node", j]."""
        where = {id(t): ["input", i] for i, t in enumerate(self.inputs)}
        nodes = []
        for j, node in enumerate(self.nodes):
            nodes.append({"layer": self._layer_index[id(node.layer)], "inputs": [where[id(t)] for t in node.inputs],
                          "several": node.several})
            where[id(node.output)] = ["node", j]
        return {"inputs": [list(t.shape) for t in self.inputs], "fuse": self.fuse,
                "several_inputs": self._several_inputs,
                "layers": [describe(layer) for layer in self.layers], "nodes": nodes,
                "outputs": [where[id(t)] for t in self.outputs],
                "several_outputs": self._several_outputs}

    @classmethod
    def from_config(cls, config):
        inputs = [Input(shape) for shape in config["inputs"]]
        layers = [rebuild(entry) for entry in config["layers"]]
        made = []

        def tensor(ref):
            kind, i = ref
            return inputs[i] if kind == "input" else made[i]

        for node in config["nodes"]:
            args = [tensor(ref) for ref in node["inputs"]]
            made.append(layers[node["layer"]](args if node["several"] else args[0]))
        outputs = [tensor(ref) for ref in config["outputs"]]
        return cls(inputs if config["several_inputs"] else inputs[0],
                   outputs if config["several_outputs"] else outputs[0], config.get("fuse", True))

    def __repr__(self):
        return (f"Functional({len(self.inputs)} input(s), {len(self.nodes)} nodes, "
                f"{len(self.outputs)} output(s))")


def _add(pending, tensor, grad, backend):
    """Sum a gradient into the one pending for ``tensor`` (a new array: never in place, since
    the same array may have been handed to several branches), on the backend's device."""
    if grad is None:
        return
    key = id(tensor)
    pending[key] = grad if key not in pending else backend.add(pending[key], grad)


Model.graph_model = Functional
