"""nnfast.nn: modules, layers, activations, losses and Sequential (PyTorch names and layouts)."""
from ..model import Sequential
from .activations import Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, Threshold
from .keras import AveragePooling2D, BatchNormalization, Conv2D, Input, MaxPooling2D
from .layers import (AvgPool2d, ConstantPad2d, Conv2d, Dense, Dropout, Flatten, Linear, MaxPool2d,
                     ZeroPad2d)
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss,
                     NLLLoss)
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "ZeroPad2d",
    "ConstantPad2d", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D",
    "BatchNorm1d", "BatchNorm2d", "BatchNormalization",
    "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Threshold",
    "Loss", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss",
]
