"""IRN's inter-pixel relations and random walk: pair offsets, affinity targets, the sparse walk against IRN's
dense formulation, the walk on a toy image, the boundary network's training and the label maps' format."""

import numpy as np
import pytest
import torch

from tests import irn_reference as irn
from tests.helpers import (
    IRN_SETTINGS,
    WALK,
    cpu_job,
    train_killed_and_resumed,
)
from wsss.data.labels import image_labels, load_labels
from wsss.data.voc import IGNORE, VOC_CLASSES, read_image
from wsss.seeds.random_walk import (
    affinity_loss,
    affinity_targets,
    directions,
    edge_affinities,
    path_points,
    random_walk,
    to_grid,
    walk_label,
    walk_to_label,
)
from wsss.training.datasets import TrainingImages
from wsss.training.irn import EdgeNet, edge_map, grid_labels, load_irn, train_irn


def test_directions_are_irns_half_disc():
    # IRN's PathIndex(radius=5): 4 offsets along the row, then 9 + 9 + 7 + 5 below it
    offsets = directions(5)
    assert len(offsets) == 34 and len(set(offsets)) == 34
    assert offsets[:4] == ((0, 1), (0, 2), (0, 3), (0, 4))
    assert all(dy > 0 or (dy == 0 and dx > 0) for dy, dx in offsets)  # never both d and -d
    assert all(dy * dy + dx * dx < 25 for dy, dx in offsets)
    assert len(directions(10)) == 152
    with pytest.raises(ValueError, match="radius"):
        directions(1)


def test_path_points_follow_the_line():
    assert path_points(0, 3) == ((0, 0), (0, 1), (0, 2), (0, 3))
    # the diagonal: its cells and their side neighbours (1/sqrt(2) from the line), not the far corners
    assert set(path_points(2, 2)) == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)}
    # a steep line: cells within one cell of it, both ends included
    points = path_points(3, -1)
    assert (0, 0) in points and (3, -1) in points
    assert all((3 * x + y) ** 2 < 10 for y, x in points)


def test_affinity_targets_on_a_hand_checked_map():
    # 1 x 4 map: background, class 3, class 3, not confident; radius 2 pairs each cell with its right neighbour
    labels = torch.tensor([[[0, 3, 3, IGNORE]]])
    background, foreground, different = affinity_targets(labels, 2)
    assert directions(2) == ((0, 1), (1, -1), (1, 0), (1, 1))
    right = 0  # the (0, 1) offset; the others leave the single-row map
    assert background[0, right, 0].tolist() == [False, False, False, False]
    assert foreground[0, right, 0].tolist() == [False, True, False, False]  # (3, 3)
    assert different[0, right, 0].tolist() == [True, False, False, False]  # (0, 3); (3, 255) is unused
    # every pair leaving the map, or touching 255, is in no set
    assert int((background | foreground | different).sum()) == 2


def test_affinity_targets_on_a_2d_map():
    labels = torch.tensor([[[0, 0], [5, IGNORE]]])
    background, foreground, different = affinity_targets(labels, 2)
    offsets = directions(2)
    assert background[0, offsets.index((0, 1)), 0, 0]  # (0,0)-(0,1): both background
    assert different[0, offsets.index((1, 0)), 0, 0]  # (0,0)-(1,0): background and class 5
    assert different[0, offsets.index((1, -1)), 0, 1]  # (0,1)-(1,0): background and class 5
    assert not (background | foreground | different)[0, offsets.index((1, 1)), 0, 0]  # (0,0)-(1,1): 255
    assert int(foreground.sum()) == 0 and int((background | foreground | different).sum()) == 3


def test_edge_affinities_drop_across_a_boundary():
    edge = torch.zeros(1, 6, 6)
    edge[0, :, 3] = 1.0  # a vertical boundary at column 3
    affinity = edge_affinities(edge, 3)
    right = directions(3).index((0, 1))
    assert affinity[0, right, 2, 1] == 1.0  # columns 1-2: no boundary between
    assert affinity[0, right, 2, 2] == 0.0  # columns 2-3: the boundary itself
    assert affinity[0, right, 2, 5] == 0.0  # the partner is outside the map


def test_loss_prefers_a_boundary_between_classes():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :, 4:] = 7
    right_place = torch.zeros(1, 8, 8)
    right_place[0, :, 4] = 1.0
    wrong_place = torch.zeros(1, 8, 8)
    wrong_place[0, 4, :] = 1.0
    assert affinity_loss(right_place, labels, 3) < affinity_loss(wrong_place, labels, 3)
    assert affinity_loss(right_place, labels, 3) < affinity_loss(torch.zeros(1, 8, 8), labels, 3)


def test_sparse_walk_equals_irns_dense_walk():
    generator = torch.Generator().manual_seed(0)
    edge = torch.rand(9, 11, generator=generator) * 0.6
    cams = torch.rand(2, 9, 11, generator=generator)
    expected = irn.propagate_to_edge(edge_affinities, cams, edge, 5, 10, 8)
    assert torch.allclose(random_walk(cams, edge, 5, 10, 8), expected, rtol=1e-4, atol=1e-6)


def test_walk_spreads_over_the_object_and_stops_at_its_boundary():
    # a 24 x 24 grid: an object (rows 4-19, columns 4-13) closed by a boundary; its CAM covers only its left half
    edge = torch.zeros(24, 24)
    edge[3, 3:15] = edge[20, 3:15] = 1.0
    edge[3:21, 3] = edge[3:21, 14] = 1.0
    cams = torch.zeros(1, 24, 24)
    cams[0, 4:20, 4:9] = 1.0
    walked = random_walk(cams, edge, 5, 10, 8)[0]
    inside, outside = (
        walked[4:20, 4:14],
        torch.cat([walked[:3].flatten(), walked[21:].flatten(), walked[:, 15:].flatten()]),
    )
    assert float(inside[:, 5:].min()) > 0.5 * float(inside.max())  # the uncovered right half is reached
    assert float(outside.max()) < 1e-3 * float(inside.max())  # nothing crosses the boundary
    label = walk_to_label(walked[None], [12], (96, 96), (96, 96), 0.25)
    assert label.dtype == np.uint8 and label.shape == (96, 96)
    assert (label[20:76, 20:52] == 12).all() and (label[:8] == 0).all() and (label[:, 64:] == 0).all()


def test_to_grid_averages_four_by_four_cells():
    cams = torch.arange(16.0).reshape(1, 4, 4).repeat(1, 2, 2)  # 8 x 8
    grid = to_grid(cams, (8, 8), (2, 2))
    assert grid.shape == (1, 2, 2) and torch.allclose(grid, torch.full((1, 2, 2), 7.5))
    # an image side that is not a multiple of 4: the last cell is padded with the border values
    assert to_grid(torch.ones(1, 9, 6), (9, 6), (3, 2)).shape == (1, 3, 2)


def test_edge_net_grid_and_frozen_backbone():
    torch.manual_seed(0)
    model = EdgeNet("resnet18", 16)
    assert all(not p.requires_grad for p in model.features.parameters())
    assert {id(p) for p in model.head_parameters()} == {id(p) for p in model.parameters() if p.requires_grad}
    model.train()
    assert not model.features.training and model.edge.training
    logits = model(torch.randn(2, 3, 97, 130))
    assert logits.shape == (2, 1, 25, 33)  # ceil(H / 4) x ceil(W / 4)
    edge = edge_map(model.eval(), np.zeros((97, 130, 3), np.uint8), "cpu")
    assert edge.shape == (25, 33) and float(edge.min()) >= 0 and float(edge.max()) <= 1
    assert grid_labels(torch.zeros(2, 96, 96, dtype=torch.long), (24, 24)).shape == (2, 24, 24)


@pytest.mark.parametrize("size", [(96, 96), (512, 384), (100, 60)])
def test_affinity_targets_sample_the_labels_as_pil_nearest(size):
    """grid_labels reads the (square-cropped, side a multiple of 4) label map as IRN's pil_rescale(label, 0.25,
    0) does: pixels 2, 6, 10, ... (torch's "nearest" would read 0, 4, 8, ...)."""
    labels = np.random.default_rng(0).integers(0, 21, size=size).astype(np.uint8)
    sampled = grid_labels(torch.from_numpy(labels)[None].long(), (size[0] // 4, size[1] // 4))[0].numpy()
    np.testing.assert_array_equal(sampled, irn.pil_rescale_nearest(labels, 0.25))
    np.testing.assert_array_equal(sampled, labels[2::4, 2::4])


def edge_net_with_random_head(arch="resnet18", inference_size=64) -> EdgeNet:
    """Fixed random weights, the head's GroupNorm affine parameters included (they start at 1 and 0)."""
    torch.manual_seed(0)
    model = EdgeNet(arch, 16, inference_size=inference_size)
    with torch.no_grad():
        for parameter in model.head_parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return model.eval()


@pytest.mark.parametrize("size", [(37, 53), (64, 20), (61, 64)])
def test_boundary_map_is_irns_edge_displacement(size):
    """edge_map: the image and its flip padded to the training crop (512 in IRN; here inference_size 64), the
    stem and four stages feeding the branch, cropped to the image's cells, the sigmoid of the two logits'
    mean: IRN's EdgeDisplacement written out (tests/irn_reference.py)."""
    model = edge_net_with_random_head()
    image = np.random.default_rng(1).integers(0, 256, size=(*size, 3)).astype(np.uint8)
    edge = edge_map(model, image, "cpu")
    assert edge.shape == (-(-size[0] // 4), -(-size[1] // 4))
    torch.testing.assert_close(edge, irn.edge_displacement(model, image, 64), rtol=0, atol=2e-5)
    if min(size) < 48:  # the padding matters: GroupNorm's statistics over the padded frame differ
        unpadded = edge_net_with_random_head(inference_size=None)
        assert (edge_map(unpadded, image, "cpu") - edge).abs().max() > 1e-3


def test_an_image_larger_than_the_crop_is_not_padded_or_cut():
    model = edge_net_with_random_head(inference_size=32)
    image = np.random.default_rng(2).integers(0, 256, size=(41, 70, 3)).astype(np.uint8)
    with torch.no_grad():
        logits = model(irn.flip_pair(image))
    expected = torch.sigmoid(logits[0, 0] / 2 + logits[1, 0].flip(-1) / 2)
    torch.testing.assert_close(edge_map(model, image, "cpu"), expected, rtol=0, atol=2e-5)


def test_edge_net_reads_the_stem_where_it_ends_at_stride_4():
    """IRN's fc_edge1 reads ResNet's stem (after the max pool); EfficientNet-Lite0's stem ends at stride 2, so
    there the four stages alone feed the boundary branch."""
    resnet = EdgeNet("resnet18")
    assert [b[0].in_channels for b in resnet.branches] == [64, 64, 128, 256, 512]
    assert resnet.edge.in_channels == 5 * 32
    lite = EdgeNet("efficientnet_lite0")
    assert [b[0].in_channels for b in lite.branches] == lite.features.channels and lite.edge.in_channels == 4 * 32


def test_train_irn_is_deterministic_and_its_labels_are_dense(demo_data, tmp_path):
    ids = demo_data.split_ids("train")
    masks = {i: demo_data.mask_path(i) for i in ids}
    runs = []
    for name in ("a", "b"):
        job = cpu_job(tmp_path, name)
        history = train_irn(TrainingImages(demo_data, ids, masks, 21), IRN_SETTINGS, job)
        assert not job.checkpoint_path.exists()  # a finished run leaves no checkpoint
        runs.append((history, load_irn(job.model_path)))
    (history, model), (other_history, other) = runs
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    assert history["loss"].tolist() == other_history["loss"].tolist()
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key

    labels_path = tmp_path / "labels.parquet"
    image_labels(demo_data, ids, len(VOC_CLASSES)).to_parquet(labels_path)
    labels = load_labels(labels_path)
    image_id = next(i for i in ids if labels[i])
    image = read_image(demo_data.image_path(image_id))
    cams = np.random.default_rng(0).random((len(labels[image_id]), *image.shape[:2])).astype(np.float16)

    def edges(img, long_side):
        return edge_map(model, img, "cpu", long_side)

    for long_side in (None, 48):
        label = walk_label(image, cams, labels[image_id], edges, dict(WALK, long_side=long_side), "cpu")
        assert label.dtype == np.uint8 and label.shape == image.shape[:2]
        assert set(np.unique(label)) <= {0, *labels[image_id]} and IGNORE not in label
    assert not walk_label(image, cams[:0], [], edges, WALK, "cpu").any()  # no class: all background


def test_killed_irn_training_resumes_bit_identical(demo_data, tmp_path, monkeypatch):
    straight, resumed, checkpoint, a, b = train_killed_and_resumed(demo_data, tmp_path, monkeypatch, "cpu")
    assert checkpoint["epoch"] == 2 and list(resumed["epoch"]) == [1, 2, 3]
    np.testing.assert_array_equal(resumed["loss"], straight["loss"])
    assert all(torch.equal(value, b.state_dict()[key]) for key, value in a.state_dict().items())
