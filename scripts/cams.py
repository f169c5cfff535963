from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.cam import compute_cams
from wsss.seeds.erasing import eraser_for_round
from wsss.training.classifier import load_classifier

params = snakemake.params
settings = params.settings  # registry Step.settings: cam and, from round 1 on, erasing
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
threshold = settings["erasing"]["threshold"] if "erasing" in settings else None
eraser = eraser_for_round(
    snakemake.input.earlier_cams, threshold, snakemake.input.labels, dataset.split_ids(params.split)
)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    compute_cams(
        load_classifier(snakemake.input.model),
        dataset,
        dataset.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
        load_labels(snakemake.input.labels),
        settings["cam"],
        work,
        device(),
        eraser,
    )
