"""An emulated device for the tests: the CPU kernels behind an array type of their own.

``EmulatedArray`` holds a NumPy array that nothing but this backend unwraps: it has the device
array contract of nnfast.backend (shape, dtype, ndim, size, device, numpy(), copy_from, reshape,
fill(0)) and nothing else, no ``__array__`` among it, so code that treats a device array as a
NumPy array (or passes a host array where a device one belongs) fails here as it would on a GPU.
Its kernels are the CPU backend's, so a model trained on it must match the CPU bit for bit:
the tests of ``model.to`` check nnfast's device plumbing (parameters, gradients, optimizer
state, buffers, fit's upload, predict's download, device mismatch errors) without a GPU.
"""
import types

import numpy as np

from nnfast import backend as backends
from nnfast.backend import host

NAME = "emulated"


class EmulatedArray:
    """A C-contiguous array on the emulated device."""

    __slots__ = ("_a",)
    device = NAME

    def __init__(self, a):
        assert isinstance(a, np.ndarray)
        self._a = a

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)

    def __len__(self):
        return len(self._a)

    def numpy(self):
        return self._a.copy()

    def copy_from(self, host_array):
        if host_array.dtype != self.dtype or host_array.size != self.size:
            raise ValueError("EmulatedArray.copy_from: dtype or size differs")
        self._a[...] = host_array.reshape(self.shape)

    def reshape(self, shape):
        return EmulatedArray(self._a.reshape(shape))

    def fill(self, value):
        if value != 0:
            raise ValueError("EmulatedArray.fill: only 0 is supported")
        self._a.fill(0)

    def __repr__(self):
        return f"EmulatedArray(shape={self.shape}, dtype={self.dtype})"


def _unwrap(value, name):
    """A kernel argument as the CPU kernels take it: device arrays unwrapped (lists of them
    too); a float NumPy array is an error, as on a GPU (integer ones are labels and row
    indices, which device kernels take from the host)."""
    if isinstance(value, EmulatedArray):
        return value._a
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            raise TypeError(f"the emulated backend got a host array for {name}")
        return value
    if isinstance(value, (list, tuple)) and any(isinstance(v, (EmulatedArray, np.ndarray))
                                                for v in value):
        return [_unwrap(v, name) for v in value]
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return EmulatedArray(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _kernel(name, function):
    def run(*args, **kwargs):
        args = [_unwrap(a, f"{name} argument {i}") for i, a in enumerate(args)]
        kwargs = {k: _unwrap(v, f"{name} argument {k}") for k, v in kwargs.items()}
        return _wrap(function(*args, **kwargs))
    run.__name__ = name
    return run


def is_array(x):
    return isinstance(x, EmulatedArray)


def to_device(a, dtype=None):
    if isinstance(a, EmulatedArray):
        return a
    # a copy (device memory is its own), 64-byte aligned as the CPU kernels' operands
    return EmulatedArray(backends.move(host.to_device(a, dtype), backends.get("cpu")))


def to_host(a):
    return a.numpy() if isinstance(a, EmulatedArray) else np.asarray(a)


def zeros(shape, dtype="float32"):
    return EmulatedArray(host.zeros(shape, dtype))


def make_backend():
    """The emulated device's Backend (its kernels the CPU backend's)."""
    module = types.ModuleType(NAME)
    module.DEVICE = NAME
    cpu = backends.get("cpu")
    arrays = {"is_array": is_array, "to_device": to_device, "to_host": to_host, "zeros": zeros}
    for name in backends.INTERFACE:
        setattr(module, name, arrays.get(name) or _kernel(name, getattr(cpu, name)))
    return backends.Backend(NAME, module)
