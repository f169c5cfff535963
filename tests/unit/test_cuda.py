"""The CUDA path of IRN's steps, where a GPU is (skipped, saying so, elsewhere: CI has none): the boundary
network trained under float16 autocast with its gradient scaler and resumed from a checkpoint, and the
boundary map and the random walk on the GPU against the CPU. Bit-identity is not expected on a GPU; each
test states its tolerance."""

import functools

import numpy as np
import pytest
import torch

from tests.helpers import WALK, train_killed_and_resumed
from wsss.data.voc import read_image
from wsss.nets.hardware import for_inference
from wsss.seeds.random_walk import random_walk, walk_label
from wsss.training.irn import EdgeNet, edge_map

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_irn_trains_under_autocast_and_resumes(demo_data, tmp_path, monkeypatch):
    straight, resumed, checkpoint, a, b = train_killed_and_resumed(demo_data, tmp_path, monkeypatch, "cuda")
    assert checkpoint["epoch"] == 2 and checkpoint["scaler"]  # the gradient scaler's state is kept
    assert list(resumed["epoch"]) == [1, 2, 3] and np.isfinite(resumed["loss"]).all()
    # cuDNN and atomics: a resumed run agrees with an uninterrupted one to 1 % of the loss, not bit for bit
    np.testing.assert_allclose(resumed["loss"], straight["loss"], rtol=1e-2)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], rtol=5e-2, atol=5e-3, msg=key)


def test_boundary_map_in_float16_matches_float32():
    torch.manual_seed(0)
    model = EdgeNet("resnet18", 16).eval()
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cpu = edge_map(model, image, "cpu")  # float32
    gpu = edge_map(model.to("cuda", memory_format=torch.channels_last), image, "cuda")  # float16 autocast
    assert gpu.shape == cpu.shape
    assert float((gpu.cpu() - cpu).abs().max()) < 1e-2  # probabilities: 1 % absolute


def test_random_walk_on_cuda_matches_cpu(demo_data):
    generator = torch.Generator().manual_seed(0)
    edge = torch.rand(40, 50, generator=generator)
    cams = torch.rand(3, 40, 50, generator=generator)
    cpu = random_walk(cams, edge, 5, 10, 8)
    gpu = random_walk(cams.cuda(), edge.cuda(), 5, 10, 8).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-6)

    torch.manual_seed(0)
    model = EdgeNet("resnet18", 16).eval()
    image_id = demo_data.split_ids("train")[0]
    image = read_image(demo_data.image_path(image_id))
    cams = np.random.default_rng(0).random((2, *image.shape[:2])).astype(np.float16)
    labels = {}
    for device in ("cpu", "cuda"):
        edges = functools.partial(edge_map, model.to(device), device=device)
        labels[device] = walk_label(image, cams, [3, 8], edges, WALK, device)
    assert (labels["cpu"] == labels["cuda"]).mean() > 0.99  # float16 boundaries move a few pixels at most


def test_inference_switches_cudnn_off_training_keeps_it(monkeypatch):
    """Per-image inference sees a new size with nearly every image: cuDNN's set-up per size costs more than
    it saves (wsss.nets.hardware.for_inference has the figures), so inference runs without it."""
    monkeypatch.setattr(torch.backends.cudnn, "enabled", True)
    for_inference(EdgeNet("resnet18", 16), "cpu")
    assert torch.backends.cudnn.enabled  # CPU: untouched
    for_inference(EdgeNet("resnet18", 16), "cuda")
    assert not torch.backends.cudnn.enabled
