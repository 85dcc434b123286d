"""Every layer refuses a bad configuration when it is constructed, with a message naming the
layer and the argument (the rules the kernels hold to), not at its first forward."""
import pytest

import nnfast.nn as nn

BAD = [
    (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size must be >= 1"),
    (lambda: nn.MaxPool2d(2, stride=0), "MaxPool2d: stride must be >= 1"),
    (lambda: nn.MaxPool2d(2, padding=-1), "MaxPool2d: padding must be between 0 and half"),
    (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: padding must be between 0 and half"),
    (lambda: nn.AvgPool2d(3, padding=(1, 2)), "AvgPool2d: padding must be between 0 and half"),
    (lambda: nn.AvgPool2d(-1), "AvgPool2d: kernel_size must be >= 1"),
    (lambda: nn.Conv2d(0, 1, 3), "Conv2d: in_channels must be an integer >= 1"),
    (lambda: nn.Conv2d(1, 0, 3), "Conv2d: out_channels must be an integer >= 1"),
    (lambda: nn.Conv2d(1, 1, 0), "Conv2d: kernel_size must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, stride=0), "Conv2d: stride must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, padding=-1), "Conv2d padding must be >= 0"),
    (lambda: nn.Conv2d(1.5, 1, 3), "Conv2d: in_channels must be an integer >= 1, got 1.5"),
    (lambda: nn.Linear(0, 1), "Linear: in_features must be an integer >= 1"),
    (lambda: nn.Linear(1, -1), "Linear: out_features must be an integer >= 1"),
    (lambda: nn.Linear(1.5, 2), "Linear: in_features must be an integer >= 1, got 1.5"),
    (lambda: nn.Linear(True, 2), "Linear: in_features must be an integer >= 1, got True"),
    (lambda: nn.Dense(0), "Dense: units must be an integer >= 1"),
    (lambda: nn.Conv2D(0, 3), "Conv2D: filters must be an integer >= 1"),
    (lambda: nn.Conv2D(3, 0), "Conv2D: kernel_size and strides must be >= 1"),
    (lambda: nn.Conv2D(3, 3, strides=0), "Conv2D: kernel_size and strides must be >= 1"),
    (lambda: nn.MaxPooling2D(0), "kernel_size must be >= 1"),
    (lambda: nn.Dropout(1.5), "Dropout probability must be in"),
    (lambda: nn.BatchNorm2d(0), "BatchNorm2d needs num_features >= 1"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_configuration_is_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_edge_configurations_are_accepted():
    assert nn.MaxPool2d(3, padding=1).padding == (1, 1)
    assert nn.AvgPool2d((4, 2), padding=(2, 1)).padding == (2, 1)
    assert nn.Linear(1, 1).weight.shape == (1, 1)
    assert nn.Conv2d(1, 1, 1).kernel_size == (1, 1)
