"""Weight initialisers (Keras's definitions). Fans: Linear weight (out, in) has fan_in = in,
fan_out = out; Conv2d weight (oc, c, kh, kw) has fan_in = c*kh*kw, fan_out = oc*kh*kw.

Every parameter and buffer of nnfast's layers is created by ``initialize``, so that
``allocation_budget`` can bound what building a model from an untrusted file allocates."""
import contextlib

import numpy as np

from .. import _rng


def fans(shape):
    """(fan_in, fan_out) of a weight of the given PyTorch layout."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _truncated_normal(shape, std):
    """Normal(0, std) redrawn outside two standard deviations (as Keras's initialisers)."""
    rng = _rng.generator()
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2
    return values * std


# Keras scales the truncated normal so that its standard deviation is the requested one.
_TRUNCATION_CORRECTION = 0.87962566103423978


def glorot_uniform(shape):
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return _rng.generator().uniform(-limit, limit, shape)


def glorot_normal(shape):
    fan_in, fan_out = fans(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATION_CORRECTION)


def he_uniform(shape):
    limit = np.sqrt(6.0 / fans(shape)[0])
    return _rng.generator().uniform(-limit, limit, shape)


def he_normal(shape):
    return _truncated_normal(shape, np.sqrt(2.0 / fans(shape)[0]) / _TRUNCATION_CORRECTION)


def lecun_uniform(shape):
    limit = np.sqrt(3.0 / fans(shape)[0])
    return _rng.generator().uniform(-limit, limit, shape)


def zeros(shape):
    return np.zeros(shape)


def ones(shape):
    return np.ones(shape)


INITIALIZERS = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal,
                                        lecun_uniform, zeros, ones)}

_budget = None   # values initialize may still create inside allocation_budget, else None


@contextlib.contextmanager
def allocation_budget(values):
    """Within the block, ``initialize`` refuses (ValueError, before allocating) to create more
    than ``values`` array elements in all."""
    global _budget
    saved, _budget = _budget, int(values)
    try:
        yield
    finally:
        _budget = saved


def initialize(name, shape, dtype=np.float32):
    """A weight of ``shape`` (float32 unless ``dtype``) drawn by the initialiser called ``name``."""
    global _budget
    if name not in INITIALIZERS:
        raise ValueError(f"unknown init {name!r}; choose one of {sorted(INITIALIZERS)}")
    shape = tuple(shape)
    if _budget is not None:
        size = int(np.prod(shape, dtype=object))
        if size > _budget:
            raise ValueError(f"a parameter of shape {shape} is larger than the allocation "
                             f"budget ({_budget} values left)")
        _budget -= size
    return np.asarray(INITIALIZERS[name](shape), dtype=dtype)
