from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.cam import compute_cams
from wsss.training.classifier import load_classifier

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    compute_cams(
        load_classifier(snakemake.input.model),  # the classifier with ReCAM's folded head (wsss.training.recam)
        dataset,
        dataset.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
        load_labels(snakemake.input.labels),
        params.settings["cam"],
        work,
        device(),
    )
