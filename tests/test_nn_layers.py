"""Each layer's forward and backward through the Python layer equal the NumPy reference, and
the layers refuse bad input with PyTorch-style messages."""
import functools

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn
from nnfast import reference as ref
from conftest import random_array


def x32(seed, *shape):
    return random_array(seed, shape)


def backward_matches(layer, x, forward_ref, backward_ref):
    """Forward and backward of ``layer`` equal the reference functions."""
    y = layer(x)
    np.testing.assert_allclose(y, forward_ref(x), rtol=1e-4, atol=1e-5)
    g = x32(99, *y.shape)
    np.testing.assert_allclose(layer.backward(g), backward_ref(g, x, y), rtol=1e-4, atol=1e-5)


def test_linear_layer_matches_reference():
    nf.seed(0)
    layer = nn.Linear(7, 4)
    x = x32(1, 5, 7)
    y = layer(x)
    w, b = layer.weight.data, layer.bias.data
    assert w.shape == (4, 7) and layer.weight.grad.shape == (4, 7)   # PyTorch's layout
    np.testing.assert_allclose(y, ref.linear_forward(x, w.T, b), rtol=1e-5)
    g = x32(2, 5, 4)
    dx = layer.backward(g)
    dx_ref, dwt_ref, db_ref = ref.linear_backward(g, x, w.T)
    dw_ref = dwt_ref.T
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=1e-5, atol=1e-6)
    layer.backward(g)                                  # gradients accumulate
    np.testing.assert_allclose(layer.weight.grad, 2 * dw_ref, rtol=1e-5, atol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.parametrize("make_opt", [
    lambda ps: nf.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: nf.optim.Adam(ps, lr=0.01, weight_decay=0.01)])
def test_linear_weight_is_pytorch_shaped_view_of_padded_transposed_memory(make_opt):
    """Linear keeps w (out, in) in memory as w.T with rows padded to 16 floats, 64-byte aligned;
    users see PyTorch's layout, the padding stays zero through training, and state_dict /
    set_weights / assigning .data and .grad all speak the public layout."""
    nf.seed(3)
    layer = nn.Linear(7, 20)
    w = layer.weight
    assert w.shape == w.data.shape == w.grad.shape == (20, 7) and w.size == 140
    assert w.storage.shape == (7, 32) and w.storage.flags.c_contiguous
    assert w.storage.ctypes.data % 64 == 0
    np.testing.assert_array_equal(w.storage[:, :20], w.data.T)
    opt = make_opt(layer.parameters())
    x, g = x32(1, 5, 7), x32(2, 5, 20)
    for _ in range(3):
        layer(x)
        layer.backward(g)
        opt.step()
        opt.zero_grad()
    assert not w.storage[:, 20:].any() and not w.grad_storage[:, 20:].any()
    for p in layer.parameters():   # values, gradients and optimizer state on whole cache lines
        arrays = [p.storage, p.grad_storage] + [a[layer.parameters().index(p)]
                                                for a in opt.state.values()]
        assert all(a.ctypes.data % 64 == 0 for a in arrays)
    state = opt.state_dict()
    assert all(a.shape == (20, 7) for a in (arrays[0] for arrays in state["state"].values()))
    opt.load_state_dict(state)
    for arrays, saved in zip(opt.state.values(), state["state"].values()):
        np.testing.assert_array_equal(w.public(arrays[0]), saved[0])
    new = x32(3, 20, 7)
    w.data = new                                          # assigning replaces the values
    np.testing.assert_array_equal(w.data, new)
    np.testing.assert_allclose(layer(x), x @ new.T + layer.bias.data, rtol=1e-5, atol=1e-6)
    w.grad = new
    np.testing.assert_array_equal(w.grad, new)
    with pytest.raises(ValueError, match="shape"):
        w.data = x32(4, 7, 20)
    layer.set_weights([new * 2, layer.bias.data])
    np.testing.assert_array_equal(layer.get_weights()[0], new * 2)
    assert layer.get_weights()[0].flags.c_contiguous


def test_conv2d_layer_matches_reference():
    nf.seed(1)
    layer = nn.Conv2d(3, 4, kernel_size=(3, 2), stride=2, padding=1)
    x = x32(3, 2, 3, 9, 8)
    y = layer(x)
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(y, ref.conv2d_forward(x, w, b, 2, 1), rtol=1e-4, atol=1e-5)
    g = x32(4, *y.shape)
    dx = layer.backward(g)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(g, x, w, 2, 1)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer,forward_ref,backward_ref", [
    (nn.ReLU(), ref.relu_forward, lambda g, x, y: ref.relu_backward(g, x)),
    (nn.LeakyReLU(0.2), lambda x: ref.leaky_relu_forward(x, 0.2),
     lambda g, x, y: ref.leaky_relu_backward(g, x, 0.2)),
    (nn.Sigmoid(), ref.sigmoid_forward, lambda g, x, y: ref.sigmoid_backward(g, y)),
    (nn.Tanh(), ref.tanh_forward, lambda g, x, y: ref.tanh_backward(g, y)),
    (nn.Softmax(), ref.softmax_forward, lambda g, x, y: ref.softmax_backward(g, y)),
    (nn.LogSoftmax(), ref.log_softmax_forward, lambda g, x, y: ref.log_softmax_backward(g, y)),
    (nn.Threshold(0.1, -1.0), lambda x: ref.threshold_forward(x, 0.1, -1.0),
     lambda g, x, y: ref.threshold_backward(g, x, 0.1)),
    (nn.Identity(), lambda x: x, lambda g, x, y: g),
])
def test_activation_layers_match_reference(layer, forward_ref, backward_ref):
    backward_matches(layer, x32(5, 6, 10), forward_ref, backward_ref)


def test_pooling_flatten_and_padding_layers():
    x = x32(6, 2, 3, 8, 8)
    pool = nn.MaxPool2d(2)
    y = pool(x)
    y_ref, argmax = ref.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(y, y_ref)
    g = x32(7, *y.shape)
    np.testing.assert_allclose(pool.backward(g), ref.maxpool2d_backward(g, argmax, x.shape, 2))
    avg = nn.AvgPool2d(3, stride=2, padding=1)
    backward_matches(avg, x, lambda x_: ref.avgpool2d_forward(x_, 3, 2, 1),
                     lambda g_, x_, y_: ref.avgpool2d_backward(g_, x_.shape, 3, 2, 1))
    flat = nn.Flatten()
    assert flat(x).shape == (2, 192)
    assert flat.backward(np.ones((2, 192), np.float32)).shape == x.shape
    pad = nn.ZeroPad2d((1, 2, 3, 4))
    p = pad(x)
    assert p.shape == (2, 3, 15, 11)
    np.testing.assert_array_equal(pad.backward(p), x)


def test_dropout_layer_is_seeded_and_off_in_eval():
    x = np.ones((50, 40), np.float32)
    drop = nn.Dropout(0.5)
    nf.seed(3)
    a = drop(x)
    nf.seed(3)
    b = drop(x)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}
    np.testing.assert_array_equal(drop.backward(x), a)    # same mask, same scale
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)


def test_dense_infers_its_input_size():
    nf.seed(4)
    dense = nn.Dense(5, activation="relu")
    assert dense.parameters() == []
    y = dense(x32(8, 3, 11))
    assert y.shape == (3, 5) and dense.weight.shape == (5, 11)
    assert (y >= 0).all()
    with pytest.raises(ValueError, match="unknown activation"):
        nn.Dense(3, activation="swish")


def test_initialisers():
    nf.seed(5)
    w = nn.Linear(300, 200).weight.data
    limit = np.sqrt(6 / 500)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    he = nn.Linear(1000, 500, init="he_normal").weight.data
    assert abs(he.std() - np.sqrt(2 / 1000)) < 0.1 * np.sqrt(2 / 1000)
    assert nn.Linear(3, 2).bias.data.tolist() == [0.0, 0.0]
    for name in ("he_uniform", "glorot_normal"):
        assert nn.Conv2d(2, 3, 3, init=name).weight.shape == (3, 2, 3, 3)
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="bogus")


def test_layer_errors_are_clear():
    with pytest.raises(ValueError, match=r"Linear expected input with 784 features, got \(32, 785\)"):
        nn.Linear(784, 10)(np.zeros((32, 785), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d expected input \(N, 1, H, W\), got \(28, 28\)"):
        nn.Conv2d(1, 4, 3)(np.zeros((28, 28), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Linear(3, 2).backward(np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="numeric"):
        nn.ReLU()(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="Dropout probability"):
        nn.Dropout(1.0)


def test_inputs_are_converted_where_a_user_would_want():
    layer = nn.Linear(4, 2)
    x64 = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.testing.assert_allclose(layer(x64), layer(x64.astype(np.float32)))
    strided = np.asfortranarray(x64)
    np.testing.assert_allclose(layer(strided), layer(x64.astype(np.float32)))


def test_sequential_container():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert len(model) == 3 and isinstance(model[0], nn.Linear)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    last = model.pop()
    assert isinstance(last, nn.Linear) and len(model) == 2
    model.add(nn.Linear(3, 5))
    assert model(np.ones((2, 4), np.float32)).shape == (2, 5)
    with pytest.raises(TypeError):
        model.add("relu")
    assert len(model.parameters()) == 4


def lenet_like():
    nf.seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 8), nn.Sigmoid(), nn.Dropout(0.5), nn.Linear(8, 3))


def test_no_grad_gives_the_same_outputs_and_keeps_nothing_for_backward():
    model, x = lenet_like().eval(), x32(5, 2, 1, 8, 8)
    y = model(x)
    with nf.no_grad():
        np.testing.assert_array_equal(model(x), y)
        with nf.no_grad():
            pass
        model(x)                      # after a nested block: still off, so nothing is kept
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(y))
    loss = nn.CrossEntropyLoss()
    with nf.no_grad():
        loss(y, np.array([0, 2]))
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()
    model(x)                          # tracked again outside the block
    assert model.backward(np.ones_like(y)).shape == x.shape


def test_predict_runs_without_keeping_activations():
    model = lenet_like()
    x = x32(6, 3, 1, 8, 8)
    model.predict(x, batch_size=2)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones((1, 3), np.float32))
    assert model.training           # predict put the training mode back


def test_no_grad_is_per_thread():
    import threading
    model, x = lenet_like(), x32(7, 2, 1, 8, 8)
    inside, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with nf.no_grad():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold_no_grad)
    worker.start()
    inside.wait(5)
    y = model(x)                     # this thread still tracks gradients
    release.set()
    worker.join()
    assert model.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("make,shape", [(lambda: nn.Linear(6, 4), (3, 6)),
                                        (lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5))])
def test_zero_grad_is_lazy_but_exact(make, shape):
    nf.seed(1)
    layer, x = make(), x32(11, *shape)
    g = x32(12, *layer(x).shape)
    layer.backward(g)
    once_w, once_b = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once_w, rtol=1e-5, atol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()   # reads as zeros
    layer.zero_grad()
    layer.backward(g)                                 # overwrites the stale sums
    layer.backward(g)                                 # then adds
    np.testing.assert_allclose(layer.weight.grad, 2 * once_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * once_b, rtol=1e-5, atol=1e-6)
    layer.weight.zero_grad()                          # only one of the two zeroed
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, once_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 3 * once_b, rtol=1e-5, atol=1e-6)
    layer.zero_grad()
    with pytest.raises(ValueError):
        layer.backward(np.ones((1, 1), np.float32))   # a failed backward writes nothing
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_inference_overwrites_only_its_own_temporaries():
    class Constant(nn.Module):            # a user layer returning an array it keeps
        def __init__(self):
            self.value = np.array([[-1.0, 2.0]], np.float32)

        def forward(self, x):
            return self.value

    x = np.array([[-3.0, 4.0]], np.float32)
    kept = Constant()
    models = [nn.Sequential(nn.ReLU(), nn.Sigmoid()),                    # the caller's input
              nn.Sequential(nn.Flatten(), nn.ReLU()),                    # a view of it
              nn.Sequential(kept, nn.ReLU()),                            # a user layer's array
              nn.Sequential(nn.Sequential(kept), nn.Tanh())]
    for model in models:
        tracked = model(x)
        with nf.no_grad():
            np.testing.assert_array_equal(model(x), tracked)
    np.testing.assert_array_equal(x, [[-3.0, 4.0]])
    np.testing.assert_array_equal(kept.value, [[-1.0, 2.0]])
    dense = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dense(2, "tanh"), nn.Softmax())
    np.testing.assert_allclose(dense.predict(x), dense(x), rtol=1e-6)


def test_activation_kernels_write_into_out():
    from nnfast import _core
    x = x32(8, 4, 5)
    expected = _core.relu_forward(x)
    y = x.copy()
    assert _core.relu_forward(y, out=y) is not None
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(ValueError, match="out"):
        _core.sigmoid_forward(x, out=np.empty((5, 4), np.float32))
