"""Keras's callbacks in fit: ModelCheckpoint, CSVLogger, LearningRateScheduler,
ReduceLROnPlateau, and the hooks' order."""
import csv

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim


def small_problem(seed=0):
    nf.seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    model.compile(optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), ["accuracy"])
    return model, x, y


def test_model_checkpoint_keeps_the_best_epoch(tmp_path):
    model, x, y = small_problem()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.4f}.nnf")
    saver = nf.ModelCheckpoint(pattern, monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=6, batch_size=16, validation_split=0.25, callbacks=[saver],
                        verbose=0)
    losses = history.history["val_loss"]
    improved = [i for i, v in enumerate(losses) if v < min(losses[:i], default=np.inf)]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"ckpt-{i + 1:02d}-{losses[i]:.4f}.nnf" for i in improved]
    best = nf.load(tmp_path / files[-1])
    assert best.evaluate(x[90:], y[90:])["loss"] == pytest.approx(min(losses), rel=1e-5)
    every = nf.ModelCheckpoint(str(tmp_path / "w.nnf"), save_weights_only=True)
    model.fit(x, y, epochs=1, batch_size=16, callbacks=[every], verbose=0)
    other, _, _ = small_problem(seed=5)
    other.load_weights(tmp_path / "w.nnf")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_csv_logger_writes_the_history(tmp_path):
    model, x, y = small_problem()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.2,
                        callbacks=[nf.CSVLogger(path)], verbose=0)
    model.fit(x, y, epochs=2, batch_size=32, validation_split=0.2,
              callbacks=[nf.CSVLogger(path, append=True)], verbose=0)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "0", "1"]
    for row, loss in zip(rows, history.history["loss"]):
        assert float(row["loss"]) == loss


def test_learning_rate_scheduler_sets_and_logs_the_rate():
    model, x, y = small_problem()
    seen = []

    class Spy(nf.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.optimizer.lr)

    schedule = nf.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    history = model.fit(x, y, epochs=3, batch_size=40, callbacks=[schedule, Spy()], verbose=0)
    assert seen == [0.1, 0.05, 0.025] == history.history["learning_rate"]
    one_argument = nf.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    model.fit(x, y, epochs=2, batch_size=40, callbacks=[one_argument], verbose=0)
    assert model.optimizer.lr == pytest.approx(0.02)


def test_reduce_lr_on_plateau_waits_patience_then_cooldown():
    model, _, _ = small_problem()
    reducer = nf.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                                   min_lr=0.02)
    reducer.model = model
    reducer.on_train_begin()
    rates = []
    for epoch, value in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]):
        reducer.on_epoch_end(epoch, {"val_loss": value})
        rates.append(model.optimizer.lr)
    # Keras counts the epoch that ends a cooldown towards the next wait
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02]
    with pytest.raises(KeyError, match="ReduceLROnPlateau monitors 'val_acc'"):
        nf.ReduceLROnPlateau(monitor="val_acc").on_epoch_end(0, {"loss": 1.0})


def test_hooks_run_in_keras_order():
    model, x, y = small_problem()
    calls = []

    class Recorder(nf.Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_train_batch_end(self, batch, logs=None):
            calls.append(f"batch {batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    model.fit(x, y, epochs=2, batch_size=60, callbacks=[Recorder()], verbose=0)
    assert calls == ["train_begin", "epoch_begin 0", "batch 0", "batch 1", "epoch_end 0",
                     "epoch_begin 1", "batch 0", "batch 1", "epoch_end 1", "train_end"]
