"""ONNX export: onnxruntime runs the exported file with nnfast's outputs (where onnx and
onnxruntime are installed), unsupported layers are refused, a missing onnx package is named."""
import sys

import numpy as np
import pytest

import nnfast as nf
import nnfast.onnx
from nnfast import nn

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")


def randomize(model, seed=0):
    """Random weights and biases (biases start at zero, which would hide a missing one)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape).astype(np.float32) * 0.5
    return model


def mlp():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(),
                         nn.Linear(8, 3), nn.Softmax())


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.Sigmoid(), nn.Linear(32, 10))


def every_layer():
    """Every layer export supports, a nested Sequential and a Dense among them."""
    return nn.Sequential(
        nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2), nn.MaxPool2d(3, stride=1, padding=1),
        nn.Sequential(nn.AvgPool2d(2, stride=1, padding=1), nn.Identity(), nn.Dropout(0.3)),
        nn.Threshold(0.1, -0.5), nn.Conv2d(4, 3, (2, 3), bias=False), nn.Tanh(), nn.Flatten(),
        nn.Dense(12, activation="relu"), nn.Linear(12, 6, bias=False), nn.Sigmoid(),
        nn.Linear(6, 5), nn.LogSoftmax())


def dense():
    return nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(8, activation="tanh"),
                         nn.Dense(8, activation="leaky_relu"), nn.Dense(8),
                         nn.Dense(4, activation="softmax"))


def with_moved_statistics(model, shape):
    """The model after two training-mode forwards, so running statistics are not 0 and 1."""
    rng = np.random.default_rng(3)
    for _ in range(2):
        model(rng.standard_normal((6, *shape)).astype(np.float32) * 2 + 1)
    return model


def batchnorm():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 6), nn.BatchNorm1d(6, affine=False))
    return with_moved_statistics(model, (2, 7, 7))


def keras():
    """Channels-last Keras layers: transposes, "same" padding (an uneven one among them)."""
    model = nf.Sequential([
        nn.Input(shape=(9, 9, 2)), nn.Conv2D(4, 3, padding="same", activation="relu"),
        nn.MaxPooling2D(2, padding="same"), nn.BatchNormalization(),
        nn.Conv2D(3, 2, strides=2, padding="same"), nn.Flatten(),
        nn.Dense(5, activation="softmax")])
    return with_moved_statistics(model, (9, 9, 2))


CASES = {"mlp": (mlp, (10,)), "lenet": (lenet, (1, 28, 28)),
         "every_layer": (every_layer, (2, 9, 8)), "dense": (dense, (7,)),
         "batchnorm": (batchnorm, (2, 7, 7)), "keras": (keras, (9, 9, 2))}


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnxruntime_matches_predict(name, tmp_path):
    make, shape = CASES[name]
    model = make()
    path = tmp_path / f"{name}.onnx"
    nf.onnx.export(model, path, shape)      # builds the Dense layers before randomize
    randomize(model)
    nf.onnx.export(model, path, shape)
    model.train()                           # exported as in eval mode, and left as it was
    assert model.training
    rng = np.random.default_rng(1)
    for batch in (1, 7):                    # one file, any batch size
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x), model.predict(x), rtol=1e-5, atol=1e-5)


def test_graph_is_standard_onnx(tmp_path):
    path = tmp_path / "lenet.onnx"
    proto = nf.onnx.export(lenet(), path, (1, 28, 28))
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.opset_import[0].version == 17 and proto.graph == loaded.graph
    (inp,), (out,) = loaded.graph.input, loaded.graph.output
    assert inp.name == "input" and out.name == "output"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    ops = [n.op_type for n in loaded.graph.node]
    assert ops == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm",
                   "Sigmoid", "Gemm"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    assert weights["7.weight"].shape == (32, 400)                 # PyTorch's (out, in)
    assert weights["0.weight"].shape == (6, 1, 5, 5) and weights["0.weight"].dtype == np.float32


def test_identity_only_model(tmp_path):
    model = nn.Sequential(nn.Dropout(0.5), nn.Identity())
    nf.onnx.export(model, tmp_path / "id.onnx", (3,))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run_onnx(tmp_path / "id.onnx", x), x)


def test_single_layer(tmp_path):
    layer = randomize(nn.Linear(3, 2))
    nf.onnx.export(layer, tmp_path / "linear.onnx", (3,))
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "linear.onnx", x), layer(x), rtol=1e-5,
                               atol=1e-5)


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Net(nf.Model):
    def __init__(self):
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("model, named", [(nn.Sequential(nn.Linear(3, 3), Square()), "Square"),
                                          (Net(), "Net")])
def test_unsupported_layer_is_a_type_error(model, named, tmp_path):
    with pytest.raises(TypeError, match=named):
        nf.onnx.export(model, tmp_path / "x.onnx", (3,))
    assert not (tmp_path / "x.onnx").exists()


def test_missing_onnx_package_names_pip(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)   # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        nf.onnx.export(mlp(), tmp_path / "mlp.onnx", (10,))


def test_old_opset_refused(tmp_path):
    with pytest.raises(ValueError, match="opset 13"):
        nf.onnx.export(mlp(), tmp_path / "mlp.onnx", (10,), opset=11)
