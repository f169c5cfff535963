import numpy as np
import pytest

from wsss.scoring.metrics import average_precision, confusion_matrix, mean_iou, per_class_scores, pixel_accuracy


def brute_force_iou(truth, prediction, num_classes):
    """chainercv's convention, class by class: truth 255 left out, a predicted 255 is background, every class
    predicted or present has an IoU."""
    ious = {}
    valid = truth != 255
    prediction = np.where(prediction == 255, 0, prediction)
    for c in range(num_classes):
        t, p = (truth == c) & valid, (prediction == c) & valid
        if (t | p).any():
            ious[c] = (t & p).sum() / (t | p).sum()
    return ious


def test_confusion_and_iou_match_brute_force(rng):
    num_classes = 6
    truth = rng.integers(0, num_classes, size=(40, 50)).astype(np.uint8)
    prediction = np.where(rng.random((40, 50)) < 0.6, truth, rng.integers(0, num_classes, (40, 50))).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = 255
    prediction[rng.random(truth.shape) < 0.05] = 255
    truth[truth == 4] = 0  # class 4 absent from the truth but predicted: it scores 0 and counts in the mIoU
    confusion = confusion_matrix(truth, prediction, num_classes)
    expected = brute_force_iou(truth, prediction, num_classes)
    assert expected[4] == 0 and len(expected) == num_classes
    scores = per_class_scores(confusion)
    for c, iou in expected.items():
        assert scores["iou"][c] == pytest.approx(iou)
    assert mean_iou(confusion) == pytest.approx(np.mean(list(expected.values())))
    valid = truth != 255
    assert confusion.sum() == valid.sum()  # a predicted 255 is scored (as background)
    as_background = np.where(prediction == 255, 0, prediction)
    assert pixel_accuracy(confusion) == pytest.approx((truth == as_background)[valid].mean())
    assert scores["tp"][1] + scores["fn"][1] == ((truth == 1) & valid).sum()


def test_absent_class_predicted_counts_as_zero():
    """chainercv/IRN: the mean runs over classes predicted or present, so a false class pulls it down."""
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = 8
    prediction = truth.copy()
    prediction[3, 3] = 3  # a bird, absent from the truth
    confusion = confusion_matrix(truth, prediction, 21)
    iou = per_class_scores(confusion)["iou"]
    assert iou[3] == 0 and iou[8] == 1 and iou[0] == pytest.approx(7 / 8)
    assert mean_iou(confusion) == pytest.approx((1 + 7 / 8 + 0) / 3)
    assert np.isnan(iou[5])  # neither predicted nor present: not in the mean


def test_unlabelled_prediction_counts_as_background():
    truth = np.array([[0, 0], [8, 8]], np.uint8)
    prediction = np.array([[255, 0], [8, 255]], np.uint8)
    confusion = confusion_matrix(truth, prediction, 21)
    assert confusion[0, 0] == 2 and confusion[8, 8] == 1 and confusion[8, 0] == 1
    assert mean_iou(confusion) == pytest.approx((2 / 3 + 1 / 2) / 2)


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
