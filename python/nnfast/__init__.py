"""nnfast: a small, fast neural-network engine (C++/OpenMP kernels, Keras/PyTorch habits).

    import nnfast as nf
    from nnfast import nn, optim
"""
from . import _core
from ._config import __version__, config, select_isa_from_environment as _select_isa

_select_isa()
from . import (backend, cuda, data, datasets, distributed, metrics, nn, onnx,  # noqa: F401
               optim, plot, utils)
from ._grad import no_grad
from ._rng import seed
from .backend import reference
from . import callbacks
from .callbacks import (BackupAndRestore, Callback, CSVLogger, EarlyStopping, History,
                        LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from .io import ModelFileError, load
from .model import Model, Sequential
from . import functional  # noqa: F401  (makes Model(inputs, outputs) a graph model)
from .nn import Input


def set_num_threads(n):
    """Number of threads the kernels use (default: OMP_NUM_THREADS or all cores)."""
    _core.set_num_threads(int(n))


def get_num_threads():
    return _core.get_num_threads()


__all__ = ["config", "cuda", "nn", "optim", "data", "datasets", "metrics", "backend", "reference",
           "onnx", "plot", "utils", "distributed", "seed", "load", "ModelFileError", "no_grad",
           "set_num_threads", "get_num_threads", "Model", "Sequential", "Input", "callbacks",
           "Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "LearningRateScheduler",
           "ReduceLROnPlateau", "TerminateOnNaN", "BackupAndRestore", "History", "__version__"]
