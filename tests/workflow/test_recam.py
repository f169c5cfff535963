"""ReCAM through the workflow on the tiny config: a CAM run and a ReCAM run of one grid share the classifier
and its CAMs (cam.source is not a setting of the CAMs); the ReCAM run trains ReCAM's step on the round-0
classifier and its merged CAMs are the re-activated maps, in the CAM files' format."""

import numpy as np
import pytest
import torch
import yaml

from tests.workflow_helpers import copy_workflow, job_counts, run

FILES = ("tiny.yaml", "recam.yaml")
GRID = {
    "experiments": {
        "cam": {"erasing": {"rounds": 1}},
        "recam": {"erasing": {"rounds": 1}, "cam": {"source": "recam"}, "recam": {"epochs": 1, "batch_size": 4}},
    }
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("recam"))
    (root / "recam.yaml").write_text(yaml.safe_dump(GRID))
    return root


def test_the_plan_shares_the_classifier_and_its_cams(workdir):
    jobs = job_counts(run(workdir, "-n", "results/miou.parquet", configfiles=FILES).stdout)
    assert jobs["train_classifier"] == 1 and jobs["cams"] == 2  # shared: one round-0 classifier, 2 shards
    assert jobs["train_recam"] == 1 and jobs["recam_cams"] == 2
    assert jobs["merge_cams"] == 2 + 2 and jobs["train_irn"] == 2


def test_the_recam_run_merges_recams_maps(workdir):
    run(workdir, "results/recam/cams/merged/shard0", "results/cam/cams/merged/shard0", configfiles=FILES)
    results = workdir / "results"
    model = torch.load(results / "recam/classifier/recam/model.pt", weights_only=True)
    assert model["meta"]["recam"] is True and model["meta"]["method"] == "cam"
    assert (workdir / "logs/recam/train_recam.log").exists()
    recam = sorted((results / "recam/cams/recam/shard0").glob("*.npy"))
    plain = sorted((results / "cam/cams/r0/shard0").glob("*.npy"))
    merged = results / "recam/cams/merged/shard0"
    assert recam and [p.name for p in recam] == [p.name for p in plain]
    assert not (results / "recam/cams/r0").exists()  # the recam run reads the cam run's shared CAMs
    differs = False
    for ours, theirs in zip(recam, plain):
        a, b = np.load(ours), np.load(theirs)
        assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
        np.testing.assert_array_equal(np.load(merged / ours.name), a)
        differs |= not np.array_equal(a, b)
    assert differs
