"""Keras spellings: Input, Conv2D / MaxPooling2D / AveragePooling2D channels-last (and
channels-first), padding="same", input_shape= on the first layer, summary before any data."""
import numpy as np
import pytest

import nnfast as nf
from nnfast import nn
from nnfast import reference as ref
from conftest import random_array
from test_fusion import compare_fused_with_one_by_one


def keras_convnet():
    """Keras's classic MNIST convnet, as its example writes it."""
    return nf.Sequential([
        nn.Input(shape=(28, 28, 1)),
        nn.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        nn.MaxPooling2D(pool_size=(2, 2)),
        nn.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        nn.MaxPooling2D(pool_size=(2, 2)),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Dense(10, activation="softmax"),
    ])


def test_summary_before_any_data_shows_keras_shapes_and_counts():
    table = " ".join(keras_convnet().summary(print_fn=None).split())
    for row in ["conv2d (Conv2D) (None, 26, 26, 32) 320",
                "max_pooling2d (MaxPooling2D) (None, 13, 13, 32)",
                "conv2d_1 (Conv2D) (None, 11, 11, 64) 18,496",
                "(None, 5, 5, 64)", "(None, 1600)", "16,010", "Total params: 34,826"]:
        assert row in table
    dense = nf.Sequential([nn.Dense(64, input_shape=(784,)), nn.Dense(10)])
    assert "Total params: 50,890" in dense.summary(print_fn=None)


def test_channels_last_layers_run_the_nchw_layers_with_one_transpose_each_way():
    nf.seed(0)
    model = keras_convnet()
    model(np.zeros((1, 28, 28, 1), np.float32))
    steps = [s.name for s in model.plan().steps]
    assert steps == ["Input", "ToChannelsFirst", "Conv2d+ReLU+MaxPool2d", "Conv2d+ReLU+MaxPool2d",
                     "ToChannelsLast", "Flatten", "Dropout", "Linear", "Softmax"]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_keras_equals_pytorch_layout_conv(data_format):
    nf.seed(1)
    layer = nn.Conv2D(4, 3, activation="tanh", data_format=data_format)
    x_nchw = random_array(2, (2, 3, 7, 6))
    x = x_nchw.transpose(0, 2, 3, 1).copy() if data_format == "channels_last" else x_nchw
    y = layer(x)
    w, b = layer.conv.weight.data, layer.conv.bias.data
    expected = np.tanh(ref.conv2d_forward(x_nchw, w, b))
    if data_format == "channels_last":
        expected = expected.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert list(layer.state_dict()) == ["weight", "bias"]
    compare_fused_with_one_by_one([layer, nn.MaxPooling2D(2, data_format=data_format)], None,
                                  x=x)


def test_keras_same_padding_puts_the_odd_row_at_the_bottom_and_right():
    nf.seed(2)
    layer = nn.Conv2D(2, 3, strides=2, padding="same", data_format="channels_first")
    x = random_array(3, (1, 1, 8, 8))
    y = layer(x)
    assert y.shape == (1, 2, 4, 4)                    # ceil(8 / 2)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    np.testing.assert_allclose(y, ref.conv2d_forward(padded, layer.conv.weight.data,
                                                     layer.conv.bias.data, 2), rtol=1e-5,
                               atol=1e-6)
    pool = nn.MaxPooling2D(2, padding="same")
    z = -np.abs(random_array(4, (1, 5, 5, 2))) - 1   # all negative: padding must never win
    out = pool(z)
    assert out.shape == (1, 3, 3, 2)
    np.testing.assert_array_equal(out[0, 2, 2], z[0, 4, 4])
    compare_fused_with_one_by_one([nn.Conv2D(3, 3, padding="same", activation="relu",
                                             input_shape=(5, 5, 2)), pool], None, x=-z)


def test_pytorch_conv2d_padding_same():
    nf.seed(3)
    same = nn.Conv2d(2, 3, (3, 5), padding="same")
    assert same.padding == (1, 2)
    assert nn.Conv2d(2, 3, 3, padding="valid").padding == (0, 0)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="even kernel"):
        nn.Conv2d(2, 3, 4, padding="same")


def test_bad_keras_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="data_format"):
        nn.Conv2D(4, 3, data_format="nhwc")
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        nn.MaxPooling2D(2, padding="full")
    with pytest.raises(ValueError, match="Input expected samples of shape"):
        keras_convnet()(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="input_shape"):
        nn.Dense(3, input_shape=(4, 4))


def test_a_keras_model_saves_and_loads(tmp_path):
    nf.seed(4)
    model = keras_convnet()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    x = random_array(5, (3, 28, 28, 1))
    model.save(tmp_path / "k.nnf")
    loaded = nf.load(tmp_path / "k.nnf")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_the_keras_convnet_learns_mnist(mnist):
    (x, y), (x_test, y_test) = mnist
    x = x[:3000, :, :, None].astype(np.float32) / 255
    nf.seed(0)
    model = keras_convnet()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, np.eye(10, dtype=np.float32)[y[:3000]], batch_size=128, epochs=2,
              validation_split=0.1, verbose=0)
    accuracy = model.evaluate(x_test[:1000, :, :, None] / 255.0,
                              np.eye(10, dtype=np.float32)[y_test[:1000]])["accuracy"]
    assert accuracy > 0.75                 # 10 % by chance; ~99 % after a full 3 epochs
