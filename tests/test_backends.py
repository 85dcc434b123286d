"""Every layer, loss, optimizer and whole model computes the same on the CPU backend as on the
NumPy reference backend (forward, input gradient, parameter gradients, updates)."""
import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim
from conftest import random_array

LAYERS = [
    (lambda: nn.Linear(7, 5), (7,)),
    (lambda: nn.Linear(7, 5, bias=False), (7,)),
    (lambda: nn.Dense(4, activation="tanh", input_dim=6), (6,)),
    (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 7, 7)),
    (lambda: nn.MaxPool2d(2), (2, 6, 6)),
    (lambda: nn.MaxPool2d(3, stride=1, padding=1), (2, 5, 5)),
    (lambda: nn.AvgPool2d(2), (2, 6, 6)),
    (lambda: nn.ReLU(), (9,)),
    (lambda: nn.LeakyReLU(0.1), (9,)),
    (lambda: nn.Sigmoid(), (9,)),
    (lambda: nn.Tanh(), (9,)),
    (lambda: nn.Threshold(0.1, -2.0), (9,)),
    (lambda: nn.Softmax(), (9,)),
    (lambda: nn.LogSoftmax(), (9,)),
    (lambda: nn.Dropout(0.3), (9,)),
    (lambda: nn.Flatten(), (2, 3, 3)),
    (lambda: nn.ZeroPad2d(1), (2, 3, 3)),
    (lambda: nn.BatchNorm1d(5), (5,)),
    (lambda: nn.BatchNorm2d(2, momentum=None), (2, 3, 3)),
    (lambda: nn.BatchNormalization(), (3, 3, 2)),
]


def run(layer, device, x, g):
    nf.seed(5)                                    # the same dropout masks on both
    layer.to(device)
    layer.zero_grad()
    y = layer(x)
    dx = layer.backward(g)
    return [y, dx] + [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("make, shape", LAYERS, ids=lambda v: "" if callable(v) else str(v))
def test_layer_on_cpu_equals_reference(make, shape):
    nf.seed(1)
    layer = make()
    x = random_array(2, (4, *shape))
    g = random_array(3, layer(x).shape)
    for a, b in zip(run(layer, "cpu", x, g), run(layer, "reference", x, g)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("loss, target", [
    (nn.CrossEntropyLoss(), np.array([0, 2, 1, 2])),
    (nn.CrossEntropyLoss(), np.eye(3, dtype=np.float32)[[1, 0, 2, 2]]),
    (nn.MSELoss(), random_array(8, (4, 3))),
    (nn.L1Loss(), random_array(8, (4, 3))),
    (nn.BCEWithLogitsLoss(), (random_array(8, (4, 3)) > 0).astype(np.float32)),
])
def test_loss_on_cpu_equals_reference(loss, target):
    z = random_array(9, (4, 3))
    results = []
    for device in ("cpu", "reference"):
        loss.to(device)
        results.append((loss(z, target), loss.backward(0.5)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(24, 20), nn.Sigmoid(), nn.Dropout(0.2),
        nn.Dense(10, activation="relu"), nn.Linear(10, 3))


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01),
], ids=["sgd", "adam", "adamw"])
def test_a_model_trains_the_same_on_both_backends(make_optimizer):
    x = random_array(11, (16, 1, 16, 16))
    y = np.arange(16) % 3
    weights = []
    for device in ("cpu", "reference"):
        nf.seed(3)
        model = lenet()
        model.summary(input_shape=(1, 16, 16), print_fn=None)
        model.to(device)
        model.compile(make_optimizer(model.parameters()), nn.CrossEntropyLoss())
        assert model.loss_fn.backend is model[0].backend is model[0].weight.backend
        model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_a_dense_built_later_lives_on_its_models_device():
    model = nn.Sequential(nn.Dense(4), nn.ReLU()).to("reference")
    model(random_array(1, (2, 3)))
    assert model[0].linear.backend is model[0].linear.weight.backend is model.backend


@pytest.mark.parametrize("name", ["cpu", "reference"])
def test_copy_columns_copies_a_block_and_refuses_columns_outside(name):
    backend = nf.backend.get(name)
    dst, src = np.zeros((3, 5), np.float32), np.arange(12, dtype=np.float32).reshape(3, 4)
    backend.copy_columns(dst, src, 2, 1, 3)
    np.testing.assert_array_equal(dst[:, 2:], src[:, 1:4])
    assert not dst[:, :2].any()
    for args in [(3, 1, 3), (0, 2, 3), (-1, 0, 2), (0, 0, -1)]:
        with pytest.raises(ValueError, match="copy_columns: columns"):
            backend.copy_columns(dst, src, *args)
    with pytest.raises(ValueError, match="same number of rows"):
        backend.copy_columns(dst, src[:2], 0, 0, 1)
