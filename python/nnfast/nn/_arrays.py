"""Input conversion shared by the layers: NumPy float32, C-contiguous, without copying when the
array already is."""
import numpy as np


_FLOAT32 = np.dtype(np.float32)


def is_float32_array(x):
    """True for a C-contiguous float32 ndarray (what the kernels take as is)."""
    return type(x) is np.ndarray and x.dtype == _FLOAT32 and x.flags.c_contiguous


def as_float32(x, who, name="input"):
    """``x`` as a C-contiguous float32 array; TypeError for data that is not numeric."""
    # The common case (a layer's output), checked without building a new array or calling
    # is_float32_array: this runs for every layer of every step. (NumPy's float32 arrays share
    # one dtype object; any other float32 dtype takes the general path below, which returns x
    # itself when it needs no conversion.)
    if type(x) is np.ndarray and x.dtype is _FLOAT32 and x.flags.c_contiguous:
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{who} expected a numeric {name}, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def aligned_zeros(shape):
    """A C-contiguous float32 array of zeros whose first element is on a 64-byte boundary (whole
    cache lines for the kernels' vector loads and stores; NumPy aligns to 16 bytes only)."""
    n = int(np.prod(shape))
    memory = np.zeros(n + 16, np.float32)
    start = (-memory.ctypes.data // 4) % 16
    return memory[start:start + n].reshape(shape)


def shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
