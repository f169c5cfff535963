"""The workflow through Snakemake's CLI on a tiny demo config, in a copy of the repository."""

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.workflow_helpers import REPO, TINY, copy_finished_run, dry_run_plans, job_counts, planned_jobs, run
from wsss.data.datasets import Dataset
from wsss.data.voc import read_image, voc_palette
from wsss.pipeline import registry
from wsss.pipeline.experiments import deep_merge, step_settings
from wsss.pipeline.registry import stage_title
from wsss.training.irn import load_irn

STAGES = [
    "cam_r0",
    "cam_r1",
    "cam",
    "cam_oracle",
    "crf",
    "pseudo_mask",
    "random_walk",
    "segmentation",
    "fully_supervised",
]


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory):
    """A copy of the finished tiny run (conftest.py's tiny_run): the tests below change it."""
    return copy_finished_run(tiny_run.root, tmp_path_factory.mktemp("workflow") / "project")


def test_invalid_config_names_the_key(workdir):
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"shards": "many"}))
    result = run(workdir, "-n", check=False, configfiles=("tiny.yaml", "bad.yaml"))
    assert result.returncode != 0
    assert "shards" in result.stderr + result.stdout and "is not of type 'integer'" in result.stderr + result.stdout


def test_stop_after_classifier_then_resume(tiny_run, workdir):
    """tiny_run stopped after the round-0 classifier: what was left is the rest of the chain, not the data or
    round 0 again; resumed with the default target, it finished (test_rerun_does_nothing)."""
    remaining = tiny_run.left_after_stop
    assert "train_classifier" in remaining and remaining["train_classifier"] == 1  # round 1 only
    assert "demo_dataset" not in remaining and "image_labels" not in remaining
    assert remaining["cams"] == 4 and remaining["miou_table"] == 1  # 2 rounds x 2 shards
    log = (workdir / "logs" / "train_classifier" / "r0.log").read_text()
    assert "left out" in log  # background-only images are counted in the log


def test_end_to_end_table(workdir):
    table = pd.read_parquet(workdir / "results" / "miou.parquet")
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert list(summary["stage"]) == STAGES
    assert set(table["stage"]) == set(STAGES)
    assert {"stage", "split", "class_id", "class_name", "iou", "tp", "fp", "fn", "gt_pixels"} <= set(table.columns)
    splits = dict(zip(summary["stage"], summary["split"]))
    assert splits["cam"] == "train" and splits["pseudo_mask"] == "train" and splits["segmentation"] == "val"
    by_stage = summary.set_index("stage")
    assert by_stage.loc["pseudo_mask", "coverage"] < 1 and by_stage.loc["crf", "coverage"] == 1
    assert by_stage.loc["random_walk", "coverage"] == 1 and splits["random_walk"] == "train"  # dense labels
    assert summary.set_index("stage").loc["cam_oracle", "oracle"] and not summary["oracle"].drop(3).any()
    for stage, group in table.groupby("stage"):  # chainercv: the mean over every class predicted or present
        assert summary.set_index("stage").loc[stage, "miou"] == pytest.approx(group["iou"].mean())
    assert 0 in set(table["class_id"])  # background counts
    cams = sorted((workdir / "results" / "cams" / "r0").glob("shard*/*.npy"))
    assert len(cams) == 12 and np.load(cams[0], allow_pickle=False).dtype == np.float16
    assert (workdir / "results" / "summary.txt").read_text().startswith("stage")


def test_irn_and_random_walk_artifacts(workdir):
    """IRN's boundary network and the random walk's label maps: one VOC-palette PNG per train image, inside
    its shard, of the image's size, dense (no 255) and only with the image's own classes."""
    results = workdir / "results"
    model = load_irn(results / "irn" / "model.pt")
    assert model.edge.out_channels == 1 and not any(p.requires_grad for p in model.features.parameters())
    history = pd.read_parquet(results / "irn" / "history.parquet")
    assert len(history) == yaml.safe_load((workdir / "config/config.yaml").read_text())["irn"]["epochs"]
    assert not (results / "irn" / "checkpoint.pt").exists()
    labels = pd.read_parquet(results / "labels" / "image_labels.parquet").set_index("image_id")["class_ids"]
    tree = Dataset.open(results / "data")
    masks = sorted((results / "random_walk").glob("shard*/*.png"))
    assert sorted(p.stem for p in masks) == sorted(tree.split_ids("train"))
    assert {p.parent.name for p in masks} == {"shard0", "shard1"}
    for path in masks:
        png = Image.open(path)
        assert png.mode == "P" and png.getpalette()[: 3 * 21] == voc_palette()[: 3 * 21]
        label = np.asarray(png)
        assert label.shape == read_image(tree.image_path(path.stem)).shape[:2]
        assert set(np.unique(label)) <= {0, *labels[path.stem]}  # 255 never: every pixel labelled


def test_segmentation_trains_on_random_walk_labels(workdir):
    """segmentation.labels: random_walk trains a segmentation network on the random walk's maps, in the folder
    named for them (the one on pseudo-masks stays where it is), and nothing upstream."""
    (workdir / "walk.yaml").write_text(yaml.safe_dump({"segmentation": {"labels": "random_walk"}}))
    configs = ("tiny.yaml", "walk.yaml")
    plan = job_counts(run(workdir, "-n", "results/miou.parquet", configfiles=configs).stdout)
    # the network on ground truth does not read labels: it stays
    assert plan == {"train_segmentation": 1, "predict_segmentation": 1, "evaluate_stage": 1, "miou_table": 1}
    detail = run(workdir, "-n", "-p", "results/segmentation/random_walk/model.pt", configfiles=configs).stdout
    assert "results/random_walk/shard0" in detail and "results/pseudo_masks/shard0" not in detail
    assert "results/segmentation/random_walk/predictions" in run(workdir, "-n", configfiles=configs).stdout
    (workdir / "walk.yaml").unlink()


def test_rerun_does_nothing(workdir):
    assert planned_jobs(workdir, "results/miou.parquet") == {}
    assert planned_jobs(workdir) == {}


DEFAULT_CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def leaves(value, prefix=()):
    """(path, value) of every leaf of a config mapping; a list or an empty mapping is a leaf."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*prefix, key))
    else:
        yield prefix, value


CRF = {"iterations": 5, "gaussian": {"sxy": 3, "compat": 3}, "bilateral": {"sxy": 50, "srgb": 5, "compat": 10}}
# Another valid value for the keys where "the next number", "the other boolean", "the schema's next name" or
# "the list less its last item" is not one
OTHER_VALUES = {
    "classes": DEFAULT_CONFIG["classes"][:-1],  # the demo has no tvmonitor
    "download.voc.mirrors": ["http://127.0.0.1:9/"],
    "download.sbd.mirrors": ["http://127.0.0.1:9/"],
    "download.weights": ["http://127.0.0.1:9/"],
    "download.voc.md5": "0" * 32,  # read by the download, which the demo does not run
    "download.sbd.md5": "0" * 32,
    "download.coco.mirrors": ["http://127.0.0.1:9/"],  # read by the coco kind's downloads only
    **{f"download.coco.md5.{archive}": "0" * 32 for archive in DEFAULT_CONFIG["download"]["coco"]["md5"]},
    "demo.max_objects": 2,
    "expected_train_aug": 10582,
    "demo.classes": ["aeroplane", "bird", "car", "cat"],
    "demo.size_range": [40, 48],
    "classifier.resize_long": [40, 48],
    "irn.resize_long": [40, 48],
    "segmentation.resize_long": [40, 48],
    "splits.train": "val",
    "splits.seed_eval": "val",
    "splits.val": "train",
    "classifier.output_stride": 8,
    "irn.output_stride": 8,
    "segmentation.output_stride": 8,
    "classifier.pretrained": None,
    "irn.pretrained": None,
    "segmentation.pretrained": None,
    "cam.pas_percentile": 50,
    "cam.fused_stages": [3, 4],
    "classifier.multi_dilation.rates": [1, 3, 6],
    "pseudo_mask.fg_threshold": 0.8,
    "pseudo_mask.bg_threshold": 0.5,
    "segmentation.inference.scales": [1.0, 0.5],
    "segmentation.inference.crf": CRF,
    "segmentation.inference.tile": {"size": 48, "overlap": 16},
    "saliency.source": "fine_grained",  # read only with pseudo_mask.saliency_threshold: reruns nothing here
    "report.columns": 3,
    "rank_by": "crf",
    # CLIP-ES's keys: read only with cam.source clip_es (its other value, clip_es, is planned with them)
    "clip_es.weights": "/nonexistent/ViT-B-16.pt",
    "clip_es.prompt": "a photo of a {}.",
    **{f"clip_es.class_names.{name}": f"a {name}" for name in DEFAULT_CONFIG["clip_es"]["class_names"]},
}
# Keys that change which runs there are or where the data is, tested where those are
UNPLANNED = {
    "seeds": "replicates every run into seed<k>/ folders (tests/workflow/test_seeds.py)",
    "experiments": "a grid of runs (tests/workflow/test_grid.py)",
    "voc_root": "a directory of images (tests/workflow/test_voc_data.py)",
    "sbd_root": "a directory of SBD masks (tests/workflow/test_voc_data.py)",
    **{
        f"dataset.{key}": "the kind of data and its files (tests/own_data.py: each kind run by test_readme.py)"
        for key in DEFAULT_CONFIG["dataset"]
    },
    "segment.images": "a folder of photos to segment (tests/own_data.py, test_readme.py)",
    "pseudo_mask.saliency_threshold": "needs saliency.source as well (test_grid.py's reading experiment has both)",
    # the recam keys, read only with cam.source recam, rerun nothing here
    "cam.source": "recam needs erasing.rounds 1 (tests/workflow/test_recam.py)",
}
# The dataset itself (its images, classes, the splits its index lists): every step reruns when it changes.
# splits.val: val -> train leaves val out of the index (splits.seed_eval: train -> val does not change it).
DATA_KEYS = ("classes", "demo", "splits.train", "splits.val", "download.voc.mirrors", "download.sbd.mirrors")
STEP_RULES = {rule: name for name, s in registry.STEPS.items() for rule in s.rules}


SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def schema_of(key: str) -> dict:
    """The schema of a dotted config key (through $ref and allOf)."""

    def resolve(node):
        while "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        properties = dict(node.get("properties", {}))
        for part in node.get("allOf", []):
            properties.update(resolve(part).get("properties", {}))
        return {**node, "properties": properties}

    node = SCHEMA
    for part in key.split("."):
        node = resolve(resolve(node)["properties"][part])
    return node


def other_value(key: str, value):
    if key in OTHER_VALUES:
        return OTHER_VALUES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.1
    if isinstance(value, str):
        return next(name for name in schema_of(key)["enum"] if name != value)
    if isinstance(value, list):
        return value[:-1]
    raise AssertionError(f"{key}: no other value for {value!r}; add one to OTHER_VALUES")


def nested(path, value) -> dict:
    """{"a": {"b": value}} of the path ("a", "b")."""
    for part in reversed(path):
        value = {part: value}
    return value


def expected_jobs(base: dict, changed: dict, key: str) -> dict[str, int]:
    """The step rules' jobs a dry run plans when key changes from base to changed: every (step, arg) whose
    settings (its own and its upstream steps', experiments.step_settings) differ, one job per shard of a
    per-shard step. When the data change, everything."""
    everything = key.startswith(DATA_KEYS)
    jobs: dict[str, int] = {}
    for name, step in registry.STEPS.items():
        for arg in step.args(changed):
            before = step_settings(base, name, arg) if arg in step.args(base) else None
            after = step_settings(changed, name, arg)
            if before == after and not everything:
                continue
            for rule in step.rules:
                jobs[rule] = jobs.get(rule, 0) + (changed["shards"] if step.per_shard else 1)
    return jobs


def test_a_changed_value_reruns_exactly_the_steps_that_read_it(workdir):
    """After a finished run, changing any one key of config/config.yaml plans the jobs of exactly the steps
    whose settings hold it (registry Step.settings, through their upstream steps), and none where no step
    reads it (threads, report, scoring thresholds, download mirrors). One dry run per key, two at a time."""
    base = deep_merge(DEFAULT_CONFIG, TINY)
    keys = [path for path, _ in leaves(DEFAULT_CONFIG) if ".".join(path) not in UNPLANNED]
    assert len(keys) > 100  # every key, not a few
    overrides = {}
    for path in keys:
        key, value = ".".join(path), base
        for part in path:
            value = value[part]
        overrides[key] = nested(path, other_value(key, value))
        (workdir / f"changed-{key}.yaml").write_text(yaml.safe_dump(overrides[key]))
    plans = dry_run_plans(workdir, [((), ("tiny.yaml", f"changed-{key}.yaml")) for key in overrides])
    mismatches = []
    for (key, override), plan in zip(overrides.items(), plans):
        planned = {rule: count for rule, count in plan.items() if rule in STEP_RULES}
        expected = expected_jobs(base, deep_merge(base, override), key)
        if planned != expected:
            mismatches.append(f"{key} -> {override}: planned {planned}, expected {expected}")
    assert not mismatches, "\n".join(mismatches)


def test_deleting_one_crf_shard_reruns_only_that_shard(workdir):
    shutil.rmtree(workdir / "results" / "crf" / "shard1")
    jobs = planned_jobs(workdir)  # the default target `all` names every shard
    # the figures drawn from CRF-derived scores are redrawn too (the val gallery's captions read the
    # per-image score table, which holds every stage)
    assert jobs == {
        "all": 1,
        "crf": 1,
        "evaluate_stage": 1,
        "miou_table": 1,
        "image_scores": 1,
        "report_train_gallery": 1,
        "report_val_gallery": 1,
        "report_class_iou": 1,
        "report_miou_by_stage": 1,
    }
    explicit = planned_jobs(workdir, "results/crf/shard1", "results/miou.parquet")
    assert explicit == {"crf": 1, "evaluate_stage": 1, "miou_table": 1}
    run(workdir)
    assert planned_jobs(workdir) == {} and planned_jobs(workdir, "results/miou.parquet") == {}
    assert len(list((workdir / "results" / "crf" / "shard1").glob("*.png"))) == 6  # 12 train images, 2 shards


def test_report(workdir):
    """The report's figures come from the run; `snakemake --report` embeds them with their captions."""
    report = workdir / "results" / "report"
    gallery = report / "train_gallery"
    train = sorted(p.relative_to(gallery).with_suffix("").as_posix() for p in gallery.glob("*/*.png"))
    assert [name.split("__")[0] for name in train] == ["best/01", "sample/01", "sample/02", "sample/03", "worst/01"]
    scores = pd.read_parquet(workdir / "results" / "metrics" / "image_scores.parquet")
    # ranked by the pseudo-labels the segmentation network learns from (segmentation.labels names their stage)
    rank_stage = yaml.safe_load((workdir / "config/config.yaml").read_text())["segmentation"]["labels"]
    pseudo = scores[scores["stage"] == rank_stage].set_index("image_id")["miou"]
    labels = pd.read_parquet(workdir / "results" / "labels" / "image_labels.parquet").set_index("image_id")
    pseudo = pseudo[labels.loc[pseudo.index, "class_ids"].map(len) > 0]  # best/worst rank images with objects
    best, worst = (name.split("__") for name in (train[0], train[-1]))
    assert float(best[3][3:]) == pytest.approx(pseudo.max(), abs=5e-4)
    assert pseudo[best[1]] == pseudo.max()  # the file is named after the best image
    assert float(worst[3][3:]) == pytest.approx(pseudo.min(), abs=5e-4)
    assert len(list(report.glob("val_gallery/*.png"))) == 2
    for name in ("class_iou", "miou_by_stage", "confusion_segmentation", "classifier_curves"):
        assert (report / f"{name}.png").stat().st_size > 10_000
    run(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    for text in ("Train gallery", "Val gallery", "Classifier training", best[1], f"{stage_title(rank_stage)} IoU"):
        assert text in html, text


def test_lint_is_clean(workdir):
    result = run(workdir, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
