"""Recorded training steps (nnfast.graph): a model whose steps are recorded once and replayed
trains exactly as one whose steps all run eagerly, on the same device; what cannot be replayed
runs eagerly, and bad input still raises before the optimizer's update.

Run on the emulated device with graphs (tests/emulated_device.py: a capture there records the
CPU kernels and replays them as a CUDA graph would, so a step that depends on a changing scalar
or a Python-side effect replays wrongly here too) and on "cuda" where a GPU is found."""
import os
import sys

import numpy as np
import pytest

import nnfast as nf
from nnfast import backend as backends
from nnfast import cuda, graph, nn, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emulated_device  # noqa: E402

DEVICES = ["emulated", pytest.param("cuda", marks=pytest.mark.skipif(
    not cuda.is_available(), reason=cuda.unavailable_reason()))]


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, emulated_device.NAME,
                        emulated_device.make_backend(graphs=True))
    return request.param


def same(device, got, want):
    """Exact: a replay runs the kernels an eager step runs, in the same order."""
    emulated_device.assert_matches(device, got, want, rtol=1e-5, atol=1e-6)


def data(n=100, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 1, 8, 8)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int64))


def mlp(out=4):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, out))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10), nn.Tanh(), nn.Linear(10, 4))


def compiled(build, device, optimizer, loss, **options):
    nf.seed(3)
    model = build()
    model.compile(optimizer=optimizer(model.parameters(), **options), loss=loss,
                  metrics=["accuracy"])
    return model.to(device)


def twins(device, build, optimizer, loss=None, **options):
    return [compiled(build, device, optimizer, loss or nn.CrossEntropyLoss(), **options)
            for _ in range(2)]


def run(model, steps, graphs, monkeypatch):
    """The results of ``steps()`` (a generator of train_on_batch calls) with recording on or
    off, and how many steps were replayed."""
    monkeypatch.setattr(graph, "enabled", graphs)
    before = graph.graph_of(model).replays
    results = list(steps(model))
    return results, graph.graph_of(model).replays - before


def assert_same_weights(device, a, b):
    for (name, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        same(device, vb, va)


def batches(x, y, sizes, targets=None, lr_at=None):
    """train_on_batch over consecutive batches of the given sizes (the learning rate halved
    before step ``lr_at``)."""
    def steps(model):
        start = 0
        for i, n in enumerate(sizes):
            if i == lr_at:
                model.optimizer.lr = model.optimizer.lr / 2
            rows = slice(start % len(x), start % len(x) + n)
            start += n
            yield model.train_on_batch(x[rows], (targets if targets is not None else y)[rows])
    return steps


@pytest.mark.parametrize("build,optimizer,options", [
    (mlp, optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (cnn, optim.Adam, dict(lr=0.01)),
    (mlp, optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    (mlp, optim.RMSprop, dict(lr=0.01, momentum=0.5)),
    (mlp, optim.Adagrad, dict(lr=0.1)),
])
def test_replayed_steps_train_as_eager_ones(device, monkeypatch, build, optimizer, options):
    """Eight steps of 16, a learning rate change, a step of 4 in between: steps 3..8 of 16 are
    replays (the first runs eagerly, the second is recorded), the short one runs eagerly."""
    x, y = data()
    eager, replayed = twins(device, build, optimizer, **options)
    steps = batches(x, y, [16, 16, 16, 4, 16, 16, 16, 16, 16], lr_at=5)
    want, none = run(eager, steps, False, monkeypatch)
    got, replays = run(replayed, steps, True, monkeypatch)
    assert none == 0 and replays == 7, graph.graph_of(replayed).reason
    same(device, [g[0] for g in got], [w[0] for w in want])
    assert [g[1] for g in got] == [w[1] for w in want]
    assert_same_weights(device, eager, replayed)


@pytest.mark.parametrize("loss,targets", [
    ("mse", lambda y: np.eye(4, dtype=np.float32)[y]),                  # float targets (N, 4)
    ("soft", lambda y: np.eye(4, dtype=np.float32)[y] * 0.8 + 0.05),   # probability rows
    ("nll", lambda y: y),
    ("bce", lambda y: (y % 2).astype(np.float32)),                      # (N,) for (N, 1)
])
def test_replayed_steps_take_the_targets_of_each_loss(device, monkeypatch, loss, targets):
    x, y = data()
    t = targets(y)
    loss_fn, out, tail = {"mse": (nn.MSELoss, 4, []), "soft": (nn.CrossEntropyLoss, 4, []),
                          "nll": (nn.NLLLoss, 4, [nn.LogSoftmax()]),
                          "bce": (nn.BCEWithLogitsLoss, 1, [])}[loss]
    eager, replayed = twins(device, lambda: nn.Sequential(mlp(out), *tail), optim.SGD,
                            loss_fn(), lr=0.1)
    steps = batches(x, y, [20] * 5, targets=t)
    want, _ = run(eager, steps, False, monkeypatch)
    got, replays = run(replayed, steps, True, monkeypatch)
    assert replays == 4, graph.graph_of(replayed).reason
    same(device, [g[0] for g in got], [w[0] for w in want])
    assert_same_weights(device, eager, replayed)


def test_fit_replays_its_full_batches(device, monkeypatch):
    """fit over 100 samples in batches of 16: six full batches and a last one of 4 an epoch;
    two epochs, eleven replays, the same history and weights as without recording."""
    x, y = data()
    histories = []
    models = twins(device, cnn, optim.SGD, lr=0.05, momentum=0.9)
    for model, graphs in zip(models, (False, True)):
        monkeypatch.setattr(graph, "enabled", graphs)
        nf.seed(11)
        histories.append(model.fit(x, y, epochs=2, batch_size=16, verbose=0).history)
    assert graph.graph_of(models[1]).replays == 11
    assert graph.graph_of(models[0]).replays == 0
    same(device, histories[1]["loss"], histories[0]["loss"])
    assert histories[1]["accuracy"] == histories[0]["accuracy"]
    assert_same_weights(device, *models)


@pytest.mark.parametrize("layer,replays", [
    (lambda: nn.Dropout(0.3), 0),                    # a new seed every step: eager
    (lambda: nn.BatchNorm1d(20, momentum=None), 0),  # a factor of the batch count: eager
    (lambda: nn.BatchNorm1d(20), 4),                 # the count moved after each replay
])
def test_modules_with_python_state_replay_only_what_they_can(device, monkeypatch, layer,
                                                            replays):
    x, y = data()
    build = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 20), layer(), nn.ReLU(),  # noqa
                                  nn.Linear(20, 4))
    models = twins(device, build, optim.SGD, lr=0.1)
    results = []
    for model, graphs in zip(models, (False, True)):
        nf.seed(5)   # the same dropout masks
        results.append(run(model, batches(x, y, [16] * 5), graphs, monkeypatch))
    assert results[1][1] == replays
    if not replays:
        assert type(models[1].layers[2]).__name__ in graph.graph_of(models[1]).reason
    same(device, [r[0] for r in results[1][0]], [r[0] for r in results[0][0]])
    assert_same_weights(device, *models)   # BatchNorm's running statistics and count too


class HostRoundTrip(nn.Module):
    """Identity through the host: a layer a recording cannot hold."""

    def forward(self, x):
        return self.backend.to_device(self.backend.to_host(x))

    def backward(self, grad_out):
        return grad_out


def test_a_step_that_reads_the_host_is_not_recorded_and_trains_eagerly(device, monkeypatch):
    x, y = data()
    build = lambda: nn.Sequential(HostRoundTrip(), mlp())  # noqa: E731
    models = twins(device, build, optim.SGD, lr=0.1, momentum=0.9)
    results = [run(model, batches(x, y, [16] * 4), graphs, monkeypatch)
               for model, graphs in zip(models, (False, True))]
    assert results[1][1] == 0
    assert "recording the step failed: RuntimeError" in graph.graph_of(models[1]).reason
    same(device, [r[0] for r in results[1][0]], [r[0] for r in results[0][0]])
    assert_same_weights(device, *models)   # the failed recording left the gradients alone


def test_bad_labels_and_a_non_finite_loss_in_a_replayed_step_stop_before_the_update(
        device, monkeypatch):
    x, y = data()
    eager, replayed = twins(device, mlp, optim.SGD, lr=0.1)
    for model, graphs in ((eager, False), (replayed, True)):
        run(model, batches(x, y, [16] * 3), graphs, monkeypatch)
    assert graph.graph_of(replayed).replays == 2
    bad = y[:16].copy()
    bad[3] = 4
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        replayed.train_on_batch(x[:16], bad)
    nan = x[:16].copy()
    nan[2, 0, 1, 1] = np.nan
    with pytest.raises(FloatingPointError, match="the loss became nan"):
        replayed.train_on_batch(nan, y[:16])
    assert graph.graph_of(replayed).replays == 3   # the NaN batch was replayed
    assert_same_weights(device, eager, replayed)    # neither step reached the optimizer
    replayed.optimizer.zero_grad()
    monkeypatch.setattr(graph, "enabled", True)
    run(replayed, batches(x, y, [16]), True, monkeypatch)
    run(eager, batches(x, y, [16]), False, monkeypatch)
    assert_same_weights(device, eager, replayed)


def test_new_parameter_arrays_are_recorded_again(device, monkeypatch):
    """Assigning a weight replaces its array: the recording, made on the old one, is dropped,
    the next step runs eagerly and the one after it is recorded anew."""
    x, y = data()
    models = twins(device, mlp, optim.SGD, lr=0.1)
    results = []
    for model, graphs in zip(models, (False, True)):
        r = run(model, batches(x, y, [16] * 3), graphs, monkeypatch)[1]
        model.layers[1].weight.data = np.full((20, 64), 0.01, np.float32)
        results.append(r + run(model, batches(x, y, [16] * 3), graphs, monkeypatch)[1])
    assert results == [0, 2 + 2]
    assert_same_weights(device, *models)


def test_a_capture_runs_nothing_until_replayed(device):
    """The capture rules of nnfast.backend, which the tests above rely on: kernels recorded,
    not run (the emulation's outputs NaN until then), host reads and host arrays refused, the
    loss kept on the device, the scalars given kept for every replay."""
    b = backends.get(device)
    a = b.to_device(np.arange(4, dtype=np.float32))
    b.capture_begin()
    try:
        y = b.scale(a, 2.0)
        if device == "emulated":
            assert np.isnan(y._a).all()
        loss = b.mse_forward(a, y)
        assert b.is_array(loss) and tuple(loss.shape) == (1,)
        with pytest.raises(RuntimeError, match="while a .*graph is being captured"):
            b.to_host(y)
        with pytest.raises((RuntimeError, TypeError)):
            b.gather_rows(a, np.array([0, 1]))   # a host array a replay could not read
    except BaseException:
        b.capture_abort()
        raise
    recording = b.capture_end()
    a.copy_from(np.ones(4, np.float32))
    recording.replay()
    np.testing.assert_array_equal(b.to_host(y), np.full(4, 2.0, np.float32))   # 2.0 kept
    np.testing.assert_array_equal(b.to_host(loss), [1.0])
    recording.replay()   # again: the same arrays, the same result
    np.testing.assert_array_equal(b.to_host(y), np.full(4, 2.0, np.float32))
