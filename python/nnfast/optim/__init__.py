"""nnfast.optim: optimizers (PyTorch's names, defaults and update rules) and learning-rate
schedulers (``nnfast.optim.lr_scheduler``)."""
from . import lr_scheduler
from .optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "lr_scheduler"]
