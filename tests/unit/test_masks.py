import numpy as np

from wsss.data.voc import IGNORE
from wsss.seeds.masks import cam_to_label, crf_label, pseudo_mask

CRF = {
    "iterations": 10,
    "gt_prob": 0.7,
    "gaussian": {"sxy": 3, "compat": 3},
    "bilateral": {"sxy": 20, "srgb": 10, "compat": 10},
}


def test_cam_to_label_uses_background_threshold_and_class_ids():
    cams = np.zeros((2, 2, 3), np.float16)
    cams[0, 0, 0] = 0.9  # class 8 wins
    cams[1, 0, 1] = 0.5  # class 15 wins
    cams[0, 0, 2], cams[1, 0, 2] = 0.1, 0.12  # below the threshold: background
    label = cam_to_label(cams, [8, 15], bg_threshold=0.15)
    np.testing.assert_array_equal(label, [[8, 15, 0], [0, 0, 0]])
    assert cam_to_label(np.zeros((0, 2, 3)), [], 0.15).max() == 0


def _toy():
    """A dark square object on a light background, and a blurry CAM that spills past its edge."""
    image = np.full((40, 40, 3), 210, np.uint8)
    image[10:30, 10:30] = 40
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 8
    ys, xs = np.mgrid[0:40, 0:40]
    cam = np.exp(-(((ys - 20) ** 2 + (xs - 20) ** 2) / (2 * 9.0**2)))[None].astype(np.float32)
    return image, truth, cam


def test_crf_snaps_a_blurry_map_to_the_sharp_edge():
    image, truth, cam = _toy()
    before = cam_to_label(cam, [8], 0.3)
    after = crf_label(image, cam, [8], 0.3, CRF)
    assert (after == truth).mean() > (before == truth).mean()
    assert (after == truth).mean() > 0.97


def test_pseudo_mask_ignores_unconfident_pixels():
    image, truth, cam = _toy()
    # A flat image and a weak CRF keep the two thresholds' maps, which disagree on a ring.
    flat = np.full_like(image, 128)
    weak = {**CRF, "gaussian": {"sxy": 1, "compat": 1}, "bilateral": {"sxy": 1, "srgb": 1, "compat": 1}}
    mask = pseudo_mask(flat, cam, [8], fg_threshold=0.6, bg_threshold=0.05, params=weak)
    assert set(np.unique(mask)) == {0, 8, IGNORE}
    centre_label, corner_label = mask[20, 20], mask[0, 0]
    assert centre_label == 8 and corner_label == 0
    ring = mask == IGNORE
    ys, xs = np.nonzero(ring)
    radii = np.hypot(ys - 20, xs - 20)
    assert radii.min() > 5 and radii.max() < 25  # between the fg core and the bg outside
    # with real edges the confident mask agrees with the truth wherever it is not ignored
    snapped = pseudo_mask(image, cam, [8], fg_threshold=0.3, bg_threshold=0.05, params=CRF)
    kept = snapped != IGNORE
    assert (snapped[kept] == truth[kept]).mean() > 0.97


def test_crf_accepts_images_as_read_from_disk(tmp_path):
    """Regression: PIL-backed arrays are read-only and pydensecrf refuses them."""
    from PIL import Image

    from wsss.data.voc import read_image

    image, truth, cam = _toy()
    Image.fromarray(image).save(tmp_path / "toy.png")
    assert crf_label(read_image(tmp_path / "toy.png"), cam, [8], 0.3, CRF).shape == truth.shape
