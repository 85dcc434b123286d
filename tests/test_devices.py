"""model.to(device): parameters, gradients, optimizer state and buffers move; fit uploads its
data and gathers batches on the device; predict / evaluate return NumPy; an array on the wrong
device is an error naming both devices.

Run on every device there is: the emulated one (tests/emulated_device.py: the CPU kernels
behind an array type of their own, so training there must match the CPU exactly) everywhere,
and "cuda" where a GPU is found (matching the CPU within float32 tolerances)."""
import os
import sys

import numpy as np
import pytest

import nnfast as nf
from nnfast import backend as backends
from nnfast import cuda, nn, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulated_device  # noqa: E402

DEVICES = ["emulated", pytest.param("cuda", marks=pytest.mark.skipif(
    not cuda.is_available(), reason=cuda.unavailable_reason()))]


@pytest.fixture
def emulated(monkeypatch):
    """The emulated device, registered under its name for the duration of a test."""
    b = emulated_device.make_backend(graphs=True)
    monkeypatch.setitem(backends.BACKENDS, emulated_device.NAME, b)
    return b


@pytest.fixture(params=DEVICES)
def device(request, emulated):
    return request.param


def close(device, got, want):
    """Exact on the emulated device (the same kernels); float32 tolerances on a GPU."""
    emulated_device.assert_matches(device, got, want, rtol=2e-3, atol=2e-4)


def data(n=96, shape=(1, 8, 8), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int64))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 4))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10), nn.Sigmoid(), nn.Linear(10, 4))


def twins(build, device, optimizer, **options):
    """The same compiled model twice, one on the CPU and one moved to ``device``."""
    models = []
    for where in ("cpu", device):
        nf.seed(3)
        model = build()
        model.compile(optimizer=optimizer(model.parameters(), **options),
                      loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
        models.append(model.to(where))
    return models


def trained(model, x, y, epochs=2):
    nf.seed(11)   # the same shuffled order for both
    return model.fit(x, y, epochs=epochs, batch_size=16, verbose=0).history


def assert_same_weights(device, a, b):
    for (name, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert isinstance(vb, np.ndarray), name
        close(device, vb, va)


@pytest.mark.parametrize("build,optimizer,options", [
    (mlp, optim.SGD, dict(lr=0.1, momentum=0.9)),
    (cnn, optim.Adam, dict(lr=0.01)),
    (mlp, optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (mlp, optim.Adagrad, dict(lr=0.1, initial_accumulator_value=0.1)),
    (mlp, optim.Adadelta, dict(weight_decay=0.01)),
])
def test_fit_on_a_device_matches_the_cpu(device, build, optimizer, options):
    x, y = data()
    cpu_model, dev_model = twins(build, device, optimizer, **options)
    assert all(m.backend.device == device for m in dev_model.modules())
    assert all(p.backend.is_array(p.storage) for p in dev_model.parameters())
    h_cpu, h_dev = trained(cpu_model, x, y), trained(dev_model, x, y)
    close(device, h_dev["loss"], h_cpu["loss"])
    assert h_dev["accuracy"] == pytest.approx(h_cpu["accuracy"], abs=0.02)
    assert_same_weights(device, cpu_model, dev_model)
    state = dev_model.optimizer.state
    assert all(dev_model.backend.is_array(a) for arrays in state.values() for a in arrays)
    pred = dev_model.predict(x, batch_size=40)   # a last batch shorter than the others
    assert type(pred) is np.ndarray and pred.shape == (len(x), 4)
    close(device, pred, cpu_model.predict(x, batch_size=40))
    loss_dev, acc_dev = dev_model.evaluate(x, y)
    loss_cpu, acc_cpu = cpu_model.evaluate(x, y)
    assert loss_dev == pytest.approx(loss_cpu, rel=1e-4) and acc_dev == acc_cpu


def test_moving_between_steps_carries_the_optimizer_state(device):
    """Steps on the CPU, then on the device, then on the CPU again: the same weights as all on
    the CPU (Adam's moments and step count moved with the parameters)."""
    x, y = data()
    stay, move = twins(mlp, "cpu", optim.Adam, lr=0.01)
    for i in range(6):
        if i == 2:
            move.to(device)
        if i == 4:
            move.cpu()
        rows = slice(16 * i, 16 * (i + 1))
        stay.train_on_batch(x[rows], y[rows])
        move.train_on_batch(x[rows], y[rows])
    assert all(type(a) is np.ndarray for arrays in move.optimizer.state.values() for a in arrays)
    assert_same_weights(device, stay, move)


def test_a_parameter_on_a_device_is_read_through_copies_and_written_by_assignment(device):
    layer = nn.Linear(3, 2).to(device)
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer.weight.data = values
    assert type(layer.weight.data) is np.ndarray
    np.testing.assert_array_equal(layer.weight.data, values)
    with pytest.raises(ValueError, match="read-only"):
        layer.weight.data[0, 0] = 5.0   # a copy: writing it would change nothing
    layer.load_state_dict({"weight": values + 1, "bias": np.ones(2, np.float32)})
    np.testing.assert_array_equal(layer.weight.data, values + 1)
    layer.set_weights([values * 2, np.zeros(2, np.float32)])
    np.testing.assert_array_equal(layer.state_dict()["weight"], values * 2)
    assert layer.backend.is_array(layer.weight.storage)
    layer.cpu()
    np.testing.assert_array_equal(layer.weight.data, values * 2)
    assert type(layer.weight.storage) is np.ndarray and layer.weight.storage.ctypes.data % 64 == 0


def test_an_array_on_the_wrong_device_names_both(device):
    b = backends.get(device)
    x = np.ones((2, 3), np.float32)
    on_cpu, on_device = nn.Linear(3, 2), nn.Linear(3, 2).to(device)
    with pytest.raises(TypeError, match=f"Linear computes on {device} but its input is on cpu"):
        on_device(x)
    with pytest.raises(TypeError, match=f"Linear computes on cpu but its input is on {device}"):
        on_cpu(b.to_device(x))
    with pytest.raises(TypeError, match=f"on {device}"):
        nn.CrossEntropyLoss()(on_cpu(x), b.to_device(np.zeros(2, np.int64), np.int64))


def test_layers_chain_device_arrays_and_losses_take_host_targets(device):
    """Called directly (PyTorch's way), layers take and return the device's arrays; a loss on
    the device takes host labels and targets too."""
    b = backends.get(device)
    nf.seed(0)
    model = cnn()
    x, y = data(8)
    want = model(x)
    model.to(device)
    out = model(b.to_device(x))
    assert b.is_array(out) and tuple(out.shape) == (8, 4)
    close(device, b.to_host(out), want)
    loss = nn.CrossEntropyLoss().to(device)
    assert loss(out, y) == pytest.approx(nn.CrossEntropyLoss()(want, y), rel=1e-5)
    assert b.is_array(loss.backward())
    mse = nn.MSELoss().to(device)
    assert mse(out, np.zeros((8, 4), np.float32)) == pytest.approx(float(np.mean(want ** 2)),
                                                                   rel=1e-5)


def test_batchnorm_running_statistics_move_with_the_model(emulated):
    """Buffers move (running mean and variance); the step counter stays on the host."""
    x, y = data()
    build = lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(),  # noqa: E731
                                  nn.Flatten(), nn.Linear(108, 4))
    cpu_model, dev_model = twins(build, "emulated", optim.SGD, lr=0.05)
    bn = dev_model[1]
    assert emulated.is_array(bn.running_mean) and type(bn.num_batches_tracked) is np.ndarray
    trained(cpu_model, x, y, epochs=1)
    trained(dev_model, x, y, epochs=1)
    assert_same_weights("emulated", cpu_model, dev_model)
    assert int(dev_model.state_dict()["1.num_batches_tracked"]) == len(x) // 16
    assert dev_model.count_non_trainable() == 6


def test_dropout_masks_are_the_same_on_the_device(emulated):
    x, y = data()
    build = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(),  # noqa: E731
                                  nn.Dropout(0.3), nn.Linear(32, 4))
    cpu_model, dev_model = twins(build, "emulated", optim.SGD, lr=0.1)
    trained(cpu_model, x, y, epochs=1)
    trained(dev_model, x, y, epochs=1)
    assert_same_weights("emulated", cpu_model, dev_model)


def test_layers_written_in_numpy_refuse_a_device_clearly(emulated):
    model = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(1, 2, 3)).to("emulated")
    with pytest.raises(NotImplementedError, match="ZeroPad2d runs only on the CPU"):
        model.predict(np.zeros((2, 1, 4, 4), np.float32))


def test_fit_uploads_the_training_set_once_and_gathers_batches_on_the_device(emulated,
                                                                            monkeypatch):
    x, y = data()
    uploads, gathers = [], []
    to_device, gather_rows = emulated.to_device, emulated.gather_rows
    monkeypatch.setattr(emulated, "to_device",
                        lambda a, dtype=None: uploads.append(np.shape(a)) or to_device(a, dtype))
    monkeypatch.setattr(emulated, "gather_rows",
                        lambda src, rows, out=None: gathers.append(len(rows)) or
                        gather_rows(src, rows, out))
    _, model = twins(mlp, "emulated", optim.SGD, lr=0.1)
    trained(model, x.astype(np.float64), y, epochs=2)   # converted to float32 on the way
    assert uploads.count(x.shape) == 1
    assert gathers == [16] * 12


def test_a_backend_without_a_fused_kernel_runs_the_layers_one_by_one(emulated, monkeypatch):
    """The plan is made for the backend: without the fused Conv2d -> ReLU -> MaxPool2d kernel
    those three run as separate steps, with the same results."""
    for name in ("conv2d_relu_maxpool_forward", "conv2d_relu_maxpool_backward"):
        monkeypatch.setattr(emulated, name, backends._not_implemented(name, "emulated"))
    x, y = data()
    cpu_model, dev_model = twins(cnn, "emulated", optim.SGD, lr=0.1)
    assert cpu_model.plan().steps[0].name == "Conv2d+ReLU+MaxPool2d"
    assert [s.name for s in dev_model.plan().steps[:3]] == ["Conv2d", "ReLU+MaxPool2d",
                                                            "Flatten"]
    trained(cpu_model, x, y, epochs=1)
    trained(dev_model, x, y, epochs=1)
    for (name, a), (_, b) in zip(cpu_model.state_dict().items(), dev_model.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=name)


def _graph_twins(build, device):
    models = []
    for where in ("cpu", device):
        nf.seed(1)
        models.append(build().to(where))
    return models


def test_graph_models_on_a_device_share_their_layers_and_sum_branch_gradients(emulated):
    """A functional model whose BatchNorm runs twice (its second node a copy sharing the arrays),
    a trunk read by two outputs (gradients summed) and residual connections with the other
    merges (Add, Subtract, Multiply, Average, Concatenate, computed on the device): the same
    training as on the CPU."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 8)).astype(np.float32), rng.integers(0, 3, 64)
    t = rng.standard_normal((64, 1)).astype(np.float32)

    def shared_batchnorm():
        inp, lin, bn = nn.Input((8,)), nn.Linear(8, 8), nn.BatchNorm1d(8)
        model = nf.Model(inp, nn.Linear(8, 3)(bn(nn.ReLU()(bn(lin(inp))))))
        model.compile(optim.SGD(model.parameters(), lr=0.1), loss=nn.CrossEntropyLoss())
        return model

    def two_heads():
        inp = nn.Input((8,))
        trunk = nn.Dense(16, activation="relu")(inp)
        model = nf.Model(inp, [nn.Dense(3)(trunk), nn.Dense(1)(trunk)])
        model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"],
                      metrics=["accuracy"])
        return model

    def residual():
        inp = nn.Input((8,))
        h = nn.Dense(8, activation="relu")(inp)
        h = nn.Add()([h, nn.Dense(8, activation="relu")(h), inp])   # three inputs, in order
        g = nn.Dense(8, activation="tanh")(h)
        h = nn.Average()([nn.Subtract()([h, g]), nn.Multiply()([h, g, inp]), g])
        h = nn.Concatenate()([h, g, nn.Dense(3)(inp)])
        model = nf.Model(inp, nn.Dense(3)(h))
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    for build, targets in ((shared_batchnorm, y), (two_heads, [y, t]), (residual, y)):
        cpu_model, dev_model = _graph_twins(build, "emulated")
        for i in range(0, 64, 16):
            rows = slice(i, i + 16)
            batch = [a[rows] for a in targets] if isinstance(targets, list) else targets[rows]
            assert dev_model.train_on_batch(x[rows], batch) == cpu_model.train_on_batch(x[rows],
                                                                                         batch)
        assert_same_weights("emulated", cpu_model, dev_model)
        got, want = dev_model.predict(x[:8]), cpu_model.predict(x[:8])
        for g, w in zip(*([got, want] if isinstance(got, list) else [[got], [want]])):
            close("emulated", g, w)


def test_model_level_calls_on_a_device(emulated):
    """Lazy layers built by fit and summary, uint8 inputs, labels already on the device, an
    optimizer's state_dict read after moving back, device arrays refused by fit with a reason."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 1, 6, 6)).astype(np.uint8)
    y = rng.integers(0, 4, 32).astype(np.int64)
    nf.seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Dense(4))
    model.to("emulated").compile(optimizer="adam", loss=nn.CrossEntropyLoss(),
                                 metrics=["accuracy"])
    model.summary(input_shape=(1, 6, 6), print_fn=lambda *a: None)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(emulated.is_array(p.storage) for p in model.parameters())
    expected = int(np.sum(model.predict(x).argmax(axis=1) == y))   # before the step
    assert model.train_on_batch(x, emulated.to_device(y))[1] == expected
    host_correct = int(np.sum(model.predict(x).argmax(axis=1) == y))
    assert model.evaluate(x, emulated.to_device(y))["accuracy"] * 32 == pytest.approx(host_correct)
    model.cpu()
    state = model.optimizer.state_dict()["state"]
    assert all(type(a) is np.ndarray for arrays in state.values() for a in arrays)
    model.to("emulated")
    with pytest.raises(TypeError, match="takes host arrays"):
        model.predict(emulated.to_device(x.astype(np.float32)))


def test_device_of_names_arrays_by_their_device_before_their_interface():
    """nnfast's GPU arrays name their device: device_of never reads their
    __cuda_array_interface__ (which waits for the GPU, and is refused while capturing)."""
    class Own:
        device = "cuda"

        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("read")

    class Foreign:   # CuPy's and PyTorch's GPU arrays: a device object and the interface
        device = type("Device", (), {"type": "cuda"})()
        __cuda_array_interface__ = {}

    class HostTensor:   # a PyTorch CPU tensor: no interface, a device object of type "cpu"
        device = type("Device", (), {"type": "cpu"})()

    assert backends.device_of(Own()) == "cuda"
    assert backends.device_of(Foreign()) == "cuda"
    assert backends.device_of(HostTensor()) == "cpu"
    assert backends.device_of([1.0, 2.0]) == "cpu" and backends.device_of(np.zeros(2)) == "cpu"
    assert backends.device_of(emulated_device.EmulatedArray(np.zeros(2))) == "emulated"
