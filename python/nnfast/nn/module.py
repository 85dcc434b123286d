"""Module and Parameter: the explicit-backward building blocks (no autograd tape).

A Module's ``forward(x)`` caches what ``backward(grad_out)`` needs; ``backward`` accumulates into
each ``Parameter.grad`` and returns the gradient with respect to the input. Modules compute only
through their ``backend`` (see ``nnfast.backend``); the training loop belongs to models
(``nnfast.Model``), not to layers.
"""
import numpy as np

from .. import backend as backends
from ._arrays import aligned_zeros
from .symbolic import call_symbolic, is_symbolic


class Parameter:
    """A trainable float32 array ``data`` and its gradient ``grad`` (same shape, accumulated).

    ``transposed=True`` (a 2-D parameter) keeps the values in memory as ``data.T``, in ``storage``
    (and the gradient likewise), C-contiguous, 64-byte aligned, with each row padded with zeros to
    a multiple of 16 floats (whole cache lines for the kernels' vector loads): ``data`` and
    ``grad`` are views of that memory with the public shape. Linear stores its weight so (users
    see PyTorch's (out, in); the kernels read (in, out) rows without transposing). Optimizers and
    kernels work on ``storage`` and ``grad_storage``, whose padding stays zero; everything else
    uses ``data`` and ``grad``. Every parameter's storage and gradient (and the optimizers' state
    arrays) start on a 64-byte boundary.

    ``backend`` is where the arrays live. On a device other than the CPU, ``storage`` and
    ``grad_storage`` are that device's arrays (same layout), and ``data`` and ``grad`` are
    read-only NumPy copies: assign ``data`` (or call ``copy_``) to change the values."""

    moves = 0   # how many times any Parameter changed device (optimizers' cue to follow)

    def __init__(self, data, transposed=False):
        data = np.asarray(data, dtype=np.float32)
        if transposed and data.ndim != 2:
            raise ValueError(f"a transposed Parameter must be 2-D, got shape {data.shape}")
        self.transposed = bool(transposed)
        self.shape = tuple(data.shape)
        self.backend = backends.BACKENDS["cpu"]   # the device the arrays live on
        self.storage = self.stored(data, "data")
        self._grad = aligned_zeros(self.storage.shape)   # in the storage layout
        self._grad_zeroed = False   # zero_grad was called and no backward has written since

    def to(self, device):
        """Move the values and the gradient to ``device`` (a name or a backend); returns self.
        The NumPy backends ("cpu", "reference") share one kind of array, so nothing is copied
        between them."""
        backend = backends.get(device)
        if backend.device != self.backend.device:   # host copies in the storage layout, moved
            self.storage = backend.to_device(self.stored(self.data, "data"))
            self._grad = backend.to_device(self.stored(self.grad, "grad"))
            self._grad_zeroed = False
            Parameter.moves += 1
        self.backend = backend
        return self

    def public(self, array):
        """An array in the storage layout, seen in the public one (a view)."""
        return array[:, :self.shape[0]].T if self.transposed else array

    def host_view(self, array):
        """``public(array)`` on the host: a view there, a read-only copy from another device."""
        if self.backend.host:
            return self.public(array)
        view = self.public(self.backend.to_host(array))
        view.flags.writeable = False
        return view

    def stored(self, array, name="array"):
        """A new C-contiguous float32 NumPy array in the storage layout from one in the public
        layout (ValueError naming it ``name`` when its shape is not the parameter's)."""
        where = backends.device_of(array)
        if where not in ("cpu", self.backend.device):
            raise TypeError(f"{name} is on {where}, the parameter on {self.backend.device}")
        array = np.asarray(backends.as_host(array), dtype=np.float32)
        if array.shape != self.shape:
            raise ValueError(f"{name} must have shape {self.shape}, got {array.shape}")
        if not self.transposed:
            storage = aligned_zeros(self.shape)
            storage[...] = array
            return storage
        out, cols = self.shape[0], -(-self.shape[0] // 16) * 16
        storage = aligned_zeros((self.shape[1], cols))
        storage[:, :out] = array.T
        return storage

    @property
    def data(self):
        """The values (a view of ``storage`` on the CPU); assigning replaces them."""
        return self.host_view(self.storage)

    @data.setter
    def data(self, value):
        self.storage = self.backend.to_device(self.stored(value, "data"))

    def copy_(self, value):
        """Overwrite the values in place (the arrays that hold them stay the same)."""
        if self.backend.host:
            self.data[...] = value
        else:
            self.storage.copy_from(self.stored(value, "data"))

    @property
    def grad(self):
        """The accumulated gradient (zeros after ``zero_grad``)."""
        return self.host_view(self.grad_storage)

    @grad.setter
    def grad(self, value):
        self._grad = self.backend.to_device(self.stored(value, "grad"))
        self._grad_zeroed = False

    @property
    def grad_storage(self):
        """The gradient in the storage layout (C-contiguous; zeros after ``zero_grad``)."""
        if self._grad_zeroed:
            self._grad.fill(0.0)
            self._grad_zeroed = False
        return self._grad

    def zero_grad(self):
        """Zero the gradient. Lazily: the next backward writes its gradient instead of adding it,
        which saves a pass over the array; reading ``grad`` before then gives zeros."""
        self._grad_zeroed = True

    @property
    def size(self):
        return int(np.prod(self.shape))

    def __repr__(self):
        return f"Parameter(shape={self.shape})"


def add_parameter_gradients(weight, bias, kernel):
    """Run ``kernel(dw, db, accumulate)``, a backward kernel that adds into a layer's weight and
    bias gradients (bias may be None), and return its result. accumulate is False when both were
    zeroed by ``zero_grad``: the kernel overwrites them, and no pass zeroes them first (a lone
    zeroed one is zeroed for real). The zeroed marks are cleared only once the kernel succeeded."""
    # Written out for the two parameters, without comprehensions: this runs for every layer of
    # every training step, where Python's per-call costs show next to the kernels.
    if weight._grad_zeroed and (bias is None or bias._grad_zeroed):
        result = kernel(weight._grad, None if bias is None else bias._grad, False)
    else:   # grad_storage materialises zeros for a lone zeroed one
        result = kernel(weight.grad_storage, None if bias is None else bias.grad_storage, True)
    weight._grad_zeroed = False
    if bias is not None:
        bias._grad_zeroed = False
    return result


_REGISTRY = {}   # class name -> class, for nnfast's own modules: what a model file may rebuild


class Module:
    """Base class of layers, losses and models.

    Subclasses implement ``forward(x)`` and ``backward(grad_out) -> grad_in``. Parameters and
    sub-modules held as attributes (or in a list attribute) are found by ``parameters()`` in the
    order they were assigned. ``backend`` is where the module computes: the backend of the device
    its parameters live on, moved together with them by ``to``.
    """

    training = True
    backend = backends.BACKENDS["cpu"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("nnfast."):
            _REGISTRY[cls.__name__] = cls

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args):
        """forward(*args); on SymbolicTensors (Keras's functional API: nn.Input and what layers
        return for it), a node of a graph instead (nnfast.Model(inputs, outputs))."""
        if is_symbolic(args):
            return call_symbolic(self, args)
        return self.forward(*args)

    def forward_overwriting(self, x):
        """Forward for an input that is a temporary nobody else holds (a previous layer's output
        under ``no_grad``): layers that can compute in place override this."""
        return self.forward(x)

    def backward_parameters(self, grad_out):
        """Backward when the caller needs only the parameter gradients, not grad_in (the first
        layer of a model during training). Layers that can skip work override this."""
        self.backward(grad_out)

    def capturable(self):
        """Whether a training step through this module may be recorded once and replayed (a
        CUDA graph, nnfast.graph): every step must launch the same kernels with the same scalars,
        and change nothing in Python but counters among its host buffers (which a replay moves
        by what the recorded step moved them). Modules with host buffers say no in training
        unless they override this; so do those drawing random numbers (Dropout)."""
        return not (self.training and self.host_buffers)

    # ------------------------------------------------------------------ structure
    buffer_names = ()     # attributes holding state that is saved but not trained (BatchNorm's)
    host_buffers = ()     # those of them that stay NumPy arrays on any device (counters that
    #                       Python updates)
    transparent = False   # a composite layer whose children's weights are named as its own
    #                       (Dense: "weight", not "linear.weight")

    def named_children(self):
        """(name, sub-module) pairs in assignment order; the modules of a list attribute are
        named "attribute.index"; a transparent module's children are named ""."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield ("" if self.transparent else name), value
            elif isinstance(value, (list, tuple)):
                yield from (("" if self.transparent else f"{name}.{i}", v)
                            for i, v in enumerate(value) if isinstance(v, Module))

    def children(self):
        """Direct sub-modules, in assignment order."""
        return (child for _, child in self.named_children())

    def named_state(self, prefix="", seen=None):
        """(dotted name, Parameter or buffer array) in PyTorch's state_dict order: this
        module's parameters, then its buffers, then each child's, each object once."""
        seen = set() if seen is None else seen
        own = [(name, value) for name, value in vars(self).items() if isinstance(value, Parameter)]
        own += [(name, getattr(self, name)) for name in self.buffer_names
                if getattr(self, name, None) is not None]
        for name, value in own:
            if id(value) not in seen:
                seen.add(id(value))
                yield prefix + name, value
        for child_name, child in self.named_children():
            yield from child.named_state(prefix + child_name + "." if child_name else prefix,
                                         seen)

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) pairs, PyTorch's names: own parameters first, then each
        child's ("0.weight" in a Sequential, "features.3.bias" below an attribute)."""
        return ((n, v) for n, v in self.named_state(prefix) if isinstance(v, Parameter))

    def named_buffers(self, prefix=""):
        """(dotted name, array) of the saved, untrained state (BatchNorm's running statistics)."""
        return ((n, v) for n, v in self.named_state(prefix) if not isinstance(v, Parameter))

    def parameters(self):
        """Every Parameter of this module and its children, in layer order."""
        return [p for _, p in self.named_parameters()]

    def is_built(self):
        """False while a layer (Dense) still waits for its first input to create its weights."""
        return all(child.is_built() for child in self.children())

    def count_params(self):
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.parameters()))

    def count_non_trainable(self):
        """Number of saved, untrained float scalars (running statistics; counters excluded)."""
        return int(sum(b.size for _, b in self.named_buffers() if b.dtype.kind == "f"))

    def train(self, mode=True):
        """Training mode (dropout active) for this module and its children; returns self."""
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Inference mode (dropout off); returns self."""
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def cuda(self):
        """``to("cuda")``, as PyTorch spells it."""
        return self.to("cuda")

    def cpu(self):
        """``to("cpu")``, as PyTorch spells it."""
        return self.to("cpu")

    def to(self, device):
        """Compute on ``device`` ("cpu", "reference", "cuda" in a CUDA build, or a backend object)
        from now on: this module, its children, their parameters and buffers move together (an
        optimizer's state follows its parameters at its next step). Returns self."""
        backend = backends.get(device)
        missing = backends.missing(backend)
        if missing:
            raise TypeError(f"{backend!r} is not a complete backend: it lacks {missing}")
        for module in self.modules():
            if module.backend.device != backend.device:
                module._move_buffers(backend)
            module.backend = backend
        for p in self.parameters():
            p.to(backend)
        return self

    def _move_buffers(self, backend):
        """Replace this module's buffers (not host_buffers) by copies on ``backend``'s device."""
        for name in self.buffer_names:
            value = getattr(self, name, None)
            if value is not None and name not in self.host_buffers:
                setattr(self, name, backends.move(value, backend))

    def modules(self):
        """This module and every module below it, each once, parents first."""
        seen, stack = set(), [self]
        while stack:
            module = stack.pop()
            if id(module) not in seen:
                seen.add(id(module))
                yield module
                stack.extend(reversed(list(module.children())))

    # ------------------------------------------------------------------ weights
    def get_weights(self):
        """Copies of the parameter and buffer arrays, in state_dict order (PyTorch layouts)."""
        return [_values(v).copy() for _, v in self.named_state()]

    def set_weights(self, weights):
        """Replace the parameter and buffer values (in place) from a list in ``get_weights``
        order."""
        entries = [v for _, v in self.named_state()]
        weights = list(weights)
        if len(weights) != len(entries):
            raise ValueError(f"set_weights expected {len(entries)} arrays, got {len(weights)}")
        for i, (entry, w) in enumerate(zip(entries, weights)):
            w = np.asarray(w)
            if w.shape != np.shape(_values(entry)):
                raise ValueError(f"set_weights: array {i} must have shape "
                                 f"{np.shape(_values(entry))}, got {w.shape}")
        for entry, w in zip(entries, weights):
            _assign(entry, w)

    def state_dict(self):
        """{PyTorch's dotted name: a copy of the values} of every parameter and buffer, in
        PyTorch's order: the keys and layouts of the same architecture in PyTorch, so a
        state_dict moves between the two engines unchanged."""
        return {name: _values(v).copy() for name, v in self.named_state()}

    def load_state_dict(self, state_dict, strict=True):
        """Set the parameters from ``state_dict`` (NumPy arrays, or anything ``numpy.asarray``
        reads: a CPU torch tensor). Keys the model lacks and keys the dict lacks are errors when
        ``strict``; a shape mismatch always is; nothing is changed when there is one. Returns
        (missing_keys, unexpected_keys) as PyTorch does."""
        own = {name: _values(v) for name, v in self.named_state()}
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        values, problems = {}, []
        for key in own.keys() & state_dict.keys():
            value = _as_numpy(state_dict[key], key)
            if value.shape != own[key].shape:
                problems.append(f"size mismatch for {key}: {value.shape} in the state_dict, "
                                f"{own[key].shape} in the model")
            values[key] = value
        if strict:
            problems += [f"missing key(s): {', '.join(missing)}"] if missing else []
            problems += [f"unexpected key(s): {', '.join(unexpected)}"] if unexpected else []
        if problems:
            raise RuntimeError(f"error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        entries = dict(self.named_state())
        for key, value in values.items():
            _assign(entries[key], value)
        return LoadedKeys(missing, unexpected)

    # ------------------------------------------------------------------ configuration
    def get_config(self):
        """Constructor arguments that rebuild this module (``from_config``; used by ``save``)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """A new, untrained module from ``get_config()``'s dict."""
        return cls(**config)

    def output_shape(self, input_shape):
        """Shape of one sample's output for one sample's ``input_shape`` (default: unchanged)."""
        return tuple(input_shape)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class LoadedKeys(tuple):
    """(missing_keys, unexpected_keys): what ``load_state_dict`` did not match."""

    def __new__(cls, missing_keys, unexpected_keys):
        return super().__new__(cls, (missing_keys, unexpected_keys))

    @property
    def missing_keys(self):
        return self[0]

    @property
    def unexpected_keys(self):
        return self[1]


def _values(entry):
    """The values of a state entry as a NumPy array: a Parameter's (public layout) or a
    buffer's (itself on the CPU, a copy from a device)."""
    return entry.data if isinstance(entry, Parameter) else backends.as_host(entry)


def _assign(entry, value):
    """Overwrite a state entry's values in place from ``value`` (its shape)."""
    if isinstance(entry, Parameter):
        entry.copy_(value)
    elif isinstance(entry, np.ndarray):
        entry[...] = value
    else:   # a device array
        entry.copy_from(np.ascontiguousarray(value, dtype=entry.dtype))


def _as_numpy(value, key):
    """A state_dict value as a NumPy array (torch tensors through ``detach``)."""
    if hasattr(value, "detach"):
        value = value.detach()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"state_dict[{key!r}] is not numeric (dtype {array.dtype})")
    return array


def describe(module):
    """{"class", "config"}: what ``rebuild`` turns back into an equivalent, untrained module
    (TypeError for a class that is not one of nnfast's own)."""
    kind = type(module).__name__
    if _REGISTRY.get(kind) is not type(module):
        raise TypeError(f"cannot save the architecture of {kind}: only nnfast's own layers can be "
                        "rebuilt; use save_weights / load_weights for custom modules")
    return {"class": kind, "config": module.get_config()}


def rebuild(entry, base=None):
    """The module ``describe`` described; ``base`` (a Module subclass) restricts the classes a
    description may name. ValueError for an entry that names no such class."""
    kind = entry.get("class") if isinstance(entry, dict) else None
    cls = _REGISTRY.get(kind)
    if cls is None or (base is not None and not issubclass(cls, base)):
        raise ValueError(f"unknown layer class {kind!r}")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"the config of {kind} is not a dict")
    return cls.from_config(config)


def require_forward(module, cache):
    """Raise a clear error when backward is called before forward (or after one run under
    ``no_grad``, which keeps nothing)."""
    if cache is None:
        raise RuntimeError(f"{type(module).__name__}.backward called before forward (or after "
                           "a forward under nnfast.no_grad(), which keeps nothing for backward)")
    return cache
