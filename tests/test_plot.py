"""nnfast.plot: each figure shows the data it was given, saves a PNG and says what it cannot draw."""
import sys

import numpy as np
import pytest

import nnfast as nf

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def test_history_panels_hold_the_recorded_curves(tmp_path):
    logs = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.9],
            "val_loss": [1.1, 0.6, 0.4], "val_accuracy": [0.4, 0.6, 0.8],
            "learning_rate": [0.1, 0.1, 0.01]}
    h = nf.History()
    h.history.update(logs)
    path = tmp_path / "curves.png"
    fig = nf.plot.history(h, path)
    assert path.read_bytes()[:8] == PNG
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax, name in zip(fig.axes, ["loss", "accuracy"]):
        train, val = ax.get_lines()
        np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(train.get_ydata(), logs[name])
        np.testing.assert_array_equal(val.get_ydata(), logs["val_" + name])
    fig = nf.plot.history(logs, names=["learning_rate"])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1


def test_history_of_a_fit_and_its_errors():
    nf.seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nf.Sequential(nf.nn.Linear(4, 2))
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    fig = nf.plot.history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), history.history["loss"])
    with pytest.raises(ValueError, match="no record of"):
        nf.plot.history(history, names=["val_loss_typo"])
    with pytest.raises(ValueError, match="nothing recorded"):
        nf.plot.history(nf.History())


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_shows_the_counts(tmp_path, normalize):
    y_true = np.array([0, 0, 1, 2, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 2, 0, 2]]           # predictions as one-hot scores
    fig = nf.plot.confusion_matrix(y_true, scores, tmp_path / "cm.png", normalize=normalize,
                                   class_names=["zero", "one", "two"])
    counts = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    expected = counts / counts.sum(axis=1, keepdims=True) if normalize else counts
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), expected)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 9 and texts[6] == ("0.33" if normalize else "1")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["zero", "one", "two"]
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        nf.plot.confusion_matrix(y_true, scores, class_names=["a", "b"])


@pytest.mark.parametrize("layout", ["flat", "hw", "nchw", "nhwc"])
def test_images_grid_titles_and_layouts(layout):
    pictures = np.random.default_rng(1).random((5, 4, 4)).astype(np.float32)
    x = {"flat": pictures.reshape(5, 16), "hw": pictures, "nchw": pictures[:, None],
         "nhwc": pictures[..., None]}[layout]
    y_true, y_pred = np.array([0, 1, 2, 3, 4]), np.array([0, 1, 9, 3, 4])
    fig = nf.plot.images(x, y_true, y_pred, ncols=3)
    assert len(fig.axes) == 6                               # 2 rows of 3, the last one empty
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 5
    for ax, picture in zip(shown, pictures):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), picture)
    assert [ax.get_title() for ax in shown] == ["0 / 0", "1 / 1", "2 / 9", "3 / 3", "4 / 4"]
    assert [ax.title.get_color() for ax in shown].count("red") == 1
    assert shown[2].title.get_color() == "red"


def test_images_errors():
    with pytest.raises(ValueError, match="not square"):
        nf.plot.images(np.zeros((2, 15)))
    with pytest.raises(ValueError, match="cannot read images of shape"):
        nf.plot.images(np.zeros((2, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="y_true has 1 labels for 2 images"):
        nf.plot.images(np.zeros((2, 16)), y_true=[1])
    with pytest.raises(ValueError, match="no images"):
        nf.plot.images(np.zeros((0, 16)))


def test_embedding_one_scatter_per_class(tmp_path):
    rng = np.random.default_rng(2)
    points = rng.normal(size=(30, 2))
    labels = rng.integers(0, 3, 30)
    fig = nf.plot.embedding(points, labels, tmp_path / "e.png", class_names="abc", title="t")
    collections = fig.axes[0].collections
    assert len(collections) == 3
    for c, collection in enumerate(collections):
        np.testing.assert_allclose(collection.get_offsets(), points[labels == c])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        nf.plot.embedding(rng.normal(size=(30, 3)), labels)
    with pytest.raises(ValueError, match="29 labels for 30 points"):
        nf.plot.embedding(points, labels[:29])


def test_without_matplotlib_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        nf.plot.embedding(np.zeros((2, 2)), [0, 1])
