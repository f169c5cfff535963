"""ReCAM against its formulation written out in tests/recam_reference.py, on the same weights: one training
step (loss, param groups, SGD with poly decay) and the re-activated maps, with random weights of the real
architecture (ResNet-50 at output stride 16, as ReCAM's and IRN's CAM network) on real photos from the coco340
development set (VOC layout). The project stores maps as float16, so labels may differ at near-tied pixels."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from tests import recam_reference as ref
from tests.workflow_helpers import REPO
from wsss.nets.models import Classifier
from wsss.seeds.cam import DEFAULT_SETTINGS, image_and_grid_cams
from wsss.training.loop import TrainingJob, fit
from wsss.training.recam import ReCAMNet, prepare

VOC = REPO.parent / "shared" / "data" / "coco340-voc" / "VOC2012"
pytestmark = pytest.mark.skipif(not VOC.is_dir(), reason=f"the coco340 photos are not at {VOC}")
SCALES = [1.0, 0.5, 1.5, 2.0]
EVAL_THRESHOLD = 0.21  # ReCAM's cam_eval_thres (run_sample.py)
SIDE = 96  # photos resized to a long side of 96 px: ResNet-50 on a CPU


def photos(count=3):
    """(image uint8 HxWx3 at long side SIDE, foreground class ids) of the first photos of train with objects."""
    found = []
    for image_id in (VOC / "ImageSets/Segmentation/train.txt").read_text().split():
        mask = np.asarray(Image.open(VOC / "SegmentationClass" / f"{image_id}.png"))
        classes = sorted(int(c) for c in np.unique(mask) if 0 < c < 255)
        if classes:
            image = Image.open(VOC / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
            scale = SIDE / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
            found.append((np.asarray(image), classes))
        if len(found) == count:
            return found
    return found


@pytest.fixture(scope="module")
def networks():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    classifier = Classifier("resnet50", 20, 16).eval()
    torch.manual_seed(1)
    net = ReCAMNet(prepare(classifier), loss_weight=1.0)
    return net


def crops(images, size=64):
    """A batch of the photos' top-left size x size crops, normalised as ReCAM's loader (ImageNet mean, std)."""
    return torch.stack([torch.from_numpy(ref.irn.normalised(image[:size, :size])) for image, _ in images])


def test_a_training_step_is_recams(networks, tmp_path):
    net = copy.deepcopy(networks)
    images = photos(3)
    x = crops(images)
    y = torch.zeros(len(images), 20)
    for row, (_, classes) in enumerate(images):
        y[row, [c - 1 for c in classes]] = 1
    model = copy.deepcopy(net.classifier)
    predictor = net.predictor.weight.detach().clone()[:, :, None, None].requires_grad_()
    reference = ref.train_step(model, predictor, x, y, 1.0, lr=0.05, weight_decay=1e-4, momentum=1e-4, max_step=1)

    with torch.no_grad():
        outputs = net(x)
    total, cls, ce = (v.item() for v in net.loss_parts(outputs, y))
    assert total == pytest.approx(reference[0], rel=1e-5) and ce == pytest.approx(reference[2], rel=1e-5)
    assert cls == pytest.approx(reference[1], rel=1e-5)
    settings = dict(epochs=1, lr=0.05, optimizer="sgd", momentum=1e-4, weight_decay=1e-4, poly_power=0.9)
    job = TrainingJob(tmp_path / "m.pt", tmp_path / "h.parquet", tmp_path / "c.pt")
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
    (record,) = fit(net, loader, net.loss, net.param_groups(0.1), settings, job, "recam")
    assert record["loss"] == pytest.approx(reference[0], rel=1e-5)

    ours = dict(net.classifier.named_parameters())
    theirs = dict(model.named_parameters())
    moved = max((ours[n] - networks.classifier.state_dict()[n]).abs().max().item() for n in ours)
    diff = max((ours[n] - theirs[n]).abs().max().item() for n in ours)
    predictor_diff = (net.predictor.weight - predictor[:, :, 0, 0]).abs().max().item()
    print(
        f"\nReCAM step: loss {total:.6f} vs {reference[0]:.6f}; max |param diff| {diff:.2e} "
        f"(largest update {moved:.2e}), predictor {predictor_diff:.2e}"
    )
    assert moved > 1e-3  # the step moved the weights
    assert diff < 1e-5 and predictor_diff < 1e-6
    stem = dict(networks.classifier.named_parameters())
    assert all(torch.equal(ours[n], stem[n]) for n in ours if n.startswith("features.stem."))


def test_the_maps_are_make_recams(networks):
    net = copy.deepcopy(networks)
    with torch.no_grad():  # a trained-looking predictor: positive weights around 1
        net.predictor.weight.uniform_(0.0, 2.0)
    weight = net.predictor.weight.detach().clone()[:, :, None, None]
    unfolded = copy.deepcopy(net.classifier)
    folded = net.folded().eval()
    settings = {**DEFAULT_SETTINGS, "scales": SCALES}
    agreements, diffs, structured = [], [], []
    for image, classes in photos(3):
        cams, grid = image_and_grid_cams(folded, image, classes, settings, "cpu")
        high_res, strided = ref.make_recam(unfolded, weight, image, classes, SCALES)
        diffs += [np.abs(cams.astype(np.float32) - high_res).max(), np.abs(grid.astype(np.float32) - strided).max()]
        ours = np.concatenate([np.full((1, *cams.shape[1:]), EVAL_THRESHOLD), cams.astype(np.float32)]).argmax(0)
        theirs = np.concatenate([np.full((1, *high_res.shape[1:]), EVAL_THRESHOLD), high_res]).argmax(0)
        agreements.append((ours == theirs).mean())
        structured.append(len(np.unique(theirs)) > 1)
    print(
        f"\nReCAM maps: max |diff| {max(diffs):.2e}; label agreement (bg at {EVAL_THRESHOLD}) "
        f"{min(agreements):.4f} (worst image); images with structure {sum(structured)}/{len(structured)}"
    )
    assert sum(structured) >= 2  # labels with structure, not background everywhere
    assert max(diffs) <= 2.5e-4
    assert min(agreements) >= 0.995
