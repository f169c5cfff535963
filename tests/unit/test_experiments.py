import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import REPO
from wsss.pipeline.experiments import DEFAULT, ExperimentError, Grid, deep_merge, experiment_configs, step_settings
from wsss.scoring.tables import experiment_costs, format_ranking, ranking_table


@pytest.fixture(scope="module")
def base():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def grid(base, **experiments):
    return Grid(dict(base, experiments=experiments))


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"cam": {"scales": [1.0, 0.5], "method": "cam"}, "seed": 0}
    merged = deep_merge(base, {"cam": {"scales": [2.0]}, "seed": 3})
    assert merged == {"cam": {"scales": [2.0], "method": "cam"}, "seed": 3}
    assert base["cam"]["scales"] == [1.0, 0.5]  # the base is left alone


def test_no_grid_is_one_default_experiment_in_results(base):
    only = Grid(base)
    assert only.names == [DEFAULT] and not only.is_grid
    assert only.folder(DEFAULT) == "" and only.name_of("") == DEFAULT
    assert experiment_configs(base)[DEFAULT] is base


def test_seeds_replicate_every_experiment(base):
    replicated = Grid(dict(base, seeds=[0, 1, 2]))
    assert replicated.is_grid and replicated.names == ["seed0", "seed1", "seed2"]
    assert [replicated.configs[name]["seed"] for name in replicated.names] == [0, 1, 2]
    assert {replicated.experiment_of(name) for name in replicated.names} == {DEFAULT}
    assert replicated.folder("seed1") == "seed1/" and replicated.name_of("seed1/") == "seed1"
    # nothing that depends on the training seed is shared between seeds
    for step, arg in (("classifier", 0), ("cams", 1), ("crf", None), ("segmentation", "ground_truth")):
        assert replicated.owner("seed2", step, arg) == "seed2"
    both = Grid(dict(base, seeds=[4, 5], experiments={"a": {}, "b": {"cam": {"method": "gradcampp"}}}))
    assert both.names == ["a/seed4", "a/seed5", "b/seed4", "b/seed5"]
    assert both.experiment_of("b/seed5") == "b" and both.folder("b/seed5") == "b/seed5/"
    assert both.owner("b/seed5", "classifier", 0) == "a/seed5"  # same seed, same classifier settings
    with pytest.raises(ExperimentError, match="experiments.a: overrides seed"):
        Grid(dict(base, seeds=[0, 1], experiments={"a": {"seed": 3}}))
    with pytest.raises(ExperimentError, match="experiments.seed1: the name is reserved"):
        grid(base, seed1={})


def test_bad_experiments_are_named(base):
    with pytest.raises(ExperimentError, match="experiments.cams: the name is reserved"):
        grid(base, cams={})
    with pytest.raises(ExperimentError, match="experiments.x: cannot override shards"):
        grid(base, x={"shards": 4})


def test_changing_the_cam_method_shares_the_classifier_only(base):
    g = grid(base, cam={"erasing": {"rounds": 1}}, pp={"erasing": {"rounds": 1}, "cam": {"method": "gradcampp"}})
    assert g.folder("pp") == "pp/" and g.name_of("pp/") == "pp"
    assert g.owner("pp", "classifier", 0) == "cam"
    for step, arg in [
        ("cams", 0),
        ("merged_cams", None),
        ("crf", None),
        ("pseudo_masks", None),
        ("segmentation", "pseudo_mask"),
        ("metrics", "segmentation"),
    ]:
        assert g.owner("pp", step, arg) == "pp", step
    # the fully-supervised bound does not depend on CAMs at all
    assert g.owner("pp", "segmentation", "ground_truth") == "cam"
    assert g.owner("pp", "metrics", "fully_supervised") == "cam"


def test_an_experiment_without_the_walk_has_neither_irn_nor_its_stage(base):
    """random_walk.enabled: false leaves out IRN's two steps and the random_walk stage, and shares everything
    else with the run that walks (enabled decides whether the walk runs, not any file)."""
    g = grid(base, walk={}, no_walk={"random_walk": {"enabled": False}})
    assert [g.runs("no_walk", step) for step in ("irn", "random_walk")] == [False, False]
    assert not g.runs("no_walk", "metrics", "random_walk") and g.runs("walk", "metrics", "random_walk")
    for step, arg in [("classifier", 0), ("pseudo_masks", None), ("segmentation", "pseudo_mask")]:
        assert g.owner("no_walk", step, arg) == "walk", step
    assert g.owner("no_walk", "metrics", "segmentation") == "walk"
    switched_off = deep_merge(g.configs["walk"], {"random_walk": {"enabled": False}})
    assert step_settings(switched_off, "random_walk") == step_settings(g.configs["walk"], "random_walk")


def test_an_inference_experiment_shares_the_trained_networks(base):
    """Test-time inference decides the predictions, not the networks: an experiment that changes only it
    re-predicts with the networks (and the bound) another experiment trained. Other pseudo-labels are another
    network, in the folder named for them."""
    crf = {"iterations": 5, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 10, "srgb": 3, "compat": 4}}
    g = grid(
        base,
        a={},
        ms={"segmentation": {"inference": {"scales": [0.75, 1.0], "flip": True, "crf": crf}, "long_side": 96}},
        walk={"segmentation": {"labels": "random_walk"}},
    )
    for supervision in ("pseudo_mask", "ground_truth"):
        assert g.owner("ms", "segmentation", supervision) == "a"
        assert g.owner("ms", "predictions", supervision) == "ms"
    assert g.step_outputs("ms", "segmentation", "pseudo_mask") == ["results/a/segmentation/pseudo_mask/model.pt"]
    assert g.scored_outputs("ms", "segmentation") == ["results/ms/segmentation/pseudo_mask/predictions"]
    assert not g.runs("walk", "segmentation", "pseudo_mask")
    assert g.scored_outputs("walk", "segmentation") == ["results/walk/segmentation/random_walk/predictions"]
    assert g.owner("walk", "segmentation", "ground_truth") == "a"


def test_a_method_reads_only_its_own_sub_section(base):
    """classifier.<method> decides the classifier only when it is classifier.method (registry.own_settings)."""
    g = grid(
        base,
        cam={},
        cam_acol_keys={"classifier": {"acol": {"threshold": 0.3}, "multi_dilation": {"rates": [1, 2]}}},
        acol={"classifier": {"method": "acol"}},
        acol_seam_keys={"classifier": {"method": "acol", "seam": {"scale": 0.5}}},
        acol_low={"classifier": {"method": "acol", "acol": {"threshold": 0.3}}},
    )
    assert g.owner("cam_acol_keys", "classifier", 0) == g.owner("cam_acol_keys", "segmentation", "pseudo_mask") == "cam"
    assert g.owner("acol", "classifier", 0) == "acol" and g.owner("acol", "cams", 0) == "acol"
    assert g.owner("acol_seam_keys", "classifier", 0) == "acol"
    assert g.owner("acol_low", "classifier", 0) == "acol_low"
    assert g.owner("acol", "segmentation", "ground_truth") == "cam"


def test_an_erasing_round_reuses_the_rounds_before_it(base):
    g = grid(base, one={"erasing": {"rounds": 1}}, two={"erasing": {"rounds": 2}}, three={"erasing": {"rounds": 3}})
    assert g.owner("two", "classifier", 0) == g.owner("two", "cams", 0) == "one"
    assert g.owner("two", "metrics", "cam_r0") == "one"
    # round 1 is computed by an experiment that runs it, not by "one" (1 round) although its settings agree
    assert g.owner("two", "classifier", 1) == g.owner("three", "cams", 1) == "two"
    assert g.owner("three", "classifier", 2) == "three"
    assert g.owner("two", "merged_cams") == "two" and g.owner("three", "merged_cams") == "three"


def test_later_steps_split_where_their_own_keys_differ(base):
    g = grid(
        base,
        a={},
        fg={"pseudo_mask": {"fg_threshold": 0.7}},
        thr={"cam": {"eval_threshold": 0.5}},
        seed={"seed": 1},
        erase={"erasing": {"threshold": 0.8}},
    )
    assert g.owner("fg", "crf") == "a" and g.owner("fg", "pseudo_masks") == "fg"
    # the scoring threshold changes the CRF and the scores, not the CAM files
    assert g.owner("thr", "cams", 1) == "a" and g.owner("thr", "metrics", "cam") == "thr"
    assert g.owner("thr", "crf") == "thr" and g.owner("thr", "pseudo_masks") == "a"
    assert g.owner("seed", "classifier", 0) == "seed" and g.owner("seed", "segmentation", "ground_truth") == "seed"
    # the erasing threshold starts to matter from round 1 on
    assert g.owner("erase", "cams", 0) == "a" and g.owner("erase", "classifier", 1) == "erase"


def test_settings_carry_everything_upstream(base):
    changed = deep_merge(base, {"classifier": {"lr": base["classifier"]["lr"] * 2}})
    for step, arg in [
        ("cams", 1),
        ("merged_cams", None),
        ("pseudo_masks", None),
        ("segmentation", "pseudo_mask"),
        ("metrics", "crf"),
    ]:
        assert step_settings(changed, step, arg) != step_settings(base, step, arg), step
    assert step_settings(changed, "segmentation", "ground_truth") == step_settings(base, "segmentation", "ground_truth")


def write_benchmark(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\n" + f"{seconds}\t0:00:00\t1\n")
    return str(path)


def test_costs_split_own_and_shared_jobs(tmp_path):
    shared = write_benchmark(tmp_path / "results/a/benchmarks/train_classifier/r0.tsv", 60)
    own = [
        ("cams", write_benchmark(tmp_path / "results/b/benchmarks/cams/r0/shard0.tsv", 10)),
        ("crf", write_benchmark(tmp_path / "results/b/benchmarks/crf/shard0.tsv", 5)),
        ("segmentation", write_benchmark(tmp_path / "results/b/benchmarks/train_segmentation/x.tsv", 20)),
    ]
    costs = experiment_costs([("classifier", shared), *own], str(tmp_path / "results/b/"))
    assert costs == {"total_s": 95, "own_s": 35, "classifier_s": 60, "cams_s": 10, "masks_s": 5, "segmentation_s": 20}


def test_ranking_orders_by_the_chosen_stage():
    rows = []
    for name, figures in {"a": (0.4, 0.5, 0.30), "b": (0.5, 0.6, 0.20), "c": (0.3, 0.4, 0.35)}.items():
        for stage, miou in zip(["cam", "pseudo_mask", "segmentation"], figures):
            rows.append(
                {
                    "experiment": name,
                    "seed": 0,
                    "stage": stage,
                    "split": "val" if stage == "segmentation" else "train",
                    "miou": miou,
                }
            )
        rows.append({"experiment": name, "seed": 0, "stage": "fully_supervised", "split": "val", "miou": 0.5})
    summary = pd.DataFrame(rows)
    parts = {"classifier_s": 30.0, "cams_s": 30.0, "masks_s": 30.0, "segmentation_s": 30.0}
    costs = {name: {"total_s": 120.0, "own_s": 60.0, **parts} for name in "abc"}
    runs = {name: name for name in "abc"}
    table = ranking_table(summary, costs, runs, "segmentation")
    assert list(table["experiment"]) == ["c", "a", "b"] and list(table["rank"]) == [1, 2, 3]
    assert table.loc[0, "ratio_to_fully_supervised"] == pytest.approx(0.7)
    assert list(ranking_table(summary, costs, runs, "pseudo_mask")["experiment"]) == ["b", "a", "c"]
    text = format_ranking(table, "segmentation", dict(zip(summary["stage"], summary["split"])))
    assert text.splitlines()[0] == "Experiments ranked by segmentation mIoU (val)"
    assert text.splitlines()[2].split() == ["1", "c", "0.300", "0.400", "0.350", "0.700", *["0.5"] * 4, "1.0", "2.0"]
