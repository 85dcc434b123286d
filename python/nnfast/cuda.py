"""The GPU: whether nnfast can use one here.

``nnfast._cuda`` is the extension a build with ``NNFAST_CUDA=ON`` adds (the CUDA kernels of
cpp/cuda and a device array type); a default build has none, and nnfast imports and runs on the
CPU without it. ``is_available()`` is true only where that extension is present and the CUDA
runtime finds a device.
"""
import importlib

try:  # through importlib: an optional extension, which a CPU-only build (or this machine) lacks
    _cuda = importlib.import_module("nnfast._cuda")
except ImportError:
    _cuda = None


def compiled():
    """Whether this build has the CUDA extension (nnfast._cuda)."""
    return _cuda is not None


def device_count():
    """Number of CUDA devices nnfast can use: 0 without the extension, without a driver or
    without a device (cudaGetDeviceCount failing counts as none)."""
    return _cuda.device_count() if _cuda is not None else 0


def is_available():
    """Whether kernels can run on a GPU here: the extension is compiled in and a device found."""
    return device_count() > 0


def unavailable_reason():
    """Why is_available() is False, in words ("" when it is True)."""
    if _cuda is None:
        return "no CUDA device: nnfast was built without CUDA (NNFAST_CUDA=ON builds nnfast._cuda)"
    if _cuda.device_count() == 0:
        return "no CUDA device: the CUDA runtime finds none (or no driver)"
    return ""


def _require():
    if not is_available():
        raise RuntimeError(f"nnfast.cuda: {unavailable_reason()}")
    return _cuda


def synchronize():
    """Wait for every kernel launched so far (time GPU work between two of these);
    RuntimeError where is_available() is False."""
    _require().synchronize()


def empty_cache():
    """Give the device memory that nnfast's allocator keeps for reuse back to the driver."""
    _require().empty_cache()


def memory_cached():
    """Bytes of device memory nnfast's allocator keeps for reuse."""
    return _require().cached_bytes()


__all__ = ["compiled", "device_count", "empty_cache", "is_available", "memory_cached",
           "synchronize", "unavailable_reason"]
