from wsss.data.demo import make_demo_dataset
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
demo = snakemake.params.demo
make_demo_dataset(
    snakemake.output[0],
    class_names=demo["classes"],
    num_train=demo["num_train"],
    num_val=demo["num_val"],
    size_range=tuple(demo["size_range"]),
    max_objects=demo["max_objects"],
    background_only_fraction=demo["background_only_fraction"],
    body_colour_prob=demo["body_colour_prob"],
    seed=demo["seed"],
)
