"""IRN's random walk (Ahn et al., CVPR 2019; jiwoon-ahn/irn misc/indexing.py, step/make_sem_seg_labels.py):
inter-pixel affinities from a class-boundary map, their training targets from confident pseudo-masks, and
the walk that spreads CAMs over the affinity graph into dense label maps.

Everything lives on the boundary map's stride-4 grid. A cell p is paired with p + d for every offset d of
directions(radius), one of each pair of opposite offsets; the pair's affinity is 1 minus the strongest
boundary on the line between them (path_points), so affinities are high inside an object and drop across
its boundary. The walk is a sparse matrix product repeated 2^exp_times times, never a dense N x N matrix:
memory grows with the number of cells, not its square.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from wsss.data.voc import IGNORE
from wsss.nets.transforms import long_side_size
from wsss.seeds.cam import upsample
from wsss.seeds.masks import label_keys

EPS = 1e-5  # IRN's guard in the affinity losses' logarithms


@cache
def directions(radius: int) -> tuple[tuple[int, int], ...]:
    """IRN's pair offsets (dy, dx): (0, 1..r-1), then every dy in 1..r-1 with |dx| < r and dy² + dx² < r².
    Each unordered pair of cells appears once."""
    if radius < 2:
        raise ValueError(f"radius must be at least 2, got {radius}")
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [
        (dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dy * dy + dx * dx < radius * radius
    ]
    return tuple(offsets)


@cache
def path_points(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """The cells on the way from (0, 0) to (dy, dx), both included: those of the bounding box closer than one
    cell to the line through the two (IRN's PathIndex)."""
    length_sq = dy * dy + dx * dx
    return tuple(
        (y, x)
        for y in range(min(0, dy), max(0, dy) + 1)
        for x in range(min(0, dx), max(0, dx) + 1)
        if (dy * x - dx * y) ** 2 < length_sq
    )


def _padded(grid: torch.Tensor, radius: int, fill) -> torch.Tensor:
    """Padded so that every offset of directions(radius) stays inside: radius left, right and below."""
    return F.pad(grid, (radius, radius, 0, radius), value=fill)


def _window(padded: torch.Tensor, radius: int, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """The padded grid seen from every cell p at p + (dy, dx)."""
    return padded[..., dy : dy + height, radius + dx : radius + dx + width]


def edge_affinities(edge: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, D, h, w): the affinity of every cell with its partner at directions(radius)[d], 1 minus the
    maximum of the boundary map edge (B, h, w, values in [0, 1]) on the path between them. A partner outside
    the map has affinity 0 (the map is padded with boundary, as in IRN)."""
    height, width = edge.shape[-2:]
    padded = _padded(edge, radius, 1.0)
    affinities = []
    for dy, dx in directions(radius):
        on_path = torch.stack([_window(padded, radius, y, x, height, width) for y, x in path_points(dy, dx)])
        affinities.append(1 - on_path.amax(0))
    return torch.stack(affinities, 1)


def affinity_targets(labels: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IRN's affinity labels from a (B, h, w) label map (255: not confident), each (B, D, h, w) bool:
    background pairs (both 0), foreground pairs (the same class > 0) and pairs of different classes. Pairs
    touching a 255 cell or leaving the map are in none of them: they are not trained on."""
    height, width = labels.shape[-2:]
    padded = _padded(labels, radius, IGNORE)
    partner = torch.stack([_window(padded, radius, dy, dx, height, width) for dy, dx in directions(radius)], 1)
    cell = labels.unsqueeze(1)
    confident = (cell != IGNORE) & (partner != IGNORE)
    same = confident & (cell == partner)
    return same & (cell == 0), same & (cell != 0), confident & (cell != partner)


def affinity_loss(edge: torch.Tensor, labels: torch.Tensor, radius: int) -> torch.Tensor:
    """IRN's inter-pixel relation loss (net/resnet50_irn.py, step/train_irn.py, without the displacement
    branch): -log(affinity) over pairs of one class, background and foreground pairs weighted equally,
    -log(1 - affinity) over pairs of different classes, the two halves averaged.

    edge: (B, h, w) boundary probabilities; labels: (B, h, w) confident labels on the same grid."""
    affinity = edge_affinities(edge.float(), radius)
    background, foreground, different = affinity_targets(labels, radius)
    same_loss = -torch.log(affinity + EPS)
    different_loss = -torch.log(1 + EPS - affinity)

    def mean(loss, pairs):
        pairs = pairs.float()
        return (loss * pairs).sum() / (pairs.sum() + EPS)

    same = mean(same_loss, background) / 2 + mean(same_loss, foreground) / 2
    return (same + mean(different_loss, different)) / 2


def transition_matrix(edge: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """The walk's sparse (N, N) transition matrix over the N = h * w cells of a boundary map (h, w):
    T = D^-1 A^beta, where A holds the affinities of the pairs of directions(radius) both ways and 1 on the
    diagonal (IRN's affinity_sparse2dense), and D its row sums. A is symmetric, so T x is IRN's x T with its
    column-normalised matrix."""
    height, width = edge.shape
    cells = height * width
    affinity = edge_affinities(edge[None].float(), radius)[0] ** beta
    index = torch.arange(cells, device=edge.device).view(height, width)
    padded = _padded(index, radius, -1)
    partner = torch.stack([_window(padded, radius, dy, dx, height, width) for dy, dx in directions(radius)])
    inside = partner >= 0
    source, target, weight = index.expand_as(partner)[inside], partner[inside], affinity[inside]
    diagonal = torch.arange(cells, device=edge.device)
    rows = torch.cat([source, target, diagonal])
    columns = torch.cat([target, source, diagonal])
    weights = torch.cat([weight, weight, torch.ones(cells, device=edge.device)])
    degree = torch.zeros(cells, device=edge.device).index_add_(0, rows, weights)
    # torch warns that sparse CSR is in beta and that invariant checks are off: the one product used here
    # is tested against the dense walk (tests/unit/test_random_walk.py), and the indices are built in range
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_coo_tensor(torch.stack([rows, columns]), weights / degree[rows], (cells, cells))
        return matrix.coalesce().to_sparse_csr()


def random_walk(cams: torch.Tensor, edge: torch.Tensor, radius: int, beta: float, exp_times: int) -> torch.Tensor:
    """IRN's propagate_to_edge: (C, h, w) CAMs on the boundary map's grid, times (1 - edge), walked
    2^exp_times steps (IRN squares its dense matrix exp_times times; the same product, one sparse step at a
    time). Returns (C, h, w)."""
    channels, height, width = cams.shape
    matrix = transition_matrix(edge, radius, beta)
    walked = (cams.float() * (1 - edge.float())).reshape(channels, -1).T.contiguous()
    for _ in range(2**exp_times):
        walked = matrix @ walked
    return walked.T.reshape(channels, height, width)


def to_grid(cams: torch.Tensor, size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) image-resolution CAMs -> the boundary map's stride-4 grid: resized bilinearly to the size the
    network saw (size), padded to whole 4 x 4 cells and averaged per cell. Only for CAMs without their grid
    CAMs (walk_label's grid_cams): IRN walks the strided CAMs it computes on the grid directly."""
    height, width = size
    cams = cams.float()[None]
    if cams.shape[-2:] != (height, width):
        cams = F.interpolate(cams, size=(height, width), mode="bilinear", align_corners=False)
    padded = F.pad(cams, (0, grid[1] * 4 - width, 0, grid[0] * 4 - height), mode="replicate")
    return F.avg_pool2d(padded, 4)[0]


def walk_to_label(
    walked: torch.Tensor, class_ids: list[int], size: tuple[int, int], image_size: tuple[int, int], bg_threshold: float
) -> np.ndarray:
    """IRN's label map from the walk (make_sem_seg_labels.py): upsampled x4 bilinearly and cropped to the size
    the network saw, resized to the image, divided by its maximum, then a constant background channel at
    bg_threshold and the argmax. Every pixel gets a label (no 255)."""
    scores = F.interpolate(walked[None].float(), scale_factor=4, mode="bilinear", align_corners=False)
    scores = scores[..., : size[0], : size[1]]
    if tuple(size) != tuple(image_size):
        scores = F.interpolate(scores, size=image_size, mode="bilinear", align_corners=False)
    scores = scores[0] / max(float(scores.max()), EPS)
    padded = torch.cat([torch.full_like(scores[:1], bg_threshold), scores])
    return label_keys(class_ids)[padded.argmax(0).cpu().numpy()]


def walk_label(
    image: np.ndarray,
    cams: np.ndarray,
    class_ids: list[int],
    edge_fn,
    settings: dict,
    device,
    grid_cams: np.ndarray | None = None,
) -> np.ndarray:
    """One image's dense label map (uint8 H x W) from its CAMs (C, H, W) and a boundary map.

    edge_fn(image, long_side) gives the (h, w) boundary map of the image resized to long_side (wsss.training.irn
    .edge_map with a model); settings: the random_walk config section (long_side, radius, beta, exp_times,
    bg_threshold). grid_cams: the CAM step's stride-4 CAMs (C, h', w'), walked as they are where they lie on
    the boundary map's grid (IRN: CAMs and walk both at the image's own size), else resized bilinearly to it
    (the CAMs were computed at another cam.long_side than random_walk.long_side); None: to_grid of cams."""
    image_size = image.shape[:2]
    if not class_ids:
        return np.zeros(image_size, np.uint8)
    size = long_side_size(*image_size, settings["long_side"])
    edge = edge_fn(image, long_side=settings["long_side"]).to(device)
    if grid_cams is None:
        grid_cams = to_grid(torch.from_numpy(cams).to(device), size, tuple(edge.shape))
    else:
        grid_cams = upsample(torch.from_numpy(grid_cams).to(device).float()[None], edge.shape)[0]
    walked = random_walk(grid_cams, edge, settings["radius"], settings["beta"], settings["exp_times"])
    return walk_to_label(walked, class_ids, size, image_size, settings["bg_threshold"])
