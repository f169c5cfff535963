from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.nets.clip import CLIP_VIT_B16_SHA256, clip_model, read_clip_weights
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.clip_es import class_texts, compute_clip_es

params = snakemake.params
settings = params.settings["clip_es"]  # registry Step.settings
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
model = clip_model(read_clip_weights(snakemake.input.weights, CLIP_VIT_B16_SHA256))
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    compute_clip_es(
        model,
        dataset,
        dataset.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
        load_labels(snakemake.input.labels),
        class_texts(params.classes, settings["class_names"]),
        settings,
        work,
        device(),
    )
