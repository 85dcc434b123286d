"""The CPU backend: nnfast's compiled kernels (``nnfast._core``, one copy per instruction set,
chosen at import), on float32 NumPy arrays. Its functions are the extension's own, under the
names of ``nnfast.backend.INTERFACE``."""
from .._core import *  # noqa: F401,F403  (the extension's functions are the backend's)
from .host import (DEVICE, add, copy_columns, is_array, mul, scale,  # noqa: F401,E402
                   to_device, to_host, zeros)
