from functools import partial

from wsss.nets.hardware import device, for_inference
from wsss.runtime import setup
from wsss.seeds.masks import label_cam_shard
from wsss.seeds.random_walk import walk_label
from wsss.training.irn import edge_map, load_irn

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
on = device()
model = for_inference(load_irn(snakemake.input.model), on)
edges = partial(edge_map, model, device=on)
to_label = partial(walk_label, edge_fn=edges, settings=params.settings["random_walk"], device=on)
# grid_cams: the walk spreads the CAM step's stride-4 CAMs, as IRN's does
label_cam_shard(snakemake.input, snakemake.output[0], snakemake.wildcards.shard, dict(params.items()), to_label, True)
