"""nnfast: a small, fast neural-network engine (C++/OpenMP kernels, Keras/PyTorch habits).

    import nnfast as nf
    from nnfast import nn, optim
"""
from . import _core
from ._config import __version__, config, select_isa_from_environment as _select_isa

_select_isa()
from . import (backend, cuda, data, datasets, distributed, graph, metrics, nn,  # noqa: F401
               onnx, optim, plot, utils)
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


def set_precision(precision):
    """Precision of Linear layers' dense products in the CPU kernels: ``"float32"`` (the
    default) or ``"bf16"``: both operands of each product (forward, and the backward's input
    and weight gradients) rounded to bfloat16, the products summed in float32; weights,
    gradients, activations and optimizer state stay float32 (as PyTorch's
    ``torch.set_float32_matmul_precision("medium")``). Inputs that are mostly zeros keep their
    exact float32 zero-skipping sums; convolutions and the CUDA and reference backends' own
    kernels are not affected (the reference rounds Linear's operands the same way). ``"bf16"``
    raises RuntimeError where the kernels cannot run it: it needs the avx512 copy on a CPU with
    AVX512_BF16 (``nnfast.config()["bf16"]``)."""
    _core.set_precision(str(precision))


def get_precision():
    """``"float32"`` or ``"bf16"``: what :func:`set_precision` set."""
    return _core.get_precision()


__all__ = ["config", "cuda", "nn", "optim", "data", "datasets", "metrics", "backend", "reference",
           "onnx", "plot", "utils", "distributed", "graph", "seed", "load", "ModelFileError",
           "no_grad", "set_num_threads", "get_num_threads", "set_precision", "get_precision", "Model",
           "Sequential", "Input", "callbacks", "Callback", "EarlyStopping", "ModelCheckpoint",
           "CSVLogger", "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN",
           "BackupAndRestore", "History", "__version__"]
