"""Batch normalisation, PyTorch's BatchNorm1d and BatchNorm2d: per-channel statistics of the
batch in training (moving the running ones), the running statistics in eval mode."""
import numpy as np

from .._grad import saved_for_backward
from ._arrays import as_float32, shape_str
from .layers import _WeightedLayer
from .init import initialize
from .module import Parameter, add_parameter_gradients, require_forward


class _BatchNorm(_WeightedLayer):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1).

    ``momentum`` weighs each batch in the running statistics (None: their cumulative average);
    ``affine`` gives the weight (ones) and bias (zeros); ``track_running_stats`` keeps
    running_mean, running_var and num_batches_tracked (saved with the model, in state_dict)
    for eval mode, which otherwise uses the batch's statistics too."""

    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    host_buffers = ("num_batches_tracked",)
    ranks = ()   # the input ranks the layer takes

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        self.num_features, self.eps = int(num_features), float(eps)
        if self.num_features < 1 or not self.eps > 0:
            raise ValueError(f"{type(self).__name__} needs num_features >= 1 and eps > 0, got "
                             f"{num_features}, {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{type(self).__name__} momentum must be in [0, 1] or None, "
                             f"got {momentum}")
        self.momentum, self.affine = momentum, bool(affine)
        self.track_running_stats = bool(track_running_stats)
        c = self.num_features
        self.weight = Parameter(initialize("ones", (c,))) if affine else None
        self.bias = Parameter(initialize("zeros", (c,))) if affine else None
        if self.track_running_stats:
            self.running_mean = initialize("zeros", (c,))
            self.running_var = initialize("ones", (c,))
            self.num_batches_tracked = initialize("zeros", (), np.int64)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._cache = None

    def forward(self, x):
        x = as_float32(x, self.backend, type(self).__name__)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__} expected input (N, {self.num_features}"
                             f"{', L' if 3 in self.ranks else ', H, W'}), got "
                             f"{shape_str(x.shape)}")
        batch_statistics = self.training or not self.track_running_stats
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked[...] += 1
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        y, mean, invstd = self.backend.batchnorm_forward(
            x, self.weight.storage if self.affine else None,
            self.bias.storage if self.affine else None,
            self.running_mean, self.running_var, batch_statistics, factor, self.eps)
        self._cache = saved_for_backward((x, mean, invstd, batch_statistics))
        return y

    def capturable(self):
        # the count is a counter; but a cumulative average (momentum None) weighs each batch by
        # it, a scalar that changes every step
        return not (self.training and self.track_running_stats and self.momentum is None)

    def _backward(self, grad_out, need_dx):
        x, mean, invstd, batch_statistics = require_forward(self, self._cache)
        g = as_float32(grad_out, self.backend, f"{type(self).__name__}.backward", "gradient")
        if not self.affine:
            return self.backend.batchnorm_backward(g, x, None, mean, invstd, None, None,
                                                   batch_statistics, need_dx, False, False)[0]
        dx, _, _ = add_parameter_gradients(
            self.weight, self.bias, lambda dw, db, accumulate: self.backend.batchnorm_backward(
                g, x, self.weight.storage, mean, invstd, dw, db, batch_statistics, need_dx, True,
                accumulate))
        return dx

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L): statistics per feature C."""

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over images (N, C, H, W): statistics per channel."""

    ranks = (4,)
