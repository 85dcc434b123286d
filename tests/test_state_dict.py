"""state_dict / load_state_dict with PyTorch's keys and layouts, strict errors, and a round trip
through PyTorch itself where it is installed."""
import numpy as np
import pytest

import nnfast as nf
from nnfast import nn
from conftest import random_array


class Net(nf.Model):
    """A user's model: layers as attributes, a forward and backward of its own."""

    def __init__(self):
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(27, 4)

    def forward(self, x):
        return self.fc(self.flatten(self.features(x)))

    def backward(self, grad_out):
        return self.features.backward(self.flatten.backward(self.fc.backward(grad_out)))


def test_keys_are_pytorchs():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dense(2, input_dim=3),
                          nn.Sequential(nn.Linear(2, 2, bias=False)))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.0.weight"]
    assert model.state_dict()["0.weight"].shape == (3, 4)          # (out, in)
    assert list(Net().state_dict()) == ["features.0.weight", "features.0.bias", "fc.weight",
                                        "fc.bias"]


def test_round_trip_and_copies():
    nf.seed(0)
    a, b = Net(), Net()
    state = a.state_dict()
    state["fc.bias"][0] = 42.0                   # a copy: the model keeps its own values
    assert a.fc.bias.data[0] != 42.0
    assert b.load_state_dict(a.state_dict()) == ([], [])
    x = random_array(1, (2, 1, 8, 8))
    np.testing.assert_array_equal(a(x), b(x))


def test_strict_errors_name_the_keys_and_change_nothing():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    before = model.state_dict()
    state = dict(before)
    del state["1.bias"]
    state["2.weight"] = np.zeros((1, 1), np.float32)
    with pytest.raises(RuntimeError, match=r"missing key\(s\): 1\.bias(.|\n)*unexpected key\(s\): 2\.weight"):
        model.load_state_dict(state)
    assert model.load_state_dict(state, strict=False) == (["1.bias"], ["2.weight"])
    bad = dict(before, **{"0.weight": np.zeros((4, 3), np.float32), "1.weight": before["1.weight"] + 1})
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight: \(4, 3\).*\(3, 4\)"):
        model.load_state_dict(bad)
    np.testing.assert_array_equal(model.state_dict()["1.weight"], before["1.weight"])
    with pytest.raises(TypeError, match="not numeric"):
        model.load_state_dict(dict(before, **{"0.bias": np.array(["a", "b", "c"])}))


def test_a_torch_state_dict_loads_and_both_predict_the_same():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * 13 * 13, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 13 * 13, 16), nn.ReLU(), nn.Linear(16, 10))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = random_array(2, (5, 1, 28, 28))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-5)
    nf.seed(9)
    other = nn.Sequential(*(type(layer)(**layer.get_config()) for layer in ours))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in other.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), other.predict(x),
                                   rtol=1e-5, atol=1e-5)
