"""Saliency as the pseudo-masks' background cue (wsss.seeds.saliency; Oh et al. 2017, DRS): the label rule against
a per-pixel loop, its threshold at the boundary, OpenCV's maps, a folder of maps with its errors, the saliency
step's resume, the oracle stage and the registry's plan with saliency off and on."""

import numpy as np
import pytest
from PIL import Image

from tests.helpers import config_with
from wsss.data.labels import image_labels
from wsss.data.voc import IGNORE, DataError, read_image, read_mask, read_saliency, save_npy, write_saliency
from wsss.pipeline import registry
from wsss.pipeline.config_checks import config_errors
from wsss.pipeline.experiments import Grid, step_settings
from wsss.scoring.evaluate import evaluate_saliency_oracle, load_scores, score_predictor
from wsss.seeds import saliency as saliency_module
from wsss.seeds.masks import label_shard
from wsss.seeds.saliency import (
    cam_claims,
    compute_saliency,
    saliency_labels,
    saliency_pseudo_mask,
    saliency_shard,
)

CRF = {
    "iterations": 10,
    "gt_prob": 0.7,
    "gaussian": {"sxy": 3, "compat": 3},
    "bilateral": {"sxy": 20, "srgb": 10, "compat": 10},
}
# kernels of weight 0: the CRF's mean field keeps the unary's argmax, the CAMs' own thresholded argmax
NO_PAIRWISE = {**CRF, "gaussian": {"sxy": 3, "compat": 0}, "bilateral": {"sxy": 20, "srgb": 10, "compat": 0}}


def per_pixel_loop(saliency, cams, class_ids, fg_threshold, saliency_threshold):
    """The rule written out pixel by pixel: background where saliency / 255 < t (Oh et al. count >= t as salient);
    a salient pixel takes its image class of the highest CAM if that CAM is above fg_threshold, else 255."""
    height, width = saliency.shape
    labels = np.zeros((height, width), np.uint8)
    for y in range(height):
        for x in range(width):
            if saliency[y, x] / 255 < saliency_threshold:
                labels[y, x] = 0
                continue
            scores = [float(cams[k, y, x]) for k in range(len(class_ids))]
            best = max(range(len(scores)), key=lambda k: scores[k])
            labels[y, x] = class_ids[best] if scores[best] > fg_threshold else IGNORE
    return labels


def test_the_label_rule_is_the_per_pixel_loop(rng):
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    saliency = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    cams = rng.random((3, 9, 11)).astype(np.float32)
    class_ids = [4, 9, 15]
    for fg_threshold, saliency_threshold in [(0.5, 0.5), (0.2, 0.1), (0.8, 0.7), (0.0, 0.0), (1.0, 1.0)]:
        expected = per_pixel_loop(saliency, cams, class_ids, fg_threshold, saliency_threshold)
        mask = saliency_pseudo_mask(image, cams, class_ids, saliency, fg_threshold, saliency_threshold, NO_PAIRWISE)
        np.testing.assert_array_equal(mask, expected)
    assert {0, IGNORE, 4, 9, 15} <= set(np.unique(per_pixel_loop(saliency, cams, class_ids, 0.5, 0.5)))


def test_the_threshold_boundary_is_salient():
    """saliency / 255 == t is salient (51 / 255 == 0.2 exactly), one grey level below is background; t = 0 leaves
    no background, t = 1 keeps only the pixels at 255."""
    saliency = np.array([[50, 51, 52, 0, 255]], np.uint8)
    claims = np.array([[7, 7, 0, 7, 7]], np.uint8)  # the middle pixel claimed by no class
    np.testing.assert_array_equal(saliency_labels(saliency, claims, 0.2), [[0, 7, IGNORE, 0, 7]])
    np.testing.assert_array_equal(saliency_labels(saliency, claims, 0.0), [[7, 7, IGNORE, 7, 7]])
    np.testing.assert_array_equal(saliency_labels(saliency, claims, 1.0), [[0, 0, 0, 0, 7]])
    assert saliency_labels(saliency, claims, 0.2).dtype == np.uint8


def test_the_crf_decides_which_salient_pixels_a_class_claims():
    """The claims are the pseudo-masks' own confident foreground: the CRF snaps a blurry CAM to the object's edge,
    so that a salient band around it is left 255 rather than given the class."""
    image = np.full((40, 40, 3), 210, np.uint8)
    image[10:30, 10:30] = 40
    ys, xs = np.mgrid[0:40, 0:40]
    cam = np.exp(-(((ys - 20) ** 2 + (xs - 20) ** 2) / (2 * 9.0**2)))[None].astype(np.float32)
    claims = cam_claims(image, cam, [8], 0.3, CRF)
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 8
    assert (claims == truth).mean() > 0.97 and (cam > 0.3).sum() > (truth > 0).sum() * 1.5
    salient = np.full((40, 40), 255, np.uint8)
    mask = saliency_pseudo_mask(image, cam, [8], salient, 0.3, 0.5, CRF)
    np.testing.assert_array_equal(mask, np.where(claims == 8, 8, IGNORE))


@pytest.mark.parametrize("method", registry.SALIENCY_METHODS)
def test_opencv_maps_of_a_photo(method):
    """Each method gives a uint8 map at the photo's size (rows, columns: a landscape crop), spread over 0-255,
    the same twice (the step's files are deterministic)."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[40:340, 60:460])  # 300 x 400, RGB
    first = compute_saliency(photo, method)
    assert first.dtype == np.uint8 and first.shape == (300, 400)
    assert first.max() >= 200 and first.min() <= 30 and len(np.unique(first)) > 50
    np.testing.assert_array_equal(first, compute_saliency(photo, method))


def test_the_methods_are_the_registrys_and_the_schemas():
    assert tuple(saliency_module.METHODS) == registry.SALIENCY_METHODS
    with pytest.raises(ValueError, match="unknown saliency method 'dss'"):
        compute_saliency(np.zeros((4, 4, 3), np.uint8), "dss")


def test_the_step_computes_only_the_pending_maps(demo_data, tmp_path, monkeypatch):
    """A killed saliency job continues: maps already written are kept, the rest computed; a rerun computes none."""
    ids = demo_data.split_ids("train")[:3]
    out = tmp_path / "shard0"
    first_shape = read_image(demo_data.image_path(ids[0])).shape[:2]
    out.mkdir()
    write_saliency(out / f"{ids[0]}.png", np.full(first_shape, 7, np.uint8))  # written before the kill
    saliency_shard(demo_data, ids, "fine_grained", out)
    assert (read_saliency(out / f"{ids[0]}.png", first_shape) == 7).all()
    for image_id in ids[1:]:
        image = read_image(demo_data.image_path(image_id))
        np.testing.assert_array_equal(
            read_saliency(out / f"{image_id}.png", image.shape[:2]), compute_saliency(image, "fine_grained")
        )

    def refuse(*args):
        raise AssertionError("recomputed a written map")

    monkeypatch.setattr(saliency_module, "compute_saliency", refuse)
    saliency_shard(demo_data, ids, "fine_grained", out)


def _with_objects(demo_data, split, count):
    """The first count images of a split with at least one class, and every image's class ids."""
    ids = demo_data.masked_ids(split)
    labels = {row.image_id: list(row.class_ids) for row in image_labels(demo_data, ids, 21).itertuples()}
    return [image_id for image_id in ids if labels[image_id]][:count], labels


def _cams(demo_data, ids, labels, cam_dir):
    """CAMs claiming every pixel for each image's first class (the others a little lower)."""
    cam_dir.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        height, width = read_image(demo_data.image_path(image_id)).shape[:2]
        cams = np.full((len(labels[image_id]), height, width), 0.9, np.float16)
        cams[0] = 1.0
        save_npy(cam_dir / f"{image_id}.npy", cams)


def test_a_folder_map_missing_or_of_another_size_is_an_error_naming_it(demo_data, tmp_path):
    ids, labels = _with_objects(demo_data, "train", 2)
    _cams(demo_data, ids, labels, tmp_path / "cams")
    folder = tmp_path / "maps"
    folder.mkdir()
    height, width = read_image(demo_data.image_path(ids[0])).shape[:2]
    write_saliency(folder / f"{ids[0]}.png", np.full((height, width), 200, np.uint8))

    def label(out):
        to_label = lambda image, cams, class_ids, saliency: saliency_pseudo_mask(  # noqa: E731
            image, cams, class_ids, saliency, 0.5, 0.5, CRF
        )
        label_shard(demo_data, ids, tmp_path / "cams", labels, out, to_label, saliency_dir=folder)

    with pytest.raises(DataError, match=f"saliency map {folder / ids[1]}.png not found"):
        label(tmp_path / "out1")
    Image.fromarray(np.zeros((height + 1, width), np.uint8)).save(folder / f"{ids[1]}.png")
    with pytest.raises(DataError, match=rf"saliency map {folder / ids[1]}.png is {width}x{height + 1} px"):
        label(tmp_path / "out2")
    (folder / f"{ids[1]}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"cannot read saliency map {folder / ids[1]}.png"):
        label(tmp_path / "out3")
    # the first image's mask was written before the error (a rerun continues there)
    assert read_mask(tmp_path / "out1" / f"{ids[0]}.png", 21).shape == (height, width)
    with pytest.raises(DataError, match=f"saliency map {folder / ids[1]}.png"):
        evaluate_saliency_oracle(
            demo_data, ids, [tmp_path / "cams"], [folder], labels, [0.5], 0.5, CRF, 21, tmp_path / "s"
        )


def test_the_oracle_keeps_the_best_threshold(demo_data, tmp_path):
    """CAMs that claim whole images and a map that is 200 on the objects and 100 on the background: 0.6 (153) makes
    the background background and the objects the CAMs' class; 0.3 gives the background a class, 0.9 nothing."""
    ids, labels = _with_objects(demo_data, "train", 6)
    _cams(demo_data, ids, labels, tmp_path / "cams")
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_id in ids:
        truth = read_mask(demo_data.mask_path(image_id), 21)
        write_saliency(maps / f"{image_id}.png", np.where((truth > 0) & (truth != IGNORE), 200, 100))
    out = tmp_path / "saliency_oracle.npz"
    evaluate_saliency_oracle(demo_data, ids, [tmp_path / "cams"], [maps], labels, [0.3, 0.6, 0.9], 0.5, CRF, 21, out)
    scores = load_scores(out)
    assert scores["oracle"] and scores["bg_threshold"] == 0.6

    def at(threshold):
        def predict(image_id):
            image = read_image(demo_data.image_path(image_id))
            cams = np.load(tmp_path / "cams" / f"{image_id}.npy")
            saliency = read_saliency(maps / f"{image_id}.png", image.shape[:2])
            return saliency_pseudo_mask(image, cams, labels[image_id], saliency, 0.5, threshold, CRF)

        return score_predictor(demo_data, ids, 21, predict)["confusion"]

    np.testing.assert_array_equal(scores["confusion"], at(0.6))
    assert not np.array_equal(at(0.3), at(0.6)) and not np.array_equal(at(0.9), at(0.6))


# --- the plan: registry and experiments.Grid -------------------------------------------------------------------

OFF = config_with()
COMPUTED = config_with({"saliency": {"source": "fine_grained"}, "pseudo_mask": {"saliency_threshold": 0.4}})
FOLDER = config_with({"saliency": {"source": "maps/poolnet"}, "pseudo_mask": {"saliency_threshold": 0.5}})


def test_saliency_off_plans_nothing_and_leaves_the_pseudo_masks_as_they_were():
    """The default: no step, no stage, and the pseudo-masks' params and settings are what they were before
    saliency existed, so nothing reruns and the demo's figures stay."""
    assert registry.step("saliency").args(OFF) == [] and "saliency_oracle" not in registry.stage_names(OFF)
    before = {"crf": OFF["crf"], "pseudo_mask": {"fg_threshold": 0.75, "bg_threshold": 0.6}}
    assert registry.own_settings(OFF, "pseudo_masks") == {**before, "shards": OFF["shards"]}
    assert registry.step("pseudo_masks").upstream(OFF, None) == [("merged_cams", None)]
    source_only = config_with({"saliency": {"source": "fine_grained"}})  # read only with the threshold
    assert registry.own_settings(source_only, "pseudo_masks") == registry.own_settings(OFF, "pseudo_masks")
    assert registry.stage_names(source_only) == registry.stage_names(OFF)
    assert "saliency" not in registry.read_sections(OFF)


def test_a_computed_source_plans_the_step_and_the_oracle_stage():
    assert registry.step("saliency").args(COMPUTED) == [None]
    names = registry.stage_names(COMPUTED)
    assert names.index("saliency_oracle") == names.index("pseudo_mask") + 1
    assert registry.stage_title("saliency_oracle") == "pseudo-mask with saliency, ORACLE threshold"
    assert registry.stage("saliency_oracle", COMPUTED)[0].kind == registry.SALIENCY_ORACLE
    assert not registry.stage_named("saliency_oracle").per_image and "saliency_oracle" not in registry.RANKED_STAGES
    settings = registry.own_settings(COMPUTED, "pseudo_masks")
    assert settings["saliency"] == {"source": "fine_grained"}
    assert settings["pseudo_mask"] == {"fg_threshold": 0.75, "saliency_threshold": 0.4}  # no bg_threshold
    assert registry.step("pseudo_masks").upstream(COMPUTED, None) == [("merged_cams", None), ("saliency", None)]
    assert registry.own_settings(COMPUTED, "saliency") == {"saliency": {"source": "fine_grained"}, "shards": 2}
    grid = Grid(COMPUTED)
    assert grid.step_outputs("default", "saliency") == ["results/saliency/shard0", "results/saliency/shard1"]
    assert grid.scored_outputs("default", "saliency_oracle") == grid.step_outputs("default", "merged_cams")
    scored = step_settings(COMPUTED, "metrics", "saliency_oracle")
    assert scored["saliency"] == COMPUTED["saliency"] and scored["pseudo_mask.fg_threshold"] == 0.75
    no_oracle = config_with(COMPUTED, {"saliency": {"oracle_thresholds": []}})
    assert "saliency_oracle" not in registry.stage_names(no_oracle) and registry.step("saliency").args(no_oracle)


def test_a_folder_source_is_read_where_it_is():
    assert registry.step("saliency").args(FOLDER) == []
    assert registry.step("pseudo_masks").upstream(FOLDER, None) == [("merged_cams", None)]
    assert registry.own_settings(FOLDER, "pseudo_masks")["saliency"] == {"source": "maps/poolnet"}
    assert "saliency_oracle" in registry.stage_names(FOLDER)


def test_a_grid_shares_the_cams_and_splits_at_the_saliency():
    """Experiments that differ in saliency alone share every step up to the merged CAMs, and compute their own
    maps, pseudo-masks and networks; the CRF stage, which reads no saliency, stays shared."""
    grid = Grid(
        config_with(
            COMPUTED,
            {
                "experiments": {
                    "fine": {},
                    "spectral": {"saliency": {"source": "spectral_residual"}},
                    "plain": {"pseudo_mask": {"saliency_threshold": None}},
                }
            },
        )
    )
    for step in ("classifier", "merged_cams", "crf"):
        arg = 0 if step == "classifier" else None
        assert {grid.owner(name, step, arg) for name in grid.names} == {"fine"}, step
    assert [grid.owner(name, "saliency") for name in ("fine", "spectral")] == ["fine", "spectral"]
    assert [grid.owner(name, "pseudo_masks") for name in grid.names] == ["fine", "spectral", "plain"]
    assert not grid.runs("plain", "saliency") and not grid.runs("plain", "metrics", "saliency_oracle")


def test_a_threshold_without_a_source_is_an_error_naming_both_keys():
    config = config_with({"pseudo_mask": {"saliency_threshold": 0.5}})
    errors = config_errors(config, {})
    assert errors == [
        "pseudo_mask.saliency_threshold: 0.5 needs saliency.source: a saliency method (spectral_residual, "
        "fine_grained) or a folder of <image id>.png maps (it is null)"
    ]
    assert config_errors(COMPUTED, {}) == [] and config_errors(OFF, {}) == []
