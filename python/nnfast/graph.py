"""Recorded training steps (CUDA graphs): ``Model.train_on_batch`` and ``fit`` record a step's
forward, loss and backward once per batch shape on a backend with GRAPHS (nnfast.backend), and
replay the recording for the steps after it, so that a step of a small network costs a few
launches instead of one per kernel.

A replay repeats the recorded kernels on the arrays they were given with the scalars they were
given, so a step is recorded only where that is the whole step:

- one process (no nnfast.distributed ranks), one input array and one target array (NumPy, or
  float32 ones of the model's device), every module ``capturable()`` (no Dropout in training, no
  BatchNorm averaging over its batch count); the modules' host buffers (BatchNorm's count) are
  moved after each replay by what the recorded step moved them;
- each batch is copied into the recording's own input arrays, its labels checked on the host as
  they are uploaded;
- the optimizer's update runs after the replay, outside it (its step count and learning rate
  change between steps), and so does the check that the loss is finite;
- the recorded backward overwrites or adds to the gradients as it did when recorded, so a
  recording is replayed only while every parameter has the arrays and the zeroed mark
  (``zero_grad``) it had then; otherwise it is dropped and the shape recorded again.

The first step of a shape runs eagerly (it allocates the gradients and the optimizer's state),
the second is recorded and replayed, the ones after it replayed. A step of another shape (fit's
last, smaller batch) runs eagerly and keeps the recording. A recording that fails (a layer
reading an array back to the host, a loss computed in Python) is dropped, and the model trains
eagerly from then on: ``graph_of(model).reason`` says why. ``nnfast.graph.enabled = False``
runs every step eagerly (to compare the two).
"""
import weakref

import numpy as np

from . import distributed
from .backend import host
from .nn import losses

_LABEL_LOSSES = (losses.CrossEntropyLoss, losses.NLLLoss)

enabled = True


class TrainingGraph:
    """The recorded training step of one model (see the module's docstring)."""

    def __init__(self, model):
        self.model = weakref.ref(model)
        self.reason = None   # why steps run eagerly for good (None while recording may pay)
        self.replays = 0     # steps replayed so far
        self._drop()

    def _drop(self):
        self.graph = self.key = self.seen = None
        self.x = self.y = self.out = self.loss = None
        self.labels = False   # whether y holds class labels (checked as they are uploaded)
        self.before = self.after = ()
        self.counters = []

    def step(self, x, y):
        """(output, loss as a float) of the training step on batch (x, y) replayed; None when the
        caller runs this step eagerly (the first of a shape, another shape, nothing to record)."""
        model = self.model()
        key = self._key(model, x, y)
        if key is None:
            return None
        if self.graph is not None and key == self.key:
            if not _same(self._marks(model), self.before):   # arrays changed: record anew
                self._drop()
                self.seen = key   # this eager step is the new recording's first
                return None
            return self._replay(model, x, y)
        if key != self.seen:   # this shape's first step: eager, allocating what it needs
            self.seen = key
            return None
        if self.graph is not None:   # a recording for another shape: this one runs eagerly
            return None
        return self._record(model, key, x, y)

    def _key(self, model, x, y):
        """What a recording is valid for, or None where no step of this model is recorded."""
        backend = model.backend
        if (not enabled or self.reason is not None or not backend.graphs
                or distributed.world_size() > 1 or isinstance(x, (list, tuple))
                or isinstance(y, (list, tuple))):
            return None
        labels = isinstance(model.loss_fn, _LABEL_LOSSES) and y.ndim == 1
        for a, device_ok in ((x, True), (y, not labels)):   # device labels: not recorded
            if not isinstance(a, np.ndarray) and not (device_ok and backend.is_array(a)
                                                      and a.dtype == np.float32):
                return None
        return (backend.name, model.training, labels, tuple(x.shape), backend.is_array(x),
                tuple(y.shape), backend.is_array(y))

    def _record(self, model, key, x, y):
        """Record the step on the recording's own input arrays, then replay it on (x, y)."""
        backend = model.backend
        params, modules = model.parameters(), list(model.modules())
        stuck = [type(m).__name__ for m in modules if not m.capturable()]
        if stuck:
            self.reason = f"{stuck[0]} changes between training steps (not capturable)"
            return None
        self.labels = key[2]
        self.x = backend.zeros(x.shape)
        self.y = backend.zeros(y.shape, "int64" if self.labels else "float32")
        self.before = self._marks(model)
        counters = [(a, a.copy()) for m in modules for a in _host_buffers(m)]
        backend.capture_begin()
        try:
            out, loss = model.forward_loss(self.x, self.y)
            model.backward_loss()
            graph = backend.capture_end()
        except Exception as e:   # nothing ran: the zeroed marks go back, the step runs eagerly
            backend.capture_abort()
            for p, (_, _, zeroed) in zip(params, self.before):
                p._grad_zeroed = zeroed
            self._drop()
            self.reason = f"recording the step failed: {type(e).__name__}: {e}"
            return None
        finally:   # and so do the host buffers: each replay moves them by what this step did
            moved = [(a, a - value) for a, value in counters]
            for a, value in counters:
                a[...] = value
        if not backend.is_array(loss):
            self._drop()
            self.reason = f"{type(model.loss_fn).__name__} computes its loss in Python"
            return None
        self.graph, self.key, self.out, self.loss = graph, key, out, loss
        self.after = tuple(p._grad_zeroed for p in params)
        self.counters = moved
        return self._replay(model, x, y)

    def _replay(self, model, x, y):
        backend = model.backend
        self._write(backend, x, y)
        self.graph.replay()
        for p, zeroed in zip(model.parameters(), self.after):
            p._grad_zeroed = zeroed
        for a, step in self.counters:
            a += step
        self.replays += 1
        return self.out, float(backend.to_host(self.loss)[0])

    def _write(self, backend, x, y):
        """Copy the batch into the recording's input arrays, labels checked against the
        output's width."""
        for src, dst in ((x, self.x), (y, self.y)):
            if backend.is_array(src):
                width = src.size // len(src)
                backend.copy_columns(dst.reshape((len(src), width)),
                                     src.reshape((len(src), width)), 0, 0, width)
            elif dst is self.y and self.labels:
                values = losses.class_labels(src, len(src), type(self.model().loss_fn).__name__,
                                             backend)
                host.check_labels(values, self.out.shape[-1])
                dst.copy_from(values)
            else:
                dst.copy_from(np.ascontiguousarray(src, dtype=np.float32))

    @staticmethod
    def _marks(model):
        """Each parameter's (storage, gradient, zeroed mark): what a recording was made on."""
        return tuple((p.storage, p._grad, p._grad_zeroed) for p in model.parameters())


def _host_buffers(module):
    """The module's host buffers that exist (NumPy arrays Python updates)."""
    return [a for a in (getattr(module, name, None) for name in module.host_buffers)
            if a is not None]


def _same(marks, recorded):
    return len(marks) == len(recorded) and all(
        s is rs and g is rg and z == rz for (s, g, z), (rs, rg, rz) in zip(marks, recorded))


_GRAPHS = weakref.WeakKeyDictionary()


def graph_of(model):
    """The model's TrainingGraph (made on first use)."""
    graph = _GRAPHS.get(model)
    if graph is None:
        graph = _GRAPHS[model] = TrainingGraph(model)
    return graph
