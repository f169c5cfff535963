"""CLIP-ES (wsss.nets.clip, wsss.seeds.clip_es): parity with CLIP-ES's computation written out in
tests/clip_es_reference.py on real photos with the same random weights of the full-size ViT-B/16 image and text
towers (Grad-CAM, CAA-refined maps, the maps saved at the image's size, the CRF labels with the confidence mask),
the pieces' formulas, and the weights file's checks (a TorchScript archive read without running its code)."""

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import clip_es_reference as ref
from wsss.data.voc import read_image
from wsss.nets import clip, clip_file
from wsss.seeds import clip_es, masks

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco340-voc" / "VOC2012" / "JPEGImages"
# what CLIP-ES ships for VOC (clip_text.py), the config's defaults
VOC_FG = ["aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
          "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant", "sheep",
          "sofa", "train", "tvmonitor screen"]  # fmt: skip
VOC_BG = ["ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river", "sea", "railway",
          "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean", "road", "rock", "street", "valley",
          "bridge", "sign"]  # fmt: skip
PROMPT = "a clean origami {}."
SETTINGS = {
    "prompt": PROMPT,
    "background": VOC_BG,
    "box_threshold": 0.4,
    "caa": {"layers": 8, "sinkhorn_rounds": 3, "power": 2},
}
CRF = {"iterations": 10, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 67, "srgb": 3, "compat": 4}}
# (photo, its classes): three photos, one class, two and three classes
CASES = [("000000000139.jpg", [9, 15]), ("000000000790.jpg", [15]), ("000000005001.jpg", [5, 12, 15])]


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    model = clip.clip_model()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def texts(weights):
    model, state = weights
    ours = (clip_es.text_features(model, VOC_FG, PROMPT), clip_es.text_features(model, VOC_BG, PROMPT))
    theirs = (ref.zeroshot_classifier(state, VOC_FG, PROMPT), ref.zeroshot_classifier(state, VOC_BG, PROMPT))
    return ours, theirs


def test_text_features_are_clip_es(texts):
    (fg, bg), (ref_fg, ref_bg) = texts
    assert torch.allclose(fg, ref_fg, atol=1e-5) and torch.allclose(bg, ref_bg, atol=1e-5)


@pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"no photos at {PHOTOS} (../shared/data/coco340-voc)")
@pytest.mark.parametrize("photo, class_ids", CASES)
def test_maps_and_labels_are_clip_es(weights, texts, photo, class_ids):
    model, state = weights
    (fg, bg), (ref_fg, ref_bg) = texts
    path = PHOTOS / photo
    image = read_image(path)
    ours = clip_es.image_maps(model, image, class_ids, fg, bg, SETTINGS)
    theirs = ref.clip_es_cams(state, str(path), class_ids, ref_fg, ref_bg)
    assert ours.gradcam.std() > 0.05  # random weights still give maps with structure
    np.testing.assert_allclose(ours.gradcam, theirs["gradcam"], atol=5e-5)  # measured: up to 1e-5
    scale = np.abs(theirs["refined"]).max()
    assert np.abs(ours.refined - theirs["refined"]).max() <= 1e-5 * scale  # measured: up to 1.3e-6
    # the saved maps are the refined ones min-max normalised, resized: exactly CLIP-ES's on the same refined maps;
    # random weights attend almost uniformly, so the refined maps are nearly flat (range ~2e-4 of their maximum)
    # and the normalisation magnifies the float32 differences above ~5000 times (measured: up to 2.4e-3)
    height, width = image.shape[:2]
    theirs_of_ours = np.stack([ref.scale_cam_image([r], (width, height))[0] for r in ours.refined])
    np.testing.assert_allclose(ours.cams, theirs_of_ours, atol=1e-6)
    saved = ours.cams.astype(np.float16)
    assert np.abs(saved.astype(np.float32) - theirs["attn_highres"].astype(np.float32)).max() <= 5e-3
    # the CRF labels with the confidence mask: identical on the same maps; from each side's own maps, measured
    # agreement 99.5-99.96 %
    label = masks.clip_es_label(image, saved, class_ids, CRF, 0.95)
    assert (label == 255).mean() < 0.9 and set(np.unique(label)) - {255} <= {0, *class_ids}
    assert (label == ref.clip_es_crf_label(str(path), saved, class_ids)).all()
    assert (label == ref.clip_es_crf_label(str(path), theirs["attn_highres"], class_ids)).mean() >= 0.99


def test_an_image_without_classes_is_background(weights, texts):
    model, _ = weights
    (fg, bg), _ = texts
    image = np.full((40, 56, 3), 90, np.uint8)
    maps = clip_es.image_maps(model, image, [], fg, bg, SETTINGS)
    assert maps.cams.shape == (0, 40, 56)
    assert (masks.clip_es_label(image, maps.cams, [], CRF, 0.95) == 0).all()


@pytest.mark.parametrize("seed", range(20))
def test_box_mask_is_scoremap2bbox(seed):
    rng = np.random.default_rng(seed)
    cam = clip_es.min_max(np.maximum(rng.normal(size=(17, 23)).cumsum(0).cumsum(1), 0)).astype(np.float32)
    boxes, count = ref.scoremap2bbox(cam, 0.4)
    expected = np.zeros(cam.shape, bool)
    for x0, y0, x1, y1 in boxes[:count]:
        expected[y0:y1, x0:x1] = True
    assert (clip_es.box_mask(cam, 0.4) == expected).all()


def test_no_region_no_box():
    assert not clip_es.box_mask(np.zeros((5, 6), np.float32), 0.4).any()


def test_caa_is_sinkhorn_symmetrised_squared():
    attention = torch.rand(12, 1, 10, 10).softmax(-1)
    transition = clip_es.caa_transition(list(attention), 8, 3, 2)
    single = clip_es.caa_transition(list(attention), 8, 3, 1)
    assert torch.allclose(single, single.T) and torch.allclose(transition, single @ single)
    assert torch.allclose(single.sum(0), torch.ones(9), atol=0.05)  # nearly doubly stochastic


def test_crf_image_wraps_as_numpys_cast():
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    bgr = image[..., ::-1].astype(np.float32) - np.asarray(masks.MEAN_BGR, np.float32)
    assert (masks.crf_image(image) == bgr.astype(np.uint8)).all()


def test_positions_interpolate_to_the_grid():
    embedding = torch.randn(197, 8)
    same = clip.interpolated_positions(embedding, (14, 14))
    assert torch.allclose(same, embedding.half().float())
    assert clip.interpolated_positions(embedding, (24, 32)).shape == (1 + 24 * 32, 8)


def test_class_texts_default_to_the_class_name():
    assert clip_es.class_texts(["background", "bird", "cat"], {"bird": "bird avian"}) == ["bird avian", "cat"]


# --- the weights file ---------------------------------------------------------------------------------


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
        self.proj = torch.nn.Parameter(torch.randn(4, 2))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit: deprecated, still what OpenAI saved
def test_a_torchscript_archive_is_read_without_running_it(tmp_path):
    module = Tiny().half()
    torch.jit.save(torch.jit.script(module), tmp_path / "tiny.pt")
    tensors = clip.read_torchscript_tensors(tmp_path / "tiny.pt")
    expected = module.state_dict()
    assert set(tensors) == set(expected)
    for key, value in expected.items():
        assert tensors[key].dtype == torch.float16 and torch.equal(tensors[key], value)


def test_an_archive_naming_other_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(clip.WeightsError, match=r"refusing to load .*print from a weights archive"):
        clip.read_clip_weights(path)


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(clip.WeightsError, match="does not exist"):
        clip.read_clip_weights(tmp_path / "missing.pt")
    path = tmp_path / "state.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(clip.WeightsError, match=f"{path} has sha256 .* expected {clip.CLIP_VIT_B16_SHA256}"):
        clip.read_clip_weights(path, clip.CLIP_VIT_B16_SHA256)
    assert set(clip.read_clip_weights(path)) == {"a"}
    with pytest.raises(clip.WeightsError, match="lack"):
        clip.clip_model({"a": torch.zeros(2)})
    buffer = io.BytesIO()
    torch.save([1, 2], buffer)
    (tmp_path / "list.pt").write_bytes(buffer.getvalue())
    with pytest.raises(clip.WeightsError, match="no state_dict"):
        clip.read_clip_weights(tmp_path / "list.pt")


def test_the_weights_come_from_the_mirrors_first():
    assert clip_file.clip_weights_urls(["http://mirror/clip/"]) == [
        "http://mirror/clip/ViT-B-16.pt",
        clip_file.CLIP_VIT_B16_URL,
    ]
    assert clip_file.CLIP_VIT_B16_SHA256 in clip_file.CLIP_VIT_B16_URL  # OpenAI's address names its digest
