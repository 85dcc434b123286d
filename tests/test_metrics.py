"""nnfast.metrics against hand-computed values."""
import numpy as np
import pytest

from nnfast import metrics

Y_TRUE = np.array([0, 0, 1, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0, 2])


def test_accuracy_from_labels_and_scores():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    scores = np.eye(3)[Y_PRED] * 0.9
    assert metrics.accuracy(np.eye(3)[Y_TRUE], scores) == pytest.approx(4 / 6)


def test_confusion_matrix():
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED),
                                  [[1, 1, 0], [1, 2, 0], [0, 0, 1]])


def test_precision_recall_f1():
    p, r, f, s = metrics.precision_recall_f1(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(p, [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(r, [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(f, [0.5, 2 / 3, 1.0])
    assert s.tolist() == [2, 3, 1]


def test_classification_report_layout():
    report = metrics.classification_report(Y_TRUE, Y_PRED, target_names=["a", "b", "c"])
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["a", "0.50", "0.50", "0.50", "2"]
    assert lines[4].split() == ["c", "1.00", "1.00", "1.00", "1"]
    assert lines[6].split() == ["accuracy", "0.67", "6"]
    assert lines[7].split() == ["macro", "avg", "0.72", "0.72", "0.72", "6"]
    assert lines[8].split() == ["weighted", "avg", "0.67", "0.67", "0.67", "6"]
