"""Fusion plans: a chain of layers run as a list of steps, each step one layer or one fused group.

``PATTERNS`` is the one table of fusions: a sequence of layer classes and the step that runs
them. ``Plan(layers)`` walks the layers left to right and takes, at each position, the longest
pattern that matches there; a layer matches a class when it is an instance whose class does not
override ``forward`` or ``backward`` (a subclass that changes only defaults fuses; one that
computes differently runs on its own). A Dense enters the plan as its parts (its Linear and its
activation), a Keras layer as its parts (nn/keras.py: the layout changes around the NCHW layer,
less those that undo each other). Each step owns its forward, its backward and what the
backward needs; a model's forward and backward walk the same plan, so what ran fused forward
goes back fused.

One rule links neighbouring steps: a step that begins with a Linear computes its input gradient
through the ReLU or Sigmoid that ends the step before it (Linear's backward kernel applies that
derivative while it writes dx), and the step before then receives the gradient at its
activation's input and skips the derivative.

Adding a fusion: a Step subclass here, its row in PATTERNS (with an example the tests run against
the same layers one by one), and its backend kernels.
"""
import numpy as np

from .. import backend as backends
from .._grad import grad_enabled, saved_for_backward
from ._arrays import as_float32
from .activations import Identity, ReLU, Sigmoid
from .keras import cancel_layout_changes
from .layers import Conv2d, Linear, MaxPool2d
from .module import add_parameter_gradients, require_forward


class Step:
    """Runs ``layers`` forward (``forward(x, temporary) -> (y, temporary)``: ``temporary`` says
    that x is an array nobody else holds, which a layer may overwrite) and backward
    (``backward(grad_out, need_dx) -> grad_in``, None when not ``need_dx``)."""

    begins_with_linear = False

    def __init__(self, *layers):
        self.layers = layers
        self.dx_activation = "none"   # the activation ending the step before, whose derivative
        #                               this step's backward applies (the linking rule)
        self.grad_skips_activation = False   # the step after applies our activation's derivative
        self._cache = None

    @property
    def fused(self):
        return len(self.layers) > 1

    @property
    def name(self):
        return "+".join(type(layer).__name__ for layer in self.layers)

    @property
    def ends_with_activation(self):
        """The name Linear's kernel knows this step's last layer by ("relu", "sigmoid"), or None."""
        last = self.layers[-1]
        return last.fused_name if isinstance(last, (ReLU, Sigmoid)) else None

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


def makes_temporaries(layer):
    """Whether ``layer``'s outputs that share no memory with its input are new arrays nobody else
    holds: true of the layers of nnfast.nn; a user's layer (or a model, which may end in one)
    might return an array it keeps."""
    return type(layer).__module__.startswith("nnfast.nn.")


class LayerStep(Step):
    """One layer, through its own forward and backward."""

    def forward(self, x, temporary):
        layer = self.layers[0]
        y = layer.forward_overwriting(x) if temporary else layer(x)
        if not isinstance(y, np.ndarray):   # a device array: nothing tells cheaply whether it
            temporary = False               # shares x's memory, so it is never overwritten
        elif not np.may_share_memory(y, x):   # a view of x, or x itself, keeps x's status
            temporary = makes_temporaries(layer)
        return y, temporary

    def backward(self, grad_out, need_dx):
        if self.grad_skips_activation:
            return grad_out
        layer = self.layers[0]
        if need_dx:
            return layer.backward(grad_out)
        layer.backward_parameters(grad_out)
        return None


class LinearStep(Step):
    """A Linear, taking over the derivative of the activation before it (the linking rule)."""

    begins_with_linear = True

    def forward(self, x, temporary):
        x, y, aux = self.layers[0].apply(x)
        self._cache = saved_for_backward((x, aux))
        return y, True

    def backward(self, grad_out, need_dx):
        linear = self.layers[0]
        x, aux = require_forward(linear, self._cache)
        return linear.gradients(grad_out, x, aux, need_dx, self.dx_activation)


class LinearActivationStep(Step):
    """Linear -> ReLU / Sigmoid: the activation applied by Linear's kernel to each output row
    while it is in cache; backward from the saved output."""

    begins_with_linear = True

    def forward(self, x, temporary):
        linear, activation = self.layers
        x, y, aux = linear.apply(x, activation.fused_name)
        self._cache = saved_for_backward((x, aux, y))
        return y, True

    def backward(self, grad_out, need_dx):
        linear, activation = self.layers
        x, aux, y = require_forward(linear, self._cache)
        if not self.grad_skips_activation:
            grad_out = activation.gradients(as_float32(
                grad_out, activation.backend, f"{type(activation).__name__}.backward",
                "gradient"), y)
        return linear.gradients(grad_out, x, aux, need_dx, self.dx_activation)


class ConvReluPoolStep(Step):
    """Conv2d -> ReLU -> MaxPool2d in one kernel each way, without the full-size convolution
    output or its gradient in memory."""

    def forward(self, x, temporary):
        conv, _, pool = self.layers
        x = conv.check_input(x)
        y, argmax = conv.backend.conv2d_relu_maxpool_forward(
            x, conv.weight.storage, conv.bias.storage if conv.bias else None, conv.stride,
            conv.padding, pool.kernel_size, pool.stride, pool.padding)
        self._cache = saved_for_backward((x, y, argmax))
        return y, True

    def backward(self, grad_out, need_dx):
        conv, _, pool = self.layers
        x, y, argmax = require_forward(conv, self._cache)
        g = as_float32(grad_out, conv.backend, "MaxPool2d.backward", "gradient")
        dx, _, _ = add_parameter_gradients(
            conv.weight, conv.bias,
            lambda dw, db, accumulate: conv.backend.conv2d_relu_maxpool_backward(
                g, y, argmax, x, conv.weight.storage, conv.stride, conv.padding, pool.kernel_size,
                pool.stride, pool.padding, dw=dw, db=db, need_dx=need_dx,
                need_db=db is not None, accumulate=accumulate))
        return dx


class ReluPoolStep(Step):
    """ReLU -> MaxPool2d: backward masks the pooled gradient with the pooled output (passed where
    not y <= 0) instead of the full-size one with the ReLU's input: the same numbers (each window's
    maximum is the ReLU output where its gradient goes, positive or NaN exactly where the ReLU
    passes gradients), one pass over the smaller array, and the ReLU's output is not kept."""

    def forward(self, x, temporary):
        relu, pool = self.layers
        x = as_float32(x, relu.backend, "ReLU")
        r = relu.apply(x, out=x if temporary and not grad_enabled() else None)
        y, argmax = pool.apply(r)
        self._cache = saved_for_backward((r.shape, y, argmax))
        return y, True

    def backward(self, grad_out, need_dx):
        relu, pool = self.layers
        shape, y, argmax = require_forward(pool, self._cache)
        g = relu.gradients(as_float32(grad_out, relu.backend, "MaxPool2d.backward", "gradient"),
                           y)
        return pool.gradients(g, argmax, shape)


class Pattern:
    """A row of the fusion table: layer classes, the step that runs them, ``example()``:
    (layers, one sample's input shape), a chain holding the pattern for the tests, and the
    backend ``kernels`` of its own that the step calls (a backend without them runs the layers
    one by one)."""

    def __init__(self, classes, step, example, kernels=()):
        self.classes, self.step, self.example = tuple(classes), step, example
        self.kernels = tuple(kernels)

    def runs_on(self, backend):
        return all(backends.has_kernel(backend, name) for name in self.kernels)

    def matches(self, layers):
        return len(layers) >= len(self.classes) and all(
            isinstance(layer, cls) and type(layer).forward is cls.forward
            and type(layer).backward is cls.backward
            for layer, cls in zip(layers, self.classes))

    def __repr__(self):
        return "+".join(cls.__name__ for cls in self.classes)


PATTERNS = [
    Pattern((Conv2d, ReLU, MaxPool2d), ConvReluPoolStep,
            lambda: ([Conv2d(2, 3, 3), ReLU(), MaxPool2d(2)], (2, 9, 9)),
            ("conv2d_relu_maxpool_forward", "conv2d_relu_maxpool_backward")),
    Pattern((Linear, ReLU), LinearActivationStep,
            lambda: ([Linear(7, 6), ReLU(), Linear(6, 5), ReLU()], (7,))),
    Pattern((Linear, Sigmoid), LinearActivationStep,
            lambda: ([Linear(7, 6), Sigmoid(), Linear(6, 5), Sigmoid()], (7,))),
    Pattern((ReLU, MaxPool2d), ReluPoolStep,
            lambda: ([Conv2d(2, 3, 3, padding=1), Identity(), ReLU(),
                      MaxPool2d(3, stride=2, padding=1)], (2, 8, 8))),
    Pattern((Linear,), LinearStep, lambda: ([ReLU(), Linear(7, 4), Sigmoid(), Linear(4, 3)], (7,))),
]


def _flatten(layers):
    """The layers a plan runs: each composite (Dense, the Keras layers) replaced by its parts,
    without the layout changes that undo each other. (list, all parts known)."""
    flat, complete = [], True
    for layer in layers:
        parts = layer.parts() if hasattr(layer, "parts") else [layer]
        if parts is None:   # a composite not built yet runs on its own until it is
            parts, complete = [layer], False
        flat.extend(parts)
    return cancel_layout_changes(flat), complete


class Plan:
    """The steps that run ``layers`` on ``backend`` (fused by the PATTERNS it has the kernels
    of, unless ``fuse`` is false)."""

    def __init__(self, layers, fuse=True, backend=backends.BACKENDS["cpu"]):
        self.source, self.fuse, self.backend = list(layers), bool(fuse), backend
        flat, self.complete = _flatten(layers)
        patterns = [p for p in PATTERNS if p.runs_on(backend)]
        self.steps, i = [], 0
        while i < len(flat):
            pattern = max((p for p in patterns if p.matches(flat[i:])),
                          key=lambda p: len(p.classes), default=None) if fuse else None
            if pattern is None:
                self.steps.append(LayerStep(flat[i]))
                i += 1
            else:
                self.steps.append(pattern.step(*flat[i:i + len(pattern.classes)]))
                i += len(pattern.classes)
        for before, step in zip(self.steps, self.steps[1:]):
            if fuse and step.begins_with_linear and before.ends_with_activation:
                step.dx_activation = before.ends_with_activation
                before.grad_skips_activation = True
        # training's backward stops at the first step with parameters (no input gradient there)
        self.first_trained = next((i for i, step in enumerate(self.steps)
                                   if any(layer.parameters() for layer in step.layers)),
                                  len(self.steps))

    def is_for(self, layers, fuse, backend):
        """Whether this plan still runs ``layers`` as they are (a Dense built since, a layer
        added or replaced, or a move to another backend asks for a new one)."""
        return (self.complete and self.fuse == fuse and self.backend is backend
                and self.source == layers)

    def step_of(self, layer):
        """The step that runs ``layer`` (for a composite, the first fused step among its
        parts'), or None."""
        parts = (layer.parts() if hasattr(layer, "parts") else None) or [layer]
        steps = [s for s in self.steps if any(p is l for p in parts for l in s.layers)]
        return next((s for s in steps if s.fused), steps[0] if steps else None)

    def forward(self, x):
        temporary = False   # x is an array made by nnfast's own layers in this loop
        for step in self.steps:
            x, temporary = step.forward(x, temporary)
        return x

    def backward(self, grad_out, need_input_grad=True):
        """The steps' backward passes, last to first. Without ``need_input_grad`` (training,
        which needs only the parameter gradients) the walk ends at the first step with
        parameters, which skips its input gradient, and returns None."""
        if need_input_grad:
            for i in range(len(self.steps) - 1, -1, -1):
                grad_out = self.steps[i].backward(grad_out, True)
            return grad_out
        first = self.first_trained
        for i in range(len(self.steps) - 1, first - 1, -1):
            grad_out = self.steps[i].backward(grad_out, i > first)
        return None

    def __repr__(self):
        return "Plan(" + ", ".join(step.name for step in self.steps) + ")"
