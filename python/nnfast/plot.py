"""Plots of training and results, drawn with matplotlib (an optional dependency:
`pip install matplotlib` or `pip install "nnfast[plot]"`).

Each function draws one matplotlib Figure, saves it as a PNG when given a path, and returns it
(Jupyter shows a returned figure). Figures are built without pyplot, so plotting from a script,
a thread or a machine without a display needs no backend set-up and leaves no global state.

    history(h, path)                       training curves of a History (loss, metrics, val_*)
    confusion_matrix(y_true, y_pred, path) counts of true against predicted class
    images(x, y_true, y_pred, path)        a grid of images titled with their labels
    embedding(points, labels, path)        a 2-D scatter (PCA, t-SNE of a hidden layer) by class
"""
import numpy as np

from . import metrics
from .callbacks import History


def _figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError('nnfast.plot needs matplotlib: pip install matplotlib '
                          '(or pip install "nnfast[plot]")') from e
    return Figure(figsize=figsize, layout="constrained")


def _finish(fig, path, dpi=100):
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def _class_names(class_names, num_classes):
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    if len(class_names) < num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    return [str(name) for name in class_names]


def history(h, path=None, names=None):
    """Training curves: one panel per quantity (loss first, then each metric), the training
    value against the epoch and, where recorded, its `val_` counterpart.

    h: a History (what fit returns) or its `.history` dict of lists.
    names: the quantities to plot (default: every recorded name without the val_ prefix, except
    learning_rate)."""
    logs = h.history if isinstance(h, History) else dict(h)
    if not logs or not any(len(v) for v in logs.values()):
        raise ValueError("history: nothing recorded (fit ran no epoch)")
    names = names or [k for k in logs if not k.startswith("val_") and k != "learning_rate"]
    missing = [n for n in names if n not in logs]
    if missing:
        raise ValueError(f"history: no record of {missing}; recorded: {sorted(logs)}")
    fig = _figure((4.5 * len(names), 3.5))
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(names))), names):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker=".", label="training")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker=".", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    return _finish(fig, path)


def confusion_matrix(y_true, y_pred, path=None, class_names=None, normalize=False):
    """A heat map of the confusion matrix: row = true class, column = predicted class.

    y_true: integer labels (n,) or one-hot (n, k); y_pred: labels, one-hot or scores (n, k).
    normalize: True shows each row as fractions of its true class."""
    counts = metrics.confusion_matrix(y_true, y_pred)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    k = counts.shape[0]
    names = _class_names(class_names, k)
    fig = _figure((1.0 + 0.5 * k, 0.8 + 0.5 * k))
    ax = fig.subplots()
    cells = ax.imshow(shown, cmap="Blues")
    fig.colorbar(cells, ax=ax)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticklabels(names)
    high = shown.max() / 2
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}" if normalize else str(counts[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > high else "black")
    return _finish(fig, path)


def _as_images(x):
    """(n, h, w) or (n, h, w, 3) from (n, h*w) square, (n, h, w), (n, 1|3, h, w) or (n, h, w, 1|3)."""
    x = np.asarray(x)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"images: rows of {x.shape[1]} values are not square images")
        return x.reshape(-1, side, side)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.ndim == 4 and x.shape[3] == 1:
        return x[..., 0]
    if x.ndim == 3 or (x.ndim == 4 and x.shape[3] == 3):
        return x
    raise ValueError(f"images: cannot read images of shape {x.shape}")


def images(x, y_true=None, y_pred=None, path=None, ncols=8, class_names=None, max_images=64):
    """A grid of the first `max_images` images, each titled "true / predicted" (or the one label
    given), a wrong prediction in red.

    x: (n, 784)-like flat squares, (n, h, w), NCHW or NHWC with 1 or 3 channels.
    y_true, y_pred: integer labels or one-hot/scores (n, k), either may be None."""
    pictures = _as_images(x)[:max_images]
    n = len(pictures)
    if n == 0:
        raise ValueError("images: no images given")
    true = None if y_true is None else metrics.labels(y_true)[:n]
    pred = None if y_pred is None else metrics.labels(y_pred)[:n]
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels is not None and len(labels) < n:
            raise ValueError(f"images: {name} has {len(labels)} labels for {n} images")
    labelled = [lab for lab in (true, pred) if lab is not None]
    names = _class_names(class_names, int(max(lab.max() for lab in labelled)) + 1 if labelled else 0)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = _figure((1.3 * ncols, 1.5 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(pictures[i], cmap="gray" if pictures[i].ndim == 2 else None)
        title = " / ".join(names[lab[i]] for lab in labelled)
        wrong = true is not None and pred is not None and true[i] != pred[i]
        ax.set_title(title, fontsize=8, color="red" if wrong else "black")
    return _finish(fig, path)


def embedding(points, labels, path=None, class_names=None, title=None):
    """A 2-D scatter of `points` (n, 2), coloured by class, with a legend: a PCA or t-SNE of a
    hidden layer's outputs, say.

    labels: integer labels (n,) or one-hot (n, k)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"embedding: points must have shape (n, 2), got {points.shape}")
    labels = metrics.labels(labels)
    if len(labels) != len(points):
        raise ValueError(f"embedding: {len(labels)} labels for {len(points)} points")
    classes = np.unique(labels)
    names = _class_names(class_names, int(classes.max()) + 1)
    fig = _figure((6, 5))
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(classes))]
    for colour, c in zip(colours, classes):
        chosen = labels == c
        ax.scatter(points[chosen, 0], points[chosen, 1], s=3, color=colour, label=names[c])
    ax.legend(markerscale=4, fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return _finish(fig, path)
