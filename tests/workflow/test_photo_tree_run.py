"""The default settings on a tree of real-photo-like JPEGs (conftest.py's photo_tree): every artefact at each
image's own size, and another long side reruns only what it decides."""

import math

import numpy as np
import pandas as pd

from tests.workflow_helpers import DEFAULT_WEIGHTS, TINY, copy_workflow, job_counts, resource_files, run
from wsss.data.voc import VOCTree, read_mask

PHOTO_TINY = {
    **TINY,
    "shards": 1,
    "classifier": {**TINY["classifier"], "epochs": 1},
    "erasing": {"rounds": 1},
    "cam": {**TINY["cam"], "long_side": 56, "oracle_thresholds": []},
    "segmentation": {**TINY["segmentation"], "long_side": 56},
}


def test_default_settings_run_on_a_photo_tree(photo_tree, tmp_path):
    root, kinds = photo_tree
    workdir = copy_workflow(tmp_path / "w", PHOTO_TINY)
    run(workdir, "results/miou.parquet", "--config", f"voc_root={root}")  # targets first, then --config
    # the tree is used as it is: no demo, no download; only the ImageNet weights, from the installed package
    assert resource_files(workdir) == [DEFAULT_WEIGHTS]
    tree = VOCTree(root)
    stored = {i: read_mask(tree.mask_path(i), 21) for i in kinds}
    labels = pd.read_parquet(workdir / "results/labels/image_labels.parquet").set_index("image_id")
    train, val = tree.split_ids("train"), tree.split_ids("val")
    for folder in ("cams/r0", "cams/merged"):
        cams = {p.stem: p for p in (workdir / "results" / folder).glob("shard*/*.npy")}
        assert sorted(cams) == sorted(train)
        for image_id, path in cams.items():
            assert np.load(path).shape == (len(labels.loc[image_id, "class_ids"]), *stored[image_id].shape), image_id
    for image_id, path in {p.stem: p for p in (workdir / "results/pseudo_masks").glob("shard*/*.png")}.items():
        assert read_mask(path, 21).shape == stored[image_id].shape
    for supervision in ("pseudo_mask", "ground_truth"):
        predictions = sorted((workdir / "results/segmentation" / supervision / "predictions").glob("*.png"))
        assert [p.stem for p in predictions] == sorted(val)
        for path in predictions:
            assert read_mask(path, 21).shape == stored[path.stem].shape
    summary = pd.read_parquet(workdir / "results/summary.parquet").set_index("stage")
    assert {"cam", "crf", "pseudo_mask", "segmentation", "fully_supervised"} <= set(summary.index)
    assert all(math.isfinite(m) and 0 <= m <= 1 for m in summary["miou"])
    rows = pd.read_parquet(workdir / "results/miou.parquet")
    assert set(summary.index) <= set(rows["stage"]) and rows.loc[rows["present"], "iou"].notna().all()
    # another long side reruns what it decides and nothing upstream: the networks are not retrained
    (workdir / "seg48.yaml").write_text("segmentation: {long_side: 48}\n")
    (workdir / "cam48.yaml").write_text("cam: {long_side: 48}\n")
    replan = {
        name: job_counts(
            run(
                workdir,
                "-n",
                "results/miou.parquet",
                "--config",
                f"voc_root={root}",
                configfiles=("tiny.yaml", f"{name}.yaml"),
            ).stdout
        )
        for name in ("seg48", "cam48")
    }
    assert replan["seg48"] == {"predict_segmentation": 2, "evaluate_stage": 2, "miou_table": 1}
    assert "train_classifier" not in replan["cam48"] and replan["cam48"]["cams"] == 1
    assert replan["cam48"]["train_segmentation"] == 1  # on the new pseudo-masks; the fully-supervised one is kept
