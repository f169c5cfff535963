"""The registry is the one list of steps and scored stages: the schema agrees with it, and a stage added to
it alone is scored, tabled and titled by the workflow."""

import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers import library_with_a_new_stage
from tests.workflow_helpers import REPO
from wsss.data.kinds import DATASET_KEYS, KINDS
from wsss.nets.backbones import ARCHS, OUTPUT_STRIDES
from wsss.nets.models import POOLINGS, RESTRICTED_STRIDES, SEGMENTATION_ARCHS, SEGMENTATION_NETWORKS, UPSAMPLINGS
from wsss.pipeline import registry
from wsss.pipeline.experiments import Grid
from wsss.seeds.cam import METHODS
from wsss.training.loop import OPTIMIZERS

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_the_schema_enums_are_the_librarys():
    """The schema's enums are the registry's stages and sections and the library's names, in their order."""
    properties = SCHEMA["properties"]
    assert properties["rank_by"]["enum"] == list(registry.RANKED_STAGES)
    assert set(properties["experiments"]["additionalProperties"]["properties"]) == set(registry.OVERRIDABLE)
    # an experiment may override what the steps read (with erasing rounds, the erasing threshold too; with
    # saliency, its source), but not the data: the shards and the val split the predictions are made on are
    # every run's; with cam.source recam (one round), ReCAM's section; with CLIP-ES's maps, its section
    sections = (
        registry.read_sections(
            {
                **CONFIG,
                "erasing": {**CONFIG["erasing"], "rounds": 2},
                "saliency": {**CONFIG["saliency"], "source": "fine_grained"},
                "pseudo_mask": {**CONFIG["pseudo_mask"], "saliency_threshold": 0.5},
            }
        )
        + registry.read_sections(
            {**CONFIG, "erasing": {**CONFIG["erasing"], "rounds": 1}, "cam": {**CONFIG["cam"], "source": "recam"}}
        )
        + registry.read_sections({**CONFIG, "cam": {**CONFIG["cam"], "source": "clip_es"}})
    )
    assert set(registry.OVERRIDABLE) == set(sections) - {"shards", "splits"}
    assert SCHEMA["definitions"]["backbone"]["enum"] == list(ARCHS)
    assert SCHEMA["definitions"]["optimizer"]["enum"] == list(OPTIMIZERS)
    assert SCHEMA["definitions"]["training"]["properties"]["output_stride"]["enum"] == list(OUTPUT_STRIDES)
    assert properties["cam"]["properties"]["method"]["enum"] == list(METHODS)
    assert properties["cam"]["properties"]["source"]["enum"] == list(registry.CAM_SOURCES)
    assert properties["classifier"]["properties"]["pooling"]["enum"] == list(POOLINGS)
    assert properties["classifier"]["properties"]["method"]["enum"] == list(registry.CLASSIFIER_METHODS)
    assert properties["segmentation"]["properties"]["arch"]["enum"] == list(SEGMENTATION_ARCHS)
    assert properties["segmentation"]["properties"]["upsampling"]["enum"] == list(UPSAMPLINGS)
    assert properties["segmentation"]["properties"]["loss"]["enum"] == list(registry.SEGMENTATION_LOSSES)
    assert properties["dataset"]["properties"]["kind"]["enum"] == list(KINDS)
    # every key a kind reads is a key of the section, and the default config leaves them all unset
    assert set(properties["dataset"]["required"]) == {"kind", *DATASET_KEYS}
    assert {key for kind in KINDS.values() for key in kind.keys} <= set(DATASET_KEYS)
    assert {key: CONFIG["dataset"][key] for key in DATASET_KEYS} == DATASET_KEYS
    # the archs' output strides: the schema's if/then rules name the library's constraints
    rules = {
        tuple(r["if"]["properties"]["arch"].get("enum", [r["if"]["properties"]["arch"].get("const")])): r["then"]
        for r in properties["segmentation"]["allOf"]
        if "if" in r
    }
    schema_strides = {
        arch: then["properties"]["output_stride"].get("enum", [then["properties"]["output_stride"].get("const")])
        for archs, then in rules.items()
        for arch in archs
    }
    assert schema_strides == {arch: list(strides) for arch, strides in RESTRICTED_STRIDES.items()}
    # the networks whose settings include upsampling are those whose builder reads it
    reading = [name for name, entry in SEGMENTATION_NETWORKS.items() if entry.reads_upsampling]
    assert reading == list(registry.UPSAMPLING_ARCHS)


def test_stage_names_parse_back_and_carry_their_titles():
    names = registry.stage_names(CONFIG)
    assert names[: CONFIG["erasing"]["rounds"]] == [f"cam_r{r}" for r in range(CONFIG["erasing"]["rounds"])]
    assert names[-2:] == [registry.RESULT_STAGE, registry.BOUND_STAGE]
    assert registry.stage("cam_r12", CONFIG) == (registry.STAGES[0], 12)
    assert registry.stage_title("cam_r3") == "CAM round 3" and registry.stage_title("pseudo_mask") == "pseudo-mask"
    with pytest.raises(ValueError, match="unknown stage 'cam_rx'"):
        registry.stage("cam_rx", CONFIG)
    without_oracle = {**CONFIG, "cam": {**CONFIG["cam"], "oracle_thresholds": []}}
    assert "cam_oracle" in names and "cam_oracle" not in registry.stage_names(without_oracle)


def test_stages_are_scored_where_their_split_has_masks(monkeypatch):
    """Photos with tags and masks of val only: the seeds' stages on train are made but not scored, the network
    is scored on val, and the fully-supervised bound (it trains on train masks) is left out; summary.txt says
    why for each."""
    monkeypatch.setattr(registry, "masked_splits", lambda config: frozenset({"val"}))
    config = {**CONFIG, "random_walk": {**CONFIG["random_walk"], "enabled": False}}
    assert registry.stage_names(config) == ["segmentation"]
    made = registry.stage_names(config, scored=False)
    assert made == ["cam_r0", "cam_r1", "cam", "cam_oracle", "crf", "pseudo_mask", "segmentation"]
    assert registry.step("segmentation").args(config) == ["pseudo_mask"]
    assert registry.step("predictions").args(config) == ["pseudo_mask"]
    unscored = registry.unscored_stages(config)
    assert unscored["crf"] == "no masks for train" and unscored["cam_r1"] == "no masks for train"
    assert unscored["fully_supervised"] == "not trained: no masks for train" and "segmentation" not in unscored
    assert "random_walk" not in unscored  # switched off, not unscored
    monkeypatch.setattr(registry, "masked_splits", lambda config: frozenset())
    assert registry.stage_names(config) == [] and set(registry.unscored_stages(config)) == {*made, "fully_supervised"}
    monkeypatch.setattr(registry, "masked_splits", lambda config: frozenset({"train", "val"}))
    assert registry.unscored_stages(config) == {} and "fully_supervised" in registry.stage_names(config)


def test_label_sources_are_scored_stages_of_their_steps():
    """segmentation.labels names a stage, and LABEL_STEPS the step that stage scores (the report ranks the
    train gallery by that stage); the schema offers exactly these."""
    for name, step_name in registry.LABEL_STEPS.items():
        assert registry.stage_named(name).step == step_name
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["segmentation"]["properties"]["labels"]["enum"] == list(registry.LABEL_STEPS)


def test_every_step_reads_upstream_steps_of_the_registry():
    """The step graph is closed (every upstream step exists) and acyclic (closure terminates), and a run's
    result needs every step except the CRF stage's (scored, not used further), the segmented new photos (they
    follow the network), the saliency maps and ReCAM's two (switched off) and, on the confident pseudo-masks,
    IRN's two; on IRN's random-walk labels it needs those too. With cam.source recam the merged CAMs are
    ReCAM's maps, on the round-0 classifier, and the round-0 CAMs are still made (stage cam_r0)."""
    on_masks = dict(CONFIG, segmentation=dict(CONFIG["segmentation"], labels="pseudo_mask"))
    needed = {step for step, _ in registry.closure(on_masks, "predictions", "pseudo_mask")}
    off = {"segment", "saliency", "recam", "recam_cams", "clip_es", "clip_es_labels"}
    assert needed == set(registry.STEPS) - {"crf", "irn", "random_walk", *off}
    on_walk = dict(CONFIG, segmentation=dict(CONFIG["segmentation"], labels="random_walk"))
    needed = {step for step, _ in registry.closure(on_walk, "predictions", "random_walk")}
    assert needed == set(registry.STEPS) - {"crf", *off}
    recam = dict(on_walk, erasing=dict(CONFIG["erasing"], rounds=1), cam=dict(CONFIG["cam"], source="recam"))
    closure = registry.closure(recam, "predictions", "random_walk")
    assert ("recam_cams", None) in closure and ("classifier", 0) in closure and ("cams", 0) not in closure
    assert registry.step("merged_cams").upstream(recam, None) == [("recam_cams", None)]
    assert registry.step("cams").args(recam) == [0]  # scored as cam_r0
    # the CAMs' settings leave the source out: a CAM run and a ReCAM run share the classifier and its CAMs
    assert registry.own_settings(recam, "cams", 0) == registry.own_settings(on_walk, "cams", 0)
    # CLIP-ES's maps are the merged CAMs, without a classifier; its labels the network's
    on_clip = dict(
        CONFIG, cam=dict(CONFIG["cam"], source="clip_es"), segmentation=dict(CONFIG["segmentation"], labels="clip_es")
    )
    needed = registry.closure(on_clip, "predictions", "clip_es")
    assert [step for step, _ in needed] == ["clip_es", "merged_cams", "clip_es_labels", "segmentation", "predictions"]
    assert registry.step("classifier").args(on_clip) == [] and registry.step("cams").args(on_clip) == []
    assert "cam_r0" not in registry.stage_names(on_clip, scored=False) and "clip_es" in registry.stage_names(on_clip)
    assert registry.closure(on_walk, "segment")[-2:] == [("segmentation", "random_walk"), ("segment", None)]
    # the result stage scores the network on the run's own pseudo-labels; the bound's needs no CAM
    assert registry.stage(registry.RESULT_STAGE, on_walk) == (registry.stage_named("segmentation"), "random_walk")
    assert registry.closure(on_walk, "predictions", "ground_truth") == [
        ("segmentation", "ground_truth"),
        ("predictions", "ground_truth"),
    ]
    grid = Grid(CONFIG)
    assert grid.step_outputs("default", "cams", 1) == [f"results/cams/r1/shard{k}" for k in range(CONFIG["shards"])]
    assert grid.step_outputs("default", "classifier", 0, files=True) == [
        "results/classifier/r0/model.pt",
        "results/classifier/r0/history.parquet",
    ]


def test_a_stage_added_to_the_registry_alone_is_known_to_the_library(tmp_path):
    src = library_with_a_new_stage(tmp_path)
    code = (
        "import yaml; from wsss.pipeline import registry; from wsss.pipeline.experiments import step_settings; "
        "config = yaml.safe_load(open('config/config.yaml')); names = registry.stage_names(config); "
        "print(registry.stage_title('crf_again'), names.index('crf_again') - names.index('crf'), "
        "step_settings(config, 'metrics', 'crf_again')['scored'] == step_settings(config, 'crf'))"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["CRF", "again", "1", "True"]
