"""BatchNorm1d / BatchNorm2d / Keras's BatchNormalization: the C++ kernels against the NumPy
reference on drawn shapes and values, the layers against PyTorch (where installed), and the
running statistics saved with the model."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnfast as nf
from nnfast import _core, nn
from nnfast import reference as ref
from conftest import random_array, seeds


@given(seeds, st.integers(1, 5), st.integers(1, 6), st.sampled_from([(), (1,), (5,), (3, 4)]),
       st.booleans(), st.booleans(), st.floats(0, 1))
def test_kernels_equal_the_reference(seed, n, c, spatial, training, affine, momentum):
    x = random_array(seed, (n + 1, c, *spatial), scale=3.0) + 1.0
    gamma = random_array(seed + 1, (c,)) if affine else None
    beta = random_array(seed + 2, (c,)) if affine else None
    stats = [(random_array(seed + 3, (c,)), np.abs(random_array(seed + 4, (c,))) + 0.1)
             for _ in range(2)]
    ours = _core.batchnorm_forward(x, gamma, beta, *stats[0], training, momentum, 1e-5)
    theirs = ref.batchnorm_forward(x, gamma, beta, *stats[1], training, momentum, 1e-5)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats[0][0], stats[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats[0][1], stats[1][1], rtol=1e-5, atol=1e-6)
    g = random_array(seed + 5, x.shape)
    _, mean, invstd = ours
    dgamma = np.ones(c, np.float32)
    got = _core.batchnorm_backward(g, x, gamma, mean, invstd, dgamma, None, training, True,
                                   True, True)
    want = ref.batchnorm_backward(g, x, gamma, mean, invstd, np.ones(c, np.float32), None,
                                  training)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bad_inputs_raise_clearly():
    x = np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _core.batchnorm_forward(x)
    with pytest.raises(ValueError, match="required when not training"):
        _core.batchnorm_forward(np.zeros((2, 3), np.float32), training=False)
    with pytest.raises(ValueError, match="gamma must have shape"):
        _core.batchnorm_forward(np.zeros((2, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="expected input"):
        nn.BatchNorm2d(3)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=2.0)


@pytest.mark.parametrize("make, shape", [
    (lambda m: nn.BatchNorm1d(4, momentum=m), (6, 4)),
    (lambda m: nn.BatchNorm1d(4, momentum=m, affine=False), (6, 4, 3)),
    (lambda m: nn.BatchNorm2d(3, momentum=m), (5, 3, 4, 4)),
    (lambda m: nn.BatchNorm2d(3, momentum=m, track_running_stats=False), (5, 3, 4, 4)),
])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_layers_follow_torch_in_training_and_eval(make, shape, momentum):
    torch = pytest.importorskip("torch")
    ours = make(momentum)
    theirs = getattr(torch.nn, type(ours).__name__)(**ours.get_config())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for step in range(3):
        x = random_array(step, shape, scale=2.0) + step
        g = random_array(10 + step, shape)
        theirs.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.from_numpy(g))
        ours.zero_grad()
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
        if ours.affine:
            np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-4,
                                       atol=1e-4)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-6)
    ours.eval()
    theirs.eval()
    x = random_array(7, shape)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).numpy(), rtol=1e-4,
                                   atol=1e-5)
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.from_numpy(x))
    np.testing.assert_allclose(ours.backward(x), xt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_running_statistics_are_saved_and_keras_spelling_builds(tmp_path):
    nf.seed(0)
    model = nf.Sequential([nn.Input(shape=(6, 6, 2)), nn.Conv2D(3, 3), nn.BatchNormalization(),
                           nn.Flatten(), nn.Dense(4), nn.BatchNormalization()])
    assert "Non-trainable params: 14" in model.summary(print_fn=None)   # 2 x 3 + 2 x 4
    model.compile("sgd", "mse")
    x = random_array(1, (8, 6, 6, 2))
    model.fit(x, random_array(2, (8, 4)), epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "bn.nnf")
    loaded = nf.load(tmp_path / "bn.nnf")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert int(loaded.state_dict()["2.num_batches_tracked"]) == 4
    assert model[2].norm.momentum == pytest.approx(0.01)
