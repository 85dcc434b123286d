"""The array functions of the two backends whose arrays are NumPy's ("cpu" and "reference"):
their device is the host, so moving an array there is at most a conversion."""
import numpy as np

DEVICE = "cpu"

_KEPT = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.uint8))


def is_array(x):
    return isinstance(x, np.ndarray)


def to_device(a, dtype=None):
    """``a`` as a C-contiguous NumPy array (float32 unless it is int64, int32 or uint8, or
    ``dtype`` says otherwise), itself when it already is one."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in _KEPT else np.float32
    return np.ascontiguousarray(a, dtype=dtype)


def to_host(a):
    return np.asarray(a)


def add(a, b):
    return np.add(a, b)


def mul(a, b):
    return np.multiply(a, b)


def scale(a, alpha):
    return a.dtype.type(alpha) * a


def check_columns(dst_shape, src_shape, dst_col, src_col, cols):
    """ValueError unless dst and src are matrices of one row count holding the columns."""
    if len(dst_shape) != 2 or len(src_shape) != 2 or dst_shape[0] != src_shape[0]:
        raise ValueError(f"copy_columns: dst {tuple(dst_shape)} and src {tuple(src_shape)} must "
                         "be matrices with the same number of rows")
    if (min(dst_col, src_col, cols) < 0 or dst_col + cols > dst_shape[1]
            or src_col + cols > src_shape[1]):
        raise ValueError(f"copy_columns: columns {dst_col}..{dst_col + cols} of dst "
                         f"{tuple(dst_shape)} or {src_col}..{src_col + cols} of src "
                         f"{tuple(src_shape)} out of range")


def check_labels(labels, classes):
    """ValueError unless every one of the host array ``labels`` lies in [0, classes)."""
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes})")


def copy_columns(dst, src, dst_col, src_col, cols):
    check_columns(dst.shape, src.shape, dst_col, src_col, cols)
    dst[:, dst_col:dst_col + cols] = src[:, src_col:src_col + cols]


def aligned_zeros(shape):
    """A C-contiguous float32 array of zeros whose first element is on a 64-byte boundary (whole
    cache lines for the kernels' vector loads and stores; NumPy aligns to 16 bytes only)."""
    n = int(np.prod(shape))
    memory = np.zeros(n + 16, np.float32)
    start = (-memory.ctypes.data // 4) % 16
    return memory[start:start + n].reshape(shape)


def zeros(shape, dtype="float32"):
    return aligned_zeros(shape) if np.dtype(dtype) == np.float32 else np.zeros(shape, dtype)
