"""nnfast.nn: modules, layers, activations, losses and Sequential (PyTorch names and layouts)."""
from ..model import Sequential
from .activations import Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, Threshold
from .keras import AveragePooling2D, BatchNormalization, Conv2D, Input, MaxPooling2D
from .layers import (AvgPool2d, ConstantPad2d, Conv2d, Dense, Dropout, Flatten, Linear, MaxPool2d,
                     ZeroPad2d)
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss,
                     NLLLoss)
from .merge import Add, Average, Concatenate, Cropping2D, Multiply, Slice, Subtract
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d
from .symbolic import SymbolicTensor

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "ZeroPad2d",
    "ConstantPad2d", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D",
    "BatchNorm1d", "BatchNorm2d", "BatchNormalization",
    "Concatenate", "Add", "Subtract", "Multiply", "Average", "Slice", "Cropping2D",
    "SymbolicTensor",
    "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Threshold",
    "Loss", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss",
]
