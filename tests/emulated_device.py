"""An emulated device for the tests: the CPU kernels behind an array type of their own.

``EmulatedArray`` holds a NumPy array that nothing but this backend unwraps: it has the device
array contract of nnfast.backend (shape, dtype, ndim, size, device, numpy(), copy_from, reshape,
fill(0)) and nothing else, no ``__array__`` among it, so code that treats a device array as a
NumPy array (or passes a host array where a device one belongs) fails here as it would on a GPU.
Its kernels are the CPU backend's, so a model trained on it must match the CPU bit for bit:
the tests of ``model.to`` check nnfast's device plumbing (parameters, gradients, optimizer
state, buffers, fit's upload, predict's download, device mismatch errors) without a GPU.

``make_backend(graphs=True)`` adds the GRAPHS of nnfast.backend, as a CUDA graph behaves: while a
capture is open a kernel is recorded and not run (it runs on copies of its arguments, so that
its outputs have their shapes, and those outputs are then filled with NaN: nothing may use them
before a replay), reading an array to the host or copying one from it raises, a host array
given to a kernel raises (a replay could not read it), and the losses return their mean as a
device array. ``replay()`` runs the recorded kernels again on the arrays they were given, with
the scalars they were given, writing their results into the arrays the recording returned. A
training step that depends on anything else (a scalar that changes, a Python-side effect)
replays wrongly here as it would on a GPU.
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
        _refuse_while_capturing("EmulatedArray.numpy")
        return self._a.copy()

    def copy_from(self, host_array):
        _refuse_while_capturing("EmulatedArray.copy_from")
        if host_array.dtype != self.dtype or host_array.size != self.size:
            raise ValueError("EmulatedArray.copy_from: dtype or size differs")
        self._a[...] = host_array.reshape(self.shape)

    def reshape(self, shape):
        return EmulatedArray(self._a.reshape(shape))

    def fill(self, value):
        if value != 0:
            raise ValueError("EmulatedArray.fill: only 0 is supported")
        if _CAPTURE is not None:
            _CAPTURE.calls.append((None, (self._a,), {}, ()))
        else:
            self._a.fill(0)

    def __repr__(self):
        return f"EmulatedArray(shape={self.shape}, dtype={self.dtype})"


class _Capture:
    """The recording open on the emulated device (``_CAPTURE``), or the graph it became."""

    def __init__(self):
        self.calls = []   # (function, args, kwargs, results): results as the recording gave them

    def replay(self):
        for function, args, kwargs, results in self.calls:
            if function is None:            # a fill(0) recorded
                args[0].fill(0)
                continue
            new = function(*args, **kwargs)
            for old, value in zip(_flat(results), _flat(new)):
                if old is not value:
                    np.copyto(old, value)


_CAPTURE = None


def _flat(result):
    """The arrays of a kernel's result as NumPy arrays (a loss's float as a 1-element one)."""
    if isinstance(result, tuple):
        return [a for r in result for a in _flat(r)]
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, float):
        return [np.array([result])]
    return []


def _refuse_while_capturing(what):
    if _CAPTURE is not None:
        raise RuntimeError(f"{what}: not allowed while a graph is being captured")


def _recorded(name, function, args, kwargs):
    """Record a kernel in the open capture: run on copies of its arguments, its results NaN."""
    copies = {}

    def copied(value):
        if isinstance(value, list):
            return [copied(v) for v in value]
        if isinstance(value, np.ndarray):
            copies[id(value)] = (value, value.copy())   # kept: ids stay unique
            return copies[id(value)][1]
        return value

    results = function(*[copied(a) for a in args], **{k: copied(v) for k, v in kwargs.items()})
    originals = {id(c): a for a, c in copies.values()}

    def own(result):   # an argument given back (written in place) is the argument itself
        if isinstance(result, tuple):
            return tuple(own(r) for r in result)
        if isinstance(result, np.ndarray):
            result = originals.get(id(result), result)
            if id(result) not in {id(a) for a, _ in copies.values()} and result.dtype.kind == "f":
                result.fill(np.nan)
            return result
        if isinstance(result, float):   # a loss: its mean on the device
            return np.full(1, np.nan)
        return result

    results = own(results)
    _CAPTURE.calls.append((function, args, kwargs, results))
    return results


def capture_begin():
    global _CAPTURE
    if _CAPTURE is not None:
        raise RuntimeError("capture_begin: a capture is open already")
    _CAPTURE = _Capture()


def capture_end():
    global _CAPTURE
    if _CAPTURE is None:
        raise RuntimeError("capture_end: no capture is open")
    graph, _CAPTURE = _CAPTURE, None
    return graph


def capture_abort():
    global _CAPTURE
    _CAPTURE = None


def _unwrap(value, name):
    """A kernel argument as the CPU kernels take it: device arrays unwrapped (lists of them
    too); a float NumPy array is an error, as on a GPU (integer ones are labels and row
    indices, which device kernels take from the host)."""
    if isinstance(value, EmulatedArray):
        return value._a
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            raise TypeError(f"the emulated backend got a host array for {name}")
        _refuse_while_capturing(f"a host array for {name}")
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
        if _CAPTURE is not None:
            return _wrap(_recorded(name, function, args, kwargs))
        return _wrap(function(*args, **kwargs))
    run.__name__ = name
    return run


def is_array(x):
    return isinstance(x, EmulatedArray)


def to_device(a, dtype=None):
    if isinstance(a, EmulatedArray):
        return a
    _refuse_while_capturing("to_device")
    # a copy (device memory is its own), 64-byte aligned as the CPU kernels' operands
    return EmulatedArray(backends.move(host.to_device(a, dtype), backends.get("cpu")))


def to_host(a):
    _refuse_while_capturing("to_host")
    return a.numpy() if isinstance(a, EmulatedArray) else np.asarray(a)


def zeros(shape, dtype="float32"):
    a = EmulatedArray(host.zeros(shape, dtype))
    if _CAPTURE is not None:   # the memset is recorded too
        _CAPTURE.calls.append((None, (a._a,), {}, ()))
    return a


def assert_matches(device, got, want, rtol, atol):
    """Exact on the emulated device (its kernels are the ones compared with); within rtol and
    atol on a real one."""
    if device == NAME:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def make_backend(graphs=False):
    """The emulated device's Backend (its kernels the CPU backend's); with ``graphs``, its
    GRAPHS too."""
    capture_abort()
    module = types.ModuleType(NAME)
    module.DEVICE = NAME
    cpu = backends.get("cpu")
    arrays = {"is_array": is_array, "to_device": to_device, "to_host": to_host, "zeros": zeros}
    for name in backends.INTERFACE:
        setattr(module, name, arrays.get(name) or _kernel(name, getattr(cpu, name)))
    if graphs:
        module.capture_begin, module.capture_end = capture_begin, capture_end
        module.capture_abort = capture_abort
    return backends.Backend(NAME, module)
