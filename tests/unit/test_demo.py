import hashlib

import numpy as np

from tests.helpers import DEMO_CLASSES
from wsss.data.demo import make_demo_dataset
from wsss.data.voc import IGNORE, VOC_CLASSES, read_image, read_mask


def _digest(root):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files(tmp_path):
    kwargs = dict(
        class_names=["cat", "dog"],
        num_train=4,
        num_val=2,
        size_range=(40, 50),
        max_objects=2,
        background_only_fraction=0.0,
        body_colour_prob=0.5,
        seed=11,
    )
    make_demo_dataset(tmp_path / "a", **kwargs)
    make_demo_dataset(tmp_path / "b", **kwargs)
    make_demo_dataset(tmp_path / "c", **{**kwargs, "seed": 12})
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_voc_layout_and_classes(demo_data):
    train, val = demo_data.split_ids("train"), demo_data.split_ids("val")
    assert len(train) == 24 and len(val) == 8 and not set(train) & set(val)
    allowed = {0, IGNORE} | {VOC_CLASSES.index(c) for c in DEMO_CLASSES}
    sizes, label_counts = set(), []
    for image_id in train + val:
        image = read_image(demo_data.image_path(image_id))
        mask = read_mask(demo_data.mask_path(image_id), len(VOC_CLASSES))
        assert image.shape[:2] == mask.shape
        assert set(np.unique(mask)) <= allowed
        sizes.add(image.shape[:2])
        label_counts.append(len(set(np.unique(mask)) - {0, IGNORE}))
    assert len(sizes) > 5  # varied sizes
    assert max(label_counts) >= 2  # multi-label images exist
    assert min(label_counts) == 0  # background-only images exist at this fraction


def test_objects_carry_a_thin_ignore_band(demo_data):
    for image_id in demo_data.split_ids("train"):
        mask = read_mask(demo_data.mask_path(image_id), len(VOC_CLASSES))
        objects = (mask != 0) & (mask != IGNORE)
        if objects.any():
            band = mask == IGNORE
            assert band.any()
            assert band.sum() < objects.sum()  # thin: fewer band pixels than object pixels
            return
    raise AssertionError("no image with objects")


def test_background_is_textured_and_parts_are_small(demo_data):
    """The part/body design: plain bodies, a small saturated part, a textured background."""
    image_id = next(
        i
        for i in demo_data.split_ids("train")
        if len(set(np.unique(read_mask(demo_data.mask_path(i), 21))) - {0, 255}) == 1
    )
    image = read_image(demo_data.image_path(image_id)).astype(float)
    mask = read_mask(demo_data.mask_path(image_id), 21)
    # Plain body vs textured background: median colour change between horizontal neighbours of one region.
    step = np.abs(np.diff(image, axis=1)).sum(-1)
    same = mask[:, 1:] == mask[:, :-1]
    body_step = np.median(step[same & (mask[:, 1:] != 0) & (mask[:, 1:] != 255)])
    background_step = np.median(step[same & (mask[:, 1:] == 0)])
    assert background_step > 2 * body_step
    body = image[(mask != 0) & (mask != 255)]
    saturation = body.max(1) - body.min(1)
    part_fraction = (saturation > 120).mean()  # the part's saturated stripes
    assert 0 < part_fraction < 0.25
