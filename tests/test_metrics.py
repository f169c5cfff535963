import numpy as np
import pytest

from wsss.metrics import average_precision, confusion_matrix, mean_iou, per_class_scores, pixel_accuracy


def brute_force_iou(truth, prediction, num_classes):
    ious = {}
    valid = (truth != 255) & (prediction != 255)
    for c in range(num_classes):
        t, p = (truth == c) & valid, (prediction == c) & valid
        if t.any():
            ious[c] = (t & p).sum() / (t | p).sum()
    return ious


def test_confusion_and_iou_match_brute_force(rng):
    num_classes = 6
    truth = rng.integers(0, num_classes, size=(40, 50)).astype(np.uint8)
    prediction = np.where(rng.random((40, 50)) < 0.6, truth, rng.integers(0, num_classes, (40, 50))).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = 255
    prediction[rng.random(truth.shape) < 0.05] = 255
    truth[truth == 4] = 0  # class 4 absent from the truth: must not count in mIoU
    confusion = confusion_matrix(truth, prediction, num_classes)
    expected = brute_force_iou(truth, prediction, num_classes)
    scores = per_class_scores(confusion)
    for c, iou in expected.items():
        assert scores["iou"][c] == pytest.approx(iou)
    assert mean_iou(confusion) == pytest.approx(np.mean(list(expected.values())))
    valid = (truth != 255) & (prediction != 255)
    assert confusion.sum() == valid.sum()
    assert pixel_accuracy(confusion) == pytest.approx((truth == prediction)[valid].mean())
    assert scores["tp"][1] + scores["fn"][1] == ((truth == 1) & valid).sum()


def test_perfect_prediction_and_shape_mismatch():
    truth = np.array([[0, 1], [2, 255]], np.uint8)
    assert mean_iou(confusion_matrix(truth, truth, 3)) == 1.0
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(truth, truth[:1], 3)
    with pytest.raises(ValueError, match="class id"):
        confusion_matrix(truth, np.full_like(truth, 7), 3)


def test_average_precision():
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    perfect = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.7], [0.1, 0.2]])
    assert average_precision(perfect, targets) == 1.0
    # class 0 ranked: positive, negative, positive -> AP = (1 + 2/3) / 2
    scores = np.array([[0.9, 0.5], [0.8, 0.5], [0.7, 0.5], [0.1, 0.5]])
    scores[:, 1] = [0.1, 0.9, 0.8, 0.0]
    targets2 = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert average_precision(scores, targets2) == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
