"""Each binding turns a bad input into a clear Python exception that names the argument."""
import pickle

import numpy as np
import pytest

core = pytest.importorskip("nnfast._core")


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="linear_forward: x must have dtype float32, got float64"):
        core.linear_forward(np.ones((2, 3)), f32(3, 4))
    with pytest.raises(TypeError, match="labels must have dtype int64"):
        core.cross_entropy_forward(f32(2, 3), np.array([0, 1], dtype=np.int32))
    with pytest.raises(TypeError, match="x must be a numpy.float32 array, got list"):
        core.relu_forward([1.0, 2.0])
    swapped = np.ones(3, dtype=np.float32).astype(np.dtype(np.float32).newbyteorder())
    with pytest.raises(TypeError, match="x must have dtype float32"):   # float32, other byte order
        core.relu_forward(swapped)
    explicit = np.ones(3, dtype=np.dtype(np.float32).newbyteorder("="))
    np.testing.assert_array_equal(core.relu_forward(explicit), explicit)   # native, spelt out
    # an unpickled array carries its own float32 dtype object, not NumPy's canonical one (the
    # check once compared the objects and refused it: "must have dtype float32, got float32")
    unpickled = pickle.loads(pickle.dumps(np.ones(3, dtype=np.float32)))
    np.testing.assert_array_equal(core.relu_forward(unpickled), unpickled)


def test_wrong_rank_and_shape_name_the_argument():
    with pytest.raises(ValueError, match=r"x must have 4 dimensions \(N, C, H, W\), got shape \(28, 28\)"):
        core.conv2d_forward(f32(28, 28), f32(4, 1, 3, 3))
    with pytest.raises(ValueError, match=r"x must have 784 features .* got shape \(32, 785\)"):
        core.linear_forward(f32(32, 785), f32(784, 10))
    with pytest.raises(ValueError, match=r"b must have shape \(10,\), got \(9,\)"):
        core.linear_forward(f32(2, 784), f32(784, 10), f32(9))
    with pytest.raises(ValueError, match="x has 3 channels but w"):
        core.conv2d_forward(f32(1, 3, 8, 8), f32(4, 1, 3, 3))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 4\), got \(2, 5\)"):
        core.linear_backward(f32(2, 5), f32(2, 3), f32(3, 4))
    for count in (-2, 7):
        with pytest.raises(ValueError, match=f"x_nonzeros must be -1 .* x's 6 entries, got {count}"):
            core.linear_backward(f32(2, 4), f32(2, 3), f32(3, 4), x_nonzeros=count)
    with pytest.raises(ValueError, match="target must have shape"):
        core.mse_forward(f32(2, 3), f32(3, 2))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        core.sgemm(f32(2, 3), f32(4, 5))


def test_non_contiguous_is_rejected():
    x = np.ones((4, 6), dtype=np.float32)[:, ::2]
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        core.relu_forward(x)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="x must not be empty"):
        core.linear_forward(f32(0, 3), f32(3, 4))
    with pytest.raises(ValueError, match="logits must not be empty"):
        core.cross_entropy_forward(f32(0, 3), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="input must not be empty"):
        core.maxpool2d_forward(f32(0, 1, 4, 4), 2)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels\[1\] = 3 is out of range for 3 classes"):
        core.cross_entropy_forward(f32(2, 3), np.array([0, 3], dtype=np.int64))
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        core.nll_forward(f32(2, 3), np.array([-1, 0], dtype=np.int64))
    with pytest.raises(ValueError, match="labels must have shape"):
        core.cross_entropy_forward(f32(2, 3), np.array([0], dtype=np.int64))


def test_read_only_outputs_are_rejected():
    p = f32(5)
    p.setflags(write=False)
    with pytest.raises(ValueError, match="param must be writeable"):
        core.sgd_step(p, f32(5), lr=0.1)
    dwt = f32(3, 4)
    dwt.setflags(write=False)
    with pytest.raises(ValueError, match="dwt must be writeable"):
        core.linear_backward(f32(2, 4), f32(2, 3), f32(3, 4), dwt=dwt)


def test_bad_geometry():
    with pytest.raises(ValueError, match="larger than the padded input"):
        core.conv2d_forward(f32(1, 1, 4, 4), f32(1, 1, 5, 5))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        core.conv2d_forward(f32(1, 1, 4, 4), f32(1, 1, 3, 3), stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        core.conv2d_forward(f32(1, 1, 4, 4), f32(1, 1, 3, 3), padding=-1)
    with pytest.raises(ValueError, match="padding must be between 0 and half the kernel size"):
        core.maxpool2d_forward(f32(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        core.avgpool2d_forward(f32(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="argmax"):
        core.maxpool2d_backward(f32(1, 1, 2, 2), np.full((1, 1, 2, 2), 99, np.int32),
                                (1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match=r"argmax\[3\] = -1 is outside"):
        bad = np.zeros((1, 2, 2, 2), np.int32)
        bad.reshape(-1)[3] = -1
        core.conv2d_relu_maxpool_backward(f32(1, 2, 2, 2), f32(1, 2, 2, 2), bad, f32(1, 1, 6, 6),
                                          f32(2, 1, 3, 3), pool_kernel=2)
    with pytest.raises(ValueError, match="conv2d_relu_maxpool_backward: g must have shape"):
        core.conv2d_relu_maxpool_backward(f32(1, 2, 3, 2), f32(1, 2, 2, 2),
                                          np.zeros((1, 2, 2, 2), np.int32), f32(1, 1, 6, 6),
                                          f32(2, 1, 3, 3), pool_kernel=2)


def test_dropout_probability_range():
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            core.dropout_forward(f32(3), p, 0)


def test_optimizer_arguments():
    with pytest.raises(ValueError, match="momentum_buf is required"):
        core.sgd_step(f32(3), f32(3), None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        core.sgd_step(f32(3), f32(3), f32(3), lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="grad must have shape"):
        core.adam_step(f32(3), f32(4), f32(3), f32(3))
    with pytest.raises(ValueError, match="step must be >= 1"):
        core.adam_step(f32(3), f32(3), f32(3), f32(3), step=0)


def test_huge_sizes_are_refused_before_allocating():
    # A 1x1 image padded by 40,000 would give an 80,001 x 80,001 output: too large for the kernels.
    with pytest.raises(ValueError, match="too large"):
        core.conv2d_forward(f32(1, 1, 1, 1), f32(1, 1, 1, 1), padding=40000)


def test_sgd_step_over_lists_checks_each_array():
    params, grads = [f32(3), f32(2, 2)], [f32(3), f32(2, 2)]
    with pytest.raises(TypeError, match="grad must be a list"):
        core.sgd_step(params, f32(3), lr=0.1)
    with pytest.raises(ValueError, match="grad has 1 arrays for 2 parameters"):
        core.sgd_step(params, grads[:1], lr=0.1)
    with pytest.raises(ValueError, match="momentum_buf is required"):
        core.sgd_step(params, grads, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        core.sgd_step(params, grads[::-1], lr=0.1)
    before = [p.copy() for p in params]
    core.sgd_step(params, grads, lr=0.5)
    for p, p0, g in zip(params, before, grads):
        np.testing.assert_allclose(p, p0 - 0.5 * g, rtol=1e-6)
