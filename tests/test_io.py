"""Save / load: architecture, weights and optimizer state round-trip exactly; bad files raise
clear errors; saving is atomic."""
import os
import zipfile

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim


def trained_model(tmp_path):
    nf.seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.2), nn.Dense(8, activation="tanh"),
                          nn.Linear(8, 3))
    x = np.random.default_rng(0).random((32, 1, 6, 6)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 32)
    model.compile(optimizer="adam", loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model, x, y


def test_round_trip_predicts_identically_and_keeps_optimizer_state(tmp_path):
    model, x, y = trained_model(tmp_path)
    path = tmp_path / "model.nnf"
    model.save(path)
    loaded = nf.load(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(m).__name__ for m in loaded] == [type(m).__name__ for m in model]
    assert isinstance(loaded.optimizer, optim.Adam)
    assert loaded.optimizer.steps == model.optimizer.steps
    for a, b in zip(loaded.optimizer.state["m"], model.optimizer.state["m"]):
        np.testing.assert_array_equal(a, b)
    # Training continues identically from the saved state.
    nf.seed(9)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    nf.seed(9)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sgd_state_and_keras_string_loss_round_trip(tmp_path):
    nf.seed(1)
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax())
    model.compile(optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True),
                  "categorical_crossentropy", ["accuracy"])
    x = np.random.default_rng(0).random((16, 4)).astype(np.float32)
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.nnf")
    loaded = nf.load(tmp_path / "m.nnf")
    assert loaded.loss_name == "categorical_crossentropy"
    assert loaded.optimizer.nesterov and loaded.optimizer.lr == pytest.approx(0.2)
    np.testing.assert_array_equal(loaded.optimizer.state["momentum_buffer"][0],
                                  model.optimizer.state["momentum_buffer"][0])


def test_weights_only_and_get_set_weights(tmp_path):
    model, x, _ = trained_model(tmp_path)
    model.save_weights(tmp_path / "w.npz")
    nf.seed(42)
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.2), nn.Dense(8, activation="tanh", input_dim=36),
                          nn.Linear(8, 3))
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="must have shape"):
        other.set_weights([w[..., :1] for w in model.get_weights()])
    with pytest.raises(ValueError, match="expected 6 arrays"):
        other.set_weights(model.get_weights()[:2])
    with pytest.raises(nf.ModelFileError, match="weights only"):
        nf.load(tmp_path / "w.npz")


def test_files_are_read_without_pickle(tmp_path):
    path = tmp_path / "evil.nnf"
    with open(path, "wb") as f:
        np.savez(f, header=np.array([{"format": "nnfast-model"}], dtype=object))
    with pytest.raises(nf.ModelFileError):
        nf.load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "version", "no_header", "bad_json",
                                    "unknown_layer"])
def test_damaged_files_raise_clear_errors(tmp_path, damage):
    model, _, _ = trained_model(tmp_path)
    path = tmp_path / "m.nnf"
    model.save(path)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a model at all")
    else:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = arrays.pop("header").tobytes().decode()
        if damage == "version":
            header = header.replace('"version": 1', '"version": 99')
        elif damage == "unknown_layer":
            header = header.replace('"class": "ReLU"', '"class": "os.system"')
        elif damage == "bad_json":
            header = header[:-5]
        if damage != "no_header":
            arrays["header"] = np.frombuffer(header.encode(), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    with pytest.raises(nf.ModelFileError):
        nf.load(path)


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model, x, _ = trained_model(tmp_path)
    path = tmp_path / "m.nnf"
    model.save(path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.nnf"]          # no temporary file left behind
    assert zipfile.is_zipfile(path)
    np.testing.assert_array_equal(nf.load(path).predict(x), model.predict(x))


def test_custom_modules_cannot_be_saved_as_architecture(tmp_path):
    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="save_weights"):
        nn.Sequential(nn.Linear(2, 2), Mine()).save(tmp_path / "x.nnf")
