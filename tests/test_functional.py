"""Graph models (Keras's functional API): every construct's gradients against finite differences,
a residual block and a shared layer against PyTorch, construction errors naming the layer,
summary, save / load and state_dict, training with several inputs and outputs."""
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnfast as nf
from nnfast import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "examples"))
from zone_network import ZoneNet, zone_network  # noqa: E402  (the example's two models)


def numeric_gradients(model, xs, weights, eps=1e-2):
    """Central differences of f = sum(output * weights) over every input value and parameter
    value, in float64 from float32 forwards."""
    def f():
        outs = model.forward(xs if len(xs) > 1 else xs[0])
        outs = outs if isinstance(outs, list) else [outs]
        return sum(float(np.sum(o.astype(np.float64) * w)) for o, w in zip(outs, weights))

    grads = []
    for array in list(xs) + [p.data for p in model.parameters()]:
        g = np.zeros(array.shape)
        for i in np.ndindex(array.shape):
            keep = array[i]
            array[i] = keep + eps
            up = f()
            array[i] = keep - eps
            down = f()
            array[i] = keep
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def analytic_gradients(model, xs, weights):
    model.zero_grad()
    model.forward(xs if len(xs) > 1 else xs[0])
    dx = model.backward([w.astype(np.float32) for w in weights] if len(weights) > 1
                        else weights[0].astype(np.float32))
    dx = dx if isinstance(dx, list) else [dx]
    return dx + [p.grad for p in model.parameters()]


def graph(kind, n):
    """(model, input sample shapes) of one construct between small Linear layers."""
    nf.seed(n)
    if kind in ("cropping", "slice2d"):
        x = nn.Input(shape=(5, 6, 2))
        h = nn.Cropping2D(((1, 0), (2, 1)))(x) if kind == "cropping" else x[:, 1:4, :, 0:1]
        return nf.Model(x, nn.Dense(3)(nn.Flatten()(h))), [(5, 6, 2)]
    a, b = nn.Input(shape=(n,)), nn.Input(shape=(n,))
    ha, hb = nn.Linear(n, 4)(a), nn.Linear(n, 4)(b)
    if kind == "concatenate":
        out = nn.Concatenate()([ha, hb, a])
    elif kind == "slice":
        out = nn.Add()([ha[:, 1:3], hb[:, 0:2]])
    elif kind == "shared":
        layer = nn.Linear(n, 4)
        out = nn.Multiply()([layer(a), layer(b)])
    elif kind == "fan_out":
        out = nn.Add()([nn.Subtract()([nn.Tanh()(ha), nn.Sigmoid()(ha)]), hb])
    else:
        out = {"add": nn.Add, "subtract": nn.Subtract, "multiply": nn.Multiply,
               "average": nn.Average}[kind]()([ha, hb])
    return nf.Model([a, b], [nn.Linear(out.sample_shape[0], 2)(out), ha]), [(n,), (n,)]


KINDS = ["add", "subtract", "multiply", "average", "concatenate", "slice", "shared", "fan_out",
         "cropping", "slice2d"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=6, deadline=None)
@given(n=st.integers(2, 5), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_gradients_match_finite_differences(kind, n, batch, seed):
    model, shapes = graph(kind, n)
    model.to("reference")
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(batch, *s)).astype(np.float32) for s in shapes]
    outs = model.forward(xs if len(xs) > 1 else xs[0])
    outs = outs if isinstance(outs, list) else [outs]
    weights = [rng.normal(size=o.shape) for o in outs]
    numeric = numeric_gradients(model, xs, weights)
    for got, want in zip(analytic_gradients(model, xs, weights), numeric):
        np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)


def test_cpu_and_reference_backends_agree_on_a_graph():
    model, shapes = graph("shared", 4)
    x = [np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32) for _ in shapes]
    cpu = model.predict(x)
    model.to("reference")
    for a, b in zip(cpu, model.predict(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_residual_block_and_shared_layer_match_torch():
    torch = pytest.importorskip("torch")
    nf.seed(0)
    x = nn.Input(shape=(6,))
    shared = nn.Linear(6, 6)
    h = nn.Add()([x, shared(nn.ReLU()(shared(x)))])          # x + f(relu(f(x))), f shared
    head = nn.Linear(6, 3)
    model = nf.Model(x, head(h))

    tshared, thead = torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)
    with torch.no_grad():
        for t, layer in ((tshared, shared), (thead, head)):
            t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
            t.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    xs = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    tx = torch.from_numpy(xs).requires_grad_()
    tout = thead(tx + tshared(torch.relu(tshared(tx))))
    dy = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    tout.backward(torch.from_numpy(dy))

    model.zero_grad()
    out = model.forward(xs)
    dx = model.backward(dy)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shared.weight.grad, tshared.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(head.bias.grad, thead.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_construction_errors_name_the_layer():
    a, b = nn.Input(shape=(3,)), nn.Input(shape=(4,))
    with pytest.raises(ValueError, match=r"Add cannot take input\(s\) of shape"):
        nn.Add()([a, b])
    with pytest.raises(ValueError, match="Linear cannot take"):
        nn.Linear(5, 2)(a)
    stray = nn.Input(shape=(3,))
    with pytest.raises(ValueError, match="Linear reads an Input of shape \\(3,\\) that is not"):
        nf.Model(a, nn.Linear(3, 2)(stray))
    with pytest.raises(ValueError, match="does not lead to any output"):
        nf.Model([a, b], nn.Linear(3, 2)(a))
    with pytest.raises(TypeError, match="Model inputs must be nn.Input"):
        nf.Model(nn.Linear(3, 2)(a), a)
    with pytest.raises(IndexError, match="batch axis whole"):
        a[0]


def test_summary_lists_nodes_with_their_inbound_layers():
    x = nn.Input(shape=(4,))
    shared = nn.Dense(3)
    y = nn.Concatenate()([shared(x), shared(x)])
    text = nf.Model(x, y).summary(print_fn=None)
    assert "Connected to" in text
    assert "concatenate (Concatenate)     (None, 6)" in text
    assert "dense, dense" in text
    assert "Total params: 15" in text          # the shared Dense counted once


def test_save_load_and_state_dict(tmp_path):
    model, shapes = graph("shared", 3)
    model.compile("adam", ["mse", "mse"], loss_weights=[1.0, 0.5])
    x = [np.random.default_rng(3).normal(size=(8, 3)).astype(np.float32) for _ in shapes]
    model.fit(x, [np.zeros((8, 2)), np.zeros((8, 4))], epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "graph.nnf")
    loaded = nf.load(tmp_path / "graph.nnf")
    for a, b in zip(model.predict(x), loaded.predict(x)):
        np.testing.assert_array_equal(a, b)
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert loaded.compiled.loss.weights == [1.0, 0.5]


def test_several_inputs_and_outputs_train():
    nf.seed(0)
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(256, 5)).astype(np.float32), rng.normal(size=(256, 5)).astype(
        np.float32)
    labels = ((xa[:, 0] + xb[:, 0]) > 0).astype(np.int64)
    a, b = nn.Input(shape=(5,)), nn.Input(shape=(5,))
    h = nn.Dense(16, activation="relu")(nn.Concatenate()([a, b]))
    model = nf.Model([a, b], [nn.Dense(2)(h), nn.Dense(1)(h)])
    model.compile(nf.optim.Adam(model.parameters(), lr=0.01),
                  ["sparse_categorical_crossentropy", "mse"], ["accuracy"])
    history = model.fit([xa, xb], [labels, xa[:, :1]], epochs=20, batch_size=32, verbose=0,
                        validation_split=0.25)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.2
    assert history.history["val_accuracy"][-1] > 0.9
    scores = model.evaluate([xa, xb], [labels, xa[:, :1]], return_dict=True)
    assert scores["accuracy"] > 0.9
    with pytest.raises(ValueError, match="give a list of 2 targets"):
        model.evaluate([xa, xb], labels)


def test_an_output_without_a_loss_gets_no_gradient():
    nf.seed(0)
    x = nn.Input(shape=(3,))
    trained, untrained = nn.Linear(3, 2), nn.Linear(3, 2)
    model = nf.Model(x, [trained(x), untrained(x)])
    model.compile("sgd", ["mse", None])
    before = untrained.weight.data.copy()
    model.fit(np.ones((4, 3), np.float32), [np.zeros((4, 2)), None], epochs=1, verbose=0)
    np.testing.assert_array_equal(untrained.weight.data, before)


@pytest.mark.parametrize("build", [zone_network, ZoneNet])
def test_zone_network_trains_on_mnist(mnist, build):
    (x_train, y_train), (x_test, y_test) = mnist
    x_train = (x_train[:12000] / np.float32(255)).reshape(-1, 1, 28, 28).astype(np.float32)
    x_test = (x_test[:2000] / np.float32(255)).reshape(-1, 1, 28, 28).astype(np.float32)
    nf.seed(0)
    model = build()
    model.compile("adam", [nn.NLLLoss(), None, None, None], ["accuracy"])
    model.fit(x_train, [y_train[:12000], None, None, None], epochs=1, batch_size=64, verbose=0)
    log_probs, *per_band = model.predict(x_test)
    assert [b.shape for b in per_band] == [(2000, 8), (2000, 10), (2000, 8)]
    assert nf.metrics.accuracy(y_test[:2000], log_probs) > 0.85


def test_traced_model_matches_its_functional_twin_and_keeps_pytorch_keys():
    nf.seed(0)
    traced = ZoneNet()
    x = np.random.default_rng(5).random((4, 1, 28, 28)).astype(np.float32)
    outputs = traced.predict(x)
    assert list(traced.state_dict())[:2] == ["bands.0.0.weight", "bands.0.0.bias"]
    twin = zone_network()
    twin.set_weights(traced.get_weights())
    for a, b in zip(outputs, twin.predict(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(6)
    grads = [rng.normal(size=o.shape).astype(np.float32) for o in outputs]
    for model in (traced, twin):      # the same gradients for the same weights (dropout off)
        model.eval()
        model.zero_grad()
        model.forward(x)
        model.backward(grads)
    for a, b in zip(traced.parameters(), twin.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_tracing_reports_what_it_cannot_capture():
    class ValueDependent(nf.Model):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            y = self.fc(x)
            return y if y else -y

    class UsesNumPy(ValueDependent):
        def forward(self, x):
            return np.maximum(self.fc(x), 0)

    for cls in (ValueDependent, UsesNumPy):
        with pytest.raises(TypeError, match="could not be traced"):
            cls().predict(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("fuse", [True, False])
def test_chains_inside_a_graph_run_fused_with_the_same_results(fuse):
    nf.seed(0)
    x = nn.Input(shape=(1, 12, 12))
    conv, relu, pool = nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2)
    h = nn.Flatten()(pool(relu(conv(x))))
    skip = nn.Flatten()(x[:, :, 0:5, 0:5])
    model = nf.Model(x, nn.Linear(3 * 25 + 25, 4)(nn.Concatenate()([h, skip])), fuse=fuse)
    step = model.step_of(conv)
    assert step is not None and step.fused == fuse
    reference = nf.Model.from_config(model.get_config())
    assert reference.fuse == fuse
    reference.set_weights(model.get_weights())
    reference = nf.Model(reference.inputs[0], reference.outputs[0], fuse=False)
    data = np.random.default_rng(0).normal(size=(5, 1, 12, 12)).astype(np.float32)
    dy = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    for m in (model, reference):
        m.zero_grad()
    outs = [m.forward(data) for m in (model, reference)]
    dxs = [m.backward(dy) for m in (model, reference)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dxs[0], dxs[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_targets_losses_and_weights_by_output_name():
    nf.seed(0)
    x = nn.Input(shape=(4,))
    h = nn.Dense(8, activation="relu")(x)
    model = nf.Model(x, [nn.Dense(3)(h), nn.Dense(1)(h)])
    assert model.output_names == ["dense_1", "dense_2"]
    model.compile("adam", {"dense_1": "sparse_categorical_crossentropy", "dense_2": "mse"},
                  loss_weights={"dense_1": 1.0, "dense_2": 0.25})
    assert model.compiled.loss.weights == [1.0, 0.25]
    data = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    targets = {"dense_1": np.arange(32) % 3, "dense_2": data[:, :1]}
    model.fit(data, targets, epochs=1, batch_size=8, verbose=0)
    assert model.evaluate(data, targets, return_dict=True)["loss"] > 0
    with pytest.raises(ValueError, match=r"no outputs named \['head'\]"):
        model.fit(data, {"head": targets["dense_1"]}, verbose=0)
    with pytest.raises(TypeError, match="needs a graph model"):
        nf.Sequential(nn.Linear(4, 3)).by_output({"a": 1}, "fit")


def test_a_traced_model_of_two_inputs_with_lazy_layers_trains():
    class TwoInputs(nf.Model):
        def __init__(self):
            super().__init__()
            self.left, self.right, self.head = nn.Dense(4), nn.Dense(4), nn.Dense(2)

        def forward(self, a, b):
            return self.head(nn.Concatenate()([self.left(a), self.right(b)]))

    nf.seed(0)
    model = TwoInputs()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 5)).astype(np.float32)
    history = model.fit([a, b], np.arange(16) % 2, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.left.linear.weight.shape == (4, 3) and model.right.linear.weight.shape == (4, 5)
