"""Losses (mean over the batch). ``loss = loss_fn(output, target)`` returns a Python float and
caches what ``loss_fn.backward()`` needs to return d loss / d output."""
import numpy as np

from .._grad import saved_for_backward
from ..backend import device_of
from ._arrays import as_float32, host_only, shape_str
from .module import Module, describe, rebuild, require_forward


_INT64 = np.dtype(np.int64)


def class_labels(target, batch, who, backend):
    """Integer class labels (batch,) as int64; integral floats are accepted, others refused.
    Labels on the host serve every backend (a device's kernels move them); labels on a device
    must be int64 arrays of the loss's own."""
    if (type(target) is np.ndarray and target.dtype is _INT64 and target.shape == (batch,)
            and target.flags.c_contiguous):
        return target   # the common case, without the general checks and conversion below
    where = device_of(target)
    if where != "cpu":
        if where != backend.device:
            raise TypeError(f"{who} computes on {backend.device} but its labels are on {where}")
        if target.dtype != _INT64 or tuple(target.shape) != (batch,):
            raise ValueError(f"{who} expected {batch} int64 class labels on {where}, got "
                             f"{target.dtype} {shape_str(target.shape)}")
        return target
    y = np.asarray(target)
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"{who} expected {batch} class labels, got shape {shape_str(y.shape)}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{who} expected integer class labels, got non-integral values")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{who} expected integer class labels, got dtype {y.dtype}")
    return np.ascontiguousarray(y, dtype=np.int64)


def matching_target(target, output, backend, who):
    """A float32 target of ``backend``'s device with the output's shape ((N,) targets fit (N, 1)
    outputs). Targets on the host serve every backend, as labels do (copied to the device)."""
    if not backend.host and device_of(target) == "cpu":
        target = backend.to_device(np.asarray(target), np.float32)
    t = as_float32(target, backend, who, "target")
    if t.shape != output.shape:
        if t.size != output.size or t.shape[:1] != output.shape[:1]:
            raise ValueError(f"{who} expected a target of shape {shape_str(output.shape)}, "
                             f"got {shape_str(t.shape)}")
        t = t.reshape(output.shape)
    return t


class Loss(Module):
    """Base class: ``forward(output, target) -> float``, ``backward(grad=1.0) -> d output``."""

    def __call__(self, output, target):
        return self.forward(output, target)

    def forward(self, output, target):
        raise NotImplementedError

    def backward(self, grad=1.0):
        raise NotImplementedError


class CrossEntropyLoss(Loss):
    """Softmax + cross-entropy fused, on logits (N, C). Targets: integer labels (N,) or one-hot /
    probability rows (N, C). Stable for any finite logits."""

    def forward(self, output, target):
        z = as_float32(output, self.backend, "CrossEntropyLoss", "output")
        if z.ndim != 2:
            raise ValueError(f"CrossEntropyLoss expected logits (N, C), got {shape_str(z.shape)}")
        t = target if hasattr(target, "ndim") else np.asarray(target)
        if t.ndim == 2:
            t = matching_target(t, z, self.backend, "CrossEntropyLoss")
            loss, probs = self.backend.cross_entropy_soft_forward(z, t)
            self._cache = saved_for_backward((probs, t, True))
        else:
            y = class_labels(t, z.shape[0], "CrossEntropyLoss", self.backend)
            loss, probs = self.backend.cross_entropy_forward(z, y)
            self._cache = saved_for_backward((probs, y, False))
        return loss

    def backward(self, grad=1.0):
        probs, t, soft = require_forward(self, getattr(self, "_cache", None))
        if soft:
            return self.backend.cross_entropy_soft_backward(probs, t, float(grad))
        return self.backend.cross_entropy_backward(probs, t, float(grad))


class NLLLoss(Loss):
    """Negative log-likelihood of log-probabilities (N, C) (after LogSoftmax), integer labels."""

    def forward(self, output, target):
        logp = as_float32(output, self.backend, "NLLLoss", "output")
        if logp.ndim != 2:
            raise ValueError(f"NLLLoss expected log-probabilities (N, C), got {shape_str(logp.shape)}")
        y = class_labels(target, logp.shape[0], "NLLLoss", self.backend)
        self._cache = saved_for_backward((y, logp.shape[1]))
        return self.backend.nll_forward(logp, y)

    def backward(self, grad=1.0):
        y, classes = require_forward(self, getattr(self, "_cache", None))
        return self.backend.nll_backward(y, classes, float(grad))


class _ElementwiseLoss(Loss):
    """Losses over output and target of the same shape, by a backend kernel pair."""

    kernel = None  # name prefix of the backend's pair

    def forward(self, output, target):
        who = type(self).__name__
        p = as_float32(output, self.backend, who, "output")
        t = matching_target(target, p, self.backend, who)
        self._cache = saved_for_backward((p, t))
        return getattr(self.backend, self.kernel + "_forward")(p, t)

    def backward(self, grad=1.0):
        p, t = require_forward(self, getattr(self, "_cache", None))
        return getattr(self.backend, self.kernel + "_backward")(p, t, float(grad))


class MSELoss(_ElementwiseLoss):
    """mean (output - target)^2."""
    kernel = "mse"


class L1Loss(_ElementwiseLoss):
    """mean |output - target|."""
    kernel = "l1"


class BCELoss(_ElementwiseLoss):
    """Binary cross-entropy of probabilities (after Sigmoid); logs clamped at -100."""
    kernel = "bce"


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Binary cross-entropy of logits, stable for any value."""
    kernel = "bce_with_logits"


class ProbabilityCrossEntropy(Loss):
    """Keras's categorical / sparse categorical cross-entropy on probabilities (N, C) from a
    Softmax layer: mean -sum t log clip(p, 1e-7, 1 - 1e-7). Targets as CrossEntropyLoss's."""

    EPS = 1e-7

    def forward(self, output, target):
        host_only(self, "categorical_crossentropy")
        p = as_float32(output, self.backend, "categorical_crossentropy", "output")
        if p.ndim != 2:
            raise ValueError(f"categorical_crossentropy expected probabilities (N, C), "
                             f"got {shape_str(p.shape)}")
        t = np.asarray(target)
        if t.ndim != 2:
            y = class_labels(t, p.shape[0], "sparse_categorical_crossentropy", self.backend)
            if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
                raise ValueError(f"labels must lie in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
            t = np.eye(p.shape[1], dtype=np.float32)[y]
        t = matching_target(t, p, self.backend, "categorical_crossentropy")
        clipped = np.clip(p, self.EPS, 1 - self.EPS)
        self._cache = saved_for_backward((clipped, t))
        return float(-np.sum(t * np.log(clipped), dtype=np.float64) / p.shape[0])

    def backward(self, grad=1.0):
        clipped, t = require_forward(self, getattr(self, "_cache", None))
        return (-float(grad) / clipped.shape[0]) * t / clipped


class MultiLoss(Loss):
    """The loss of a model with several outputs: ``sum_i weights[i] * losses[i](outputs[i],
    targets[i])``; backward returns the list of gradients, one per output. A loss of None
    leaves its output out (its target may be None; its gradient is None). ``compile`` makes it
    from a list of losses (and ``loss_weights``)."""

    def __init__(self, losses, weights=None):
        self.losses = list(losses)
        if all(loss is None for loss in self.losses):
            raise ValueError("MultiLoss needs at least one loss that is not None")
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if not self.losses or len(self.weights) != len(self.losses):
            raise ValueError(f"MultiLoss needs one weight per loss, got {len(self.losses)} losses "
                             f"and {len(self.weights)} weights")

    def forward(self, outputs, targets):
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(self.losses):
            raise ValueError(f"MultiLoss expected {len(self.losses)} outputs")
        if not isinstance(targets, (list, tuple)) or len(targets) != len(self.losses):
            raise ValueError(f"the model has {len(self.losses)} outputs: give a list of "
                             f"{len(self.losses)} targets")
        return float(sum(w * loss(o, t) for w, loss, o, t in
                         zip(self.weights, self.losses, outputs, targets) if loss is not None))

    def backward(self, grad=1.0):
        return [None if loss is None else loss.backward(grad * w)
                for w, loss in zip(self.weights, self.losses)]

    def get_config(self):
        return {"losses": [None if loss is None else describe(loss) for loss in self.losses],
                "weights": self.weights}

    @classmethod
    def from_config(cls, config):
        return cls([None if entry is None else rebuild(entry, base=Loss)
                    for entry in config["losses"]], config["weights"])
