from wsss.data.index import write_index
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
params = snakemake.params
write_index(
    snakemake.input.voc,
    snakemake.output[0],
    params.splits,
    params.num_classes,
    sbd_root=snakemake.input.sbd or None,
    expected_train_aug=snakemake.config["expected_train_aug"],  # a check of the lists, no param
)
