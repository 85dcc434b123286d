"""Fusion plans (nn/fusion.py): every pattern of the table gives what its layers give one by one,
forward and backward, on every backend; plans follow the layer list; Dense and Linear subclasses
fuse; fuse=False turns fusion off; summary shows it."""
import functools

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn
from nnfast.nn import fusion
from conftest import random_array

close = functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=2e-6)


def gradients(model, x, g, need_input_grad=True):
    """(output, input gradient or None, parameter gradients) of one forward and backward."""
    model.zero_grad()
    y = model(x)
    dx = model.backward(g) if need_input_grad else model.backward_parameters(g)
    return y, dx, [p.grad.copy() for p in model.parameters()]


def compare_fused_with_one_by_one(layers, input_shape, seed=0, x=None, same=close):
    fused, unfused = nn.Sequential(layers), nn.Sequential(layers, fuse=False)
    x = random_array(seed, (3, *input_shape)) if x is None else x
    g = random_array(seed + 1, fused(x).shape)
    y, dx, grads = gradients(fused, x, g)
    y_ref, dx_ref, grads_ref = gradients(unfused, x, g)
    same(y, y_ref)
    same(dx, dx_ref)
    for a, b in zip(grads, grads_ref):
        same(a, b)
    _, none, grads_training = gradients(fused, x, g, need_input_grad=False)
    assert none is None
    for a, b in zip(grads_training, grads_ref):
        same(a, b)
    with nf.no_grad():
        same(fused(x), y_ref)
    return fused


@pytest.mark.parametrize("device", ["cpu", "reference"])
@pytest.mark.parametrize("pattern", fusion.PATTERNS, ids=repr)
def test_every_pattern_equals_its_layers_one_by_one(pattern, device):
    nf.seed(1)
    layers, input_shape = pattern.example()
    for layer in layers:
        layer.to(device)
    model = compare_fused_with_one_by_one(layers, input_shape)
    assert any(type(step) is pattern.step and len(step.layers) == len(pattern.classes)
               for step in model.plan().steps), model.plan()


@pytest.mark.parametrize("with_nan", [False, True])
@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=1, padding=1),
                                  nn.MaxPool2d((2, 3), stride=(1, 2))])
def test_conv_relu_maxpool_fused_for_any_pooling(pool, with_nan):
    """Forward exactly the layers' numbers; backward the same within rounding (the fused kernel
    skips the zeros pooling leaves in the gradient), exactly when x holds a NaN (which sends it
    through the dense products, as the layers)."""
    nf.seed(4)
    x = random_array(21, (2, 2, 9, 9))
    if with_nan:
        x[0, 0, 3, 4] = np.nan
    same = np.testing.assert_array_equal if with_nan else close
    model = compare_fused_with_one_by_one([nn.Conv2d(2, 3, 3), nn.ReLU(), pool], None, x=x,
                                          same=same)
    assert [type(s) for s in model.plan().steps] == [fusion.ConvReluPoolStep]


def test_relu_then_pool_backward_through_the_pooled_mask_with_nan_gradients():
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    x = random_array(3, (2, 3, 6, 6))
    fused, unfused = nn.Sequential(relu, pool), nn.Sequential(relu, pool, fuse=False)
    g = random_array(4, fused(x).shape)
    g.reshape(-1)[::7] = np.nan
    unfused(x)
    np.testing.assert_array_equal(fused.backward(g), unfused.backward(g))


def test_dense_with_activation_fuses_like_linear_and_activation():
    nf.seed(2)
    model = nn.Sequential(nn.Dense(6, activation="relu", input_dim=5), nn.Dense(4, "sigmoid"),
                          nn.Dense(3))
    x = random_array(5, (4, 5))
    model(x)                                   # builds the last two Dense layers
    assert [type(s) for s in model.plan().steps] == [
        fusion.LinearActivationStep, fusion.LinearActivationStep, fusion.LinearStep]
    assert "Linear+ReLU" in model.summary(print_fn=None)
    compare_fused_with_one_by_one(list(model), None, x=x)


def test_linear_subclasses_fuse_unless_they_compute_differently():
    class Wide(nn.Linear):
        def __init__(self, n):
            super().__init__(n, 2 * n)

    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    assert type(nn.Sequential(Wide(3), nn.ReLU()).plan().steps[0]) is fusion.LinearActivationStep
    steps = nn.Sequential(Doubled(3, 3), nn.ReLU()).plan().steps
    assert [type(s) for s in steps] == [fusion.LayerStep, fusion.LayerStep]


def test_plan_follows_the_layer_list_and_the_switch():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    first = model.plan()
    assert model.plan() is first and [s.name for s in first.steps] == ["Linear+ReLU"]
    model.add(nn.Linear(4, 2))
    assert [s.name for s in model.plan().steps] == ["Linear+ReLU", "Linear"]
    model.fuse = False
    assert [s.name for s in model.plan().steps] == ["Linear", "ReLU", "Linear"]
    assert "Fused as" in model.summary(print_fn=None)
    assert "Linear+ReLU" not in model.summary(print_fn=None)


def test_training_fused_and_unfused_gives_the_same_weights(mnist):
    (x, y), _ = mnist
    x = x[:256].reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y = y[:256]
    weights = []
    for fuse in (True, False):
        nf.seed(7)
        model = nn.Sequential([nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                               nn.Linear(576, 32), nn.ReLU(), nn.Linear(32, 10)], fuse=fuse)
        model.compile(nf.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
