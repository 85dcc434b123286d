"""Classification metrics: accuracy, confusion matrix, per-class precision / recall / F1 and a
report formatted as scikit-learn's ``classification_report``."""
import numpy as np

from .backend import as_host


def labels(y):
    """Class labels from labels (n,), one-hot rows or score matrices (n, C) (argmax)."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class equals the true one."""
    t, p = labels(y_true), labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"accuracy: {t.shape[0]} true labels for {p.shape[0]} predictions")
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """C[i, j] = number of samples of true class i predicted as class j."""
    t, p = labels(y_true), labels(y_pred)
    k = int(max(t.max(), p.max()) + 1) if num_classes is None else int(num_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def precision_recall_f1(y_true, y_pred, num_classes=None):
    """Per-class (precision, recall, f1, support) arrays; 0 where a ratio is undefined."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support


def classification_report(y_true, y_pred, target_names=None, digits=2, num_classes=None):
    """The text scikit-learn prints: a row per class, then accuracy, macro and weighted avg."""
    precision, recall, f1, support = precision_recall_f1(y_true, y_pred, num_classes)
    names = [str(n) for n in (target_names if target_names is not None else range(len(support)))]
    if len(names) != len(support):
        raise ValueError(f"{len(names)} target_names for {len(support)} classes")
    width = max(len("weighted avg"), *(len(n) for n in names), digits)
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    row = "{:>{w}} {:>9.{d}f} {:>9.{d}f} {:>9.{d}f} {:>9}"
    lines = [head, ""]
    lines += [row.format(n, p, r, f, s, w=width, d=digits)
              for n, p, r, f, s in zip(names, precision, recall, f1, support)]
    total = int(support.sum())
    weights = support / total if total else np.zeros_like(precision)
    acc = accuracy(y_true, y_pred)
    lines += ["", f"{'accuracy':>{width}} {'':>9} {'':>9} {acc:>9.{digits}f} {total:>9}"]
    lines.append(row.format("macro avg", precision.mean(), recall.mean(), f1.mean(), total,
                            w=width, d=digits))
    lines.append(row.format("weighted avg", weights @ precision, weights @ recall, weights @ f1,
                            total, w=width, d=digits))
    return "\n".join(lines) + "\n"


def correct_predictions(output, target, threshold):
    """How many rows of ``output`` predict ``target``: argmax for (N, C) outputs with C > 1
    (targets as labels or one-hot rows), ``output > threshold`` for binary outputs."""
    output, target = as_host(output), as_host(target)   # on the host, from any device
    if output.ndim == 2 and output.shape[1] > 1:
        labels = target.argmax(axis=1) if target.ndim == 2 else target
        return int(np.sum(output.argmax(axis=1) == labels))
    predicted = output.reshape(len(output), -1) > threshold
    return int(np.sum(predicted == (target.reshape(len(target), -1) > 0.5)))


class Scores(tuple):
    """What ``evaluate`` returns: the values in order ("loss", then the metrics), as Keras's
    list (``loss, accuracy = model.evaluate(...)``, ``score[1]``), that also reads by name as a
    dict (``scores["accuracy"]``, ``scores.items()``)."""

    def __new__(cls, values):
        scores = super().__new__(cls, values.values())
        scores.names = tuple(values)
        return scores

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return super().__getitem__(self.names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    def keys(self):
        return self.names

    def values(self):
        return tuple(self)

    def items(self):
        return tuple(zip(self.names, self))

    def get(self, key, default=None):
        return self[key] if key in self.names else default

    def __repr__(self):
        return "Scores(" + ", ".join(f"{k}={v!r}" for k, v in self.items()) + ")"
