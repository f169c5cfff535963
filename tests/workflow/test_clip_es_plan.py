"""CLIP-ES's rule path, planned (its real run needs OpenAI's CLIP weights, which the tests do not hold; the steps'
computation is tested in tests/unit/test_clip_es.py): with cam.source clip_es no classifier trains, CLIP-ES's maps
are the merged CAMs, its labels train the network, and its weights come from the weights rule or a checked path."""

import yaml

from tests.workflow_helpers import copy_workflow, job_counts, planned_jobs, run
from wsss.pipeline.experiments import deep_merge

CLIP_ES = {"cam": {"source": "clip_es"}, "segmentation": {"labels": "clip_es"}}


def test_clip_es_plans_its_steps_and_no_classifier(tmp_path):
    root = copy_workflow(tmp_path / "project")
    (root / "clip.yaml").write_text(yaml.safe_dump(CLIP_ES))
    result = run(root, "-n", configfiles=("tiny.yaml", "clip.yaml"))
    jobs = job_counts(result.stdout)
    assert "train_classifier" not in jobs and "cams" not in jobs
    assert jobs["clip_weights"] == 1 and jobs["clip_es"] == 2 and jobs["clip_es_labels"] == 2  # per shard
    assert jobs["merge_cams"] == 2 and jobs["train_segmentation"] == 2  # on CLIP-ES's labels, and the bound
    assert "results/segmentation/clip_es/model.pt" in result.stdout
    # the default run plans none of it
    assert not {"clip_es", "clip_es_labels", "clip_weights"} & set(planned_jobs(root))


def test_a_missing_weights_file_names_its_key(tmp_path):
    root = copy_workflow(tmp_path / "project")
    (root / "clip.yaml").write_text(yaml.safe_dump(deep_merge(CLIP_ES, {"clip_es": {"weights": "no/ViT.pt"}})))
    result = run(root, "-n", check=False, configfiles=("tiny.yaml", "clip.yaml"))
    assert (
        result.returncode != 0
        and "config key clip_es.weights: 'no/ViT.pt' is not a file" in result.stdout + result.stderr
    )
