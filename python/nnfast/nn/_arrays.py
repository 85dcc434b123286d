"""Input conversion shared by the layers: an array of the layer's device, float32, C-contiguous,
without copying when it already is one; an array on another device is an error naming both."""
import numpy as np

from ..backend import device_of
from ..backend.host import aligned_zeros  # noqa: F401  (the layers' and optimizers' name for it)


_FLOAT32 = np.dtype(np.float32)


def is_float32_array(x):
    """True for a C-contiguous float32 ndarray (what the kernels take as is)."""
    return type(x) is np.ndarray and x.dtype == _FLOAT32 and x.flags.c_contiguous


def as_float32(x, backend, who, name="input"):
    """``x`` as a C-contiguous float32 array of ``backend``'s device (NumPy for "cpu" and
    "reference"); TypeError for data that is not numeric or that lives on another device."""
    # The common case (a layer's output on the CPU), checked without building a new array or
    # calling is_float32_array: this runs for every layer of every step. (NumPy's float32 arrays
    # share one dtype object; any other float32 dtype takes the general path below, which
    # returns x itself when it needs no conversion.)
    if type(x) is np.ndarray and x.dtype is _FLOAT32 and x.flags.c_contiguous and backend.host:
        return x
    where = device_of(x)
    if where != backend.device:
        raise TypeError(f"{who} computes on {backend.device} but its {name} is on {where}: move "
                        f"the {name} (nnfast.backend.get({backend.device!r}).to_device) or the "
                        f"module (.to({where!r})); Model.fit / evaluate / predict move NumPy "
                        "inputs themselves")
    if not backend.host:
        if not backend.is_array(x):   # another library's array on this device, viewed in place
            x = backend.to_device(x)
        if x.dtype != _FLOAT32:
            raise TypeError(f"{who} expected a float32 {name} on {where}, got dtype {x.dtype}")
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{who} expected a numeric {name}, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def host_only(module, who=None):
    """NotImplementedError when ``module`` computes on a device other than the host: for the
    layers written in NumPy (padding, merging, slicing, Keras's channels-last transposes)."""
    if not module.backend.host:
        who = who or type(module).__name__
        raise NotImplementedError(f"{who} runs only on the CPU so far: nnfast has no "
                                  f"{module.backend.device} kernel for it")


def shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
