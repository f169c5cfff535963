"""classifier.head_init: imagenet: the CAM head from the weights file's ImageNet classifier (nets.imagenet_head)."""

import pytest
import torch
from timm.data import ImageNetInfo

from wsss.data.voc import VOC_CLASSES
from wsss.nets.backbones import imagenet_weights
from wsss.nets.imagenet_head import IMAGENET_CLASSES, init_head_from_imagenet
from wsss.nets.models import Classifier
from wsss.nets.transforms import resize_image, to_tensor

# one index per class with the word its ImageNet description starts with (the table's comments)
SPOT_CHECKS = {
    404: "airliner", 895: "warplane", 671: "mountain bike", 7: "cock", 146: "albatross", 100: "black swan",
    472: "canoe", 907: "wine bottle", 779: "school bus", 817: "sports car", 281: "tabby", 559: "folding chair",
    345: "ox", 532: "dining table", 151: "Chihuahua", 268: "Mexican hairless", 339: "sorrel", 670: "motor scooter",
    738: "pot", 348: "ram", 831: "studio couch", 820: "steam locomotive", 851: "television",
}  # fmt: skip


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory):
    return imagenet_weights("efficientnet_lite0", "IMAGENET1K_V1", tmp_path_factory.mktemp("w") / "lite0.pth")


def test_table_names_voc_classes_and_distinct_imagenet_classes():
    assert set(IMAGENET_CLASSES) <= set(VOC_CLASSES[1:]) and "person" not in IMAGENET_CLASSES
    indices = [i for rows in IMAGENET_CLASSES.values() for i in rows]
    assert len(indices) == len(set(indices)) and all(0 <= i < 1000 for i in indices)
    info = ImageNetInfo()
    for index, word in SPOT_CHECKS.items():
        assert info.index_to_description(index).startswith(word), (index, info.index_to_description(index))
    assert all(any(i in rows for i in SPOT_CHECKS) for rows in IMAGENET_CLASSES.values())


def test_head_rows_are_the_mean_of_imagenet_rows_and_person_stays_random(lite0_weights):
    torch.manual_seed(0)
    model = Classifier("efficientnet_lite0", 20, 16, lite0_weights)
    person = VOC_CLASSES.index("person") - 1
    before = model.classifier.weight[person].clone()
    done = init_head_from_imagenet(model.classifier, lite0_weights, list(VOC_CLASSES[1:]))
    assert len(done) == 19 and "person" not in done
    imagenet = torch.load(lite0_weights, weights_only=True)["classifier.weight"]
    cat = VOC_CLASSES.index("cat") - 1
    torch.testing.assert_close(model.classifier.weight[cat, :, 0, 0], imagenet[list(IMAGENET_CLASSES["cat"])].mean(0))
    torch.testing.assert_close(model.classifier.weight[person], before)


def test_imagenet_head_finds_the_cat_before_any_training(lite0_weights):
    """skimage's photo of Chelsea: the VOC head started from ImageNet's classifier scores cat first untrained."""
    data = pytest.importorskip("skimage.data")
    model = Classifier("efficientnet_lite0", 20, 16, lite0_weights).eval()
    init_head_from_imagenet(model.classifier, lite0_weights, list(VOC_CLASSES[1:]))
    with torch.no_grad():
        logits = model(to_tensor(resize_image(data.chelsea(), 224, 320))[None])[0]
    assert VOC_CLASSES[1 + int(logits.argmax())] == "cat", logits


def test_weights_without_a_classifier_are_refused(tmp_path):
    path = tmp_path / "headless.pth"
    torch.save({"conv_stem.weight": torch.zeros(1)}, path)
    head = torch.nn.Conv2d(1280, 20, 1, bias=False)
    with pytest.raises(ValueError, match="head_init: random"):
        init_head_from_imagenet(head, path, list(VOC_CLASSES[1:]))
