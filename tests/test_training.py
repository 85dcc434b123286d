"""Training: XOR, Keras-style compile/fit/evaluate/predict, callbacks, summary counts, seeding,
optimizers against the reference, and a real MNIST subset."""
import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim
from nnfast import reference as ref

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([0, 1, 1, 0], np.float32)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 100), nn.Sigmoid(), nn.Linear(100, 10))


def test_xor_2_2_1_learns_with_a_hand_written_loop():
    nf.seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid())
    loss_fn = nn.BCELoss()
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(2000):
        out = model(XOR_X)
        loss = loss_fn(out, XOR_Y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    assert loss < 0.05
    np.testing.assert_array_equal((model(XOR_X)[:, 0] > 0.5), XOR_Y.astype(bool))


def test_xor_with_fit_and_keras_strings():
    nf.seed(1)
    model = nn.Sequential(nn.Dense(8, activation="tanh"), nn.Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert isinstance(model.loss_fn, nn.BCELoss)
    assert model.optimizer is None          # Dense layers are built by fit's first batch
    history = model.fit(XOR_X, XOR_Y, epochs=1500, batch_size=4, verbose=0)
    assert isinstance(model.optimizer, optim.Adam)
    assert set(history.history) == {"loss", "accuracy"}
    assert history.history["accuracy"][-1] == 1.0
    assert model.evaluate(XOR_X, XOR_Y)["accuracy"] == 1.0


@pytest.mark.parametrize("model,shape,count", [
    (lambda: nn.Sequential(nn.Dense(10, activation="softmax")), (784,), 7850),
    (lambda: nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10)), (784,), 79510),
    (lenet, (1, 28, 28), 65558),
    (lambda: nn.Sequential(nn.Dense(256, "relu"), nn.Dense(128, "relu"), nn.Dense(10)), (784,),
     235146),
])
def test_summary_counts_match_keras(model, shape, count):
    m = model()
    table = m.summary(input_shape=shape, print_fn=None)
    assert m.count_params() == count
    assert f"Total params: {count:,}" in table


def test_lenet_summary_shapes():
    table = lenet().summary(input_shape=(1, 28, 28), print_fn=None)
    for line in ("conv2d (Conv2d)", "(None, 16, 24, 24)", "(None, 32, 4, 4)", "(None, 512)",
                 "51,300"):
        assert line in table


def test_categorical_crossentropy_after_softmax_equals_fused_loss():
    nf.seed(2)
    z = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 2, 2, 0])
    model = nn.Sequential(nn.Softmax())
    model.compile("sgd", "sparse_categorical_crossentropy")
    loss = model.loss_fn(model(z), y)
    fused = nn.CrossEntropyLoss()
    assert loss == pytest.approx(fused(z, y), rel=1e-5)
    grad = model.backward(model.loss_fn.backward())
    np.testing.assert_allclose(grad, fused.backward(), rtol=1e-4, atol=1e-6)
    onehot = nf.data.to_categorical(y, 4)
    assert fused(z, onehot) == pytest.approx(fused(z, y), rel=1e-6)


def test_seed_reproduces_weights_and_training_bit_for_bit():
    x = np.random.default_rng(0).random((64, 20)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 64)

    def run():
        nf.seed(123)
        m = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        m.compile(optim.SGD(m.parameters(), lr=0.1, momentum=0.9), nn.CrossEntropyLoss())
        m.fit(x, y, epochs=3, batch_size=8, verbose=0)
        return m.get_weights()

    nf.set_num_threads(1)
    try:
        for a, b in zip(run(), run()):
            np.testing.assert_array_equal(a, b)
    finally:
        nf.set_num_threads(2)
    nf.seed(5)
    w1 = nn.Linear(4, 4).weight.data
    nf.seed(6)
    assert not np.array_equal(w1, nn.Linear(4, 4).weight.data)


def test_optimizers_match_reference_updates():
    p = nn.Parameter(np.ones(5, np.float32))
    expected = np.ones(5, np.float32)
    buf = np.zeros(5, np.float32)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for step in range(3):
        p.grad[...] = np.arange(5) * (step + 1)
        ref.sgd_step(expected, p.grad.copy(), buf, lr=0.1, momentum=0.9, weight_decay=0.01,
                     nesterov=True, first_step=step == 0)
        opt.step()
    np.testing.assert_allclose(p.data, expected, rtol=1e-6)
    q = nn.Parameter(np.ones(5, np.float32))
    expected = np.ones(5, np.float32)
    m, v = np.zeros(5, np.float32), np.zeros(5, np.float32)
    adam = optim.Adam([q], lr=0.01, weight_decay=0.1)
    for step in range(1, 4):
        q.grad[...] = np.arange(5) - step
        ref.adam_step(expected, q.grad.copy(), m, v, lr=0.01, weight_decay=0.1, step=step)
        adam.step()
    np.testing.assert_allclose(q.data, expected, rtol=1e-6)
    assert adam.state_dict()["steps"] == 3


def test_fit_validation_split_history_keys_and_predict():
    nf.seed(7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    model.compile(optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), ["accuracy"])
    history = model.fit(x, y, epochs=5, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 5
    assert history.history["val_accuracy"][-1] > 0.85
    result = model.evaluate(x, y)
    loss, accuracy = result                               # Keras's list, readable by name too
    assert result.keys() == ("loss", "accuracy") and result["accuracy"] == accuracy == result[1]
    assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "accuracy": accuracy}
    pred = model.predict(x, batch_size=7)
    assert pred.shape == (200, 2) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, model(x), rtol=1e-6)


def test_early_stopping_stops_and_restores_best_weights():
    nf.seed(8)
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 2, 40)
    val = (np.random.default_rng(2).standard_normal((40, 3)).astype(np.float32),
           np.random.default_rng(3).integers(0, 2, 40))   # noise: val_loss soon stops improving
    model = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 2))
    model.compile(optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss())
    stopper = nf.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=200, batch_size=8, validation_data=val, callbacks=[stopper],
                        verbose=0)
    epochs_run = len(history.history["loss"])
    assert epochs_run < 200 and stopper.stopped_epoch == epochs_run - 1
    best = min(history.history["val_loss"])
    assert model.evaluate(*val)["loss"] == pytest.approx(best, rel=1e-5)


def test_fit_stops_on_non_finite_loss():
    model = nn.Sequential(nn.Linear(2, 1))
    model.compile(optim.SGD(model.parameters(), lr=1e30), nn.MSELoss())
    x = np.array([[1e20, 1e20]] * 4, np.float32)
    with pytest.raises(FloatingPointError, match="training diverged"):
        model.fit(x, np.ones(4, np.float32), epochs=3, verbose=0)


def test_lazy_dense_layers_are_trained_with_a_string_optimizer():
    nf.seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dense(2))
    model.compile("sgd", nn.CrossEntropyLoss())
    assert not model.is_built() and model.optimizer is None
    x = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    model.fit(x, np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    dense_before = model[2].weight.data.copy()
    model.fit(x, np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    assert len(model.optimizer.params) == 4
    assert not np.array_equal(model[2].weight.data, dense_before)
    with pytest.raises(ValueError, match="input size is not known yet"):
        unbuilt = nn.Sequential(nn.Linear(4, 6), nn.Dense(2))
        unbuilt.compile(optim.SGD(unbuilt.parameters(), lr=0.1), "mse")


def test_compile_errors():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile("rmsprop", "mse")
    with pytest.raises(RuntimeError, match="compile"):
        nn.Sequential(nn.Linear(2, 2)).fit(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="samples"):
        model.compile("sgd", "mse").fit(np.ones((3, 2)), np.ones(2), verbose=0)


def test_fit_on_a_real_mnist_subset(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    nf.seed(0)
    model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))
    model.compile(optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), ["accuracy"])
    model.fit(x_train[:10000].reshape(-1, 784) / 255.0, y_train[:10000], epochs=3,
              batch_size=50, verbose=0)
    acc = model.evaluate(x_test[:2000].reshape(-1, 784) / 255.0, y_test[:2000])["accuracy"]
    assert acc >= 0.85, acc      # a margin below what this network reaches here


def test_lenet_design_example_learns(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    nf.seed(0)
    model = lenet()
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                  loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
    model.fit(x_train[:3000].reshape(-1, 1, 28, 28) / 255.0, y_train[:3000], epochs=2,
              batch_size=50, verbose=0)
    acc = model.evaluate(x_test[:1000].reshape(-1, 1, 28, 28) / 255.0, y_test[:1000])["accuracy"]
    assert acc >= 0.85, acc
