"""The demo dataset: synthetic images in PASCAL VOC 2012 layout that make the WSSS problem real.

Each object is a large plain *body* carrying a small, highly discriminative *part* (a class-specific
saturated colour and stripe pattern). The body is only weakly informative: its shape depends on the class,
and its muted colour is the class's own for a fraction `body_colour_prob` of the objects and a colour shared
by all classes otherwise. A classifier can tell the classes apart from the part alone, so its CAM covers the part
and misses most of the body: the gap that erasing (which hides the part, leaving the weaker body evidence)
and the CRF have to close. Backgrounds are textured, images hold 1-3 objects of varied size and
position, and masks carry VOC's thin 255 band along object boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from wsss.data.voc import IGNORE, VOC_CLASSES, write_mask

# Body shapes are assigned to the demo classes in order; parts differ in colour and stripe direction.
BODY_SHAPES = ("wide_ellipse", "triangle", "rectangle", "disc", "tall_ellipse", "diamond")
PART_COLOURS = ((230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 20), (220, 40, 220), (20, 220, 220))
BODY_COLOURS = ((150, 120, 90), (95, 115, 150), (120, 150, 100), (165, 160, 150), (140, 100, 130), (110, 140, 145))


def _shape_mask(shape: str, height: int, width: int, cy: float, cx: float, size: float, angle: float) -> np.ndarray:
    """Boolean mask of one body shape of radius ~size/2 centred at (cy, cx), rotated by angle (radians)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = ys - cy, xs - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    r = size / 2
    if shape == "wide_ellipse":
        return (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1
    if shape == "tall_ellipse":
        return (u / (0.55 * r)) ** 2 + (v / r) ** 2 <= 1
    if shape == "disc":
        return (u / (0.85 * r)) ** 2 + (v / (0.85 * r)) ** 2 <= 1
    if shape == "rectangle":
        return (np.abs(u) <= 0.95 * r) & (np.abs(v) <= 0.6 * r)
    if shape == "diamond":
        return np.abs(u) / r + np.abs(v) / (0.75 * r) <= 1
    if shape == "triangle":  # apex up, base down
        height_frac = (v + 0.8 * r) / (1.6 * r)
        return (height_frac >= 0) & (height_frac <= 1) & (np.abs(u) <= height_frac * r)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background: coarse colour blotches, oriented stripes and pixel noise (float32 HxWx3)."""
    base = rng.uniform(60, 190, size=3)
    coarse = rng.uniform(-45, 45, size=(height // 12 + 2, width // 12 + 2, 3)).astype(np.float32)
    coarse = np.stack(
        [np.asarray(Image.fromarray(coarse[..., c]).resize((width, height), Image.BILINEAR)) for c in range(3)], -1
    )
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(4, 10)
    stripes = np.sin(2 * np.pi * (xs * np.cos(theta) + ys * np.sin(theta)) / period)[..., None]
    stripes = stripes * rng.uniform(8, 25) * rng.uniform(0.5, 1.0, size=3)
    noise = rng.normal(0, 12, size=(height, width, 3))
    return base + coarse + stripes + noise


def _boundary_band(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds another label: VOC's thin ignore band along outlines."""
    padded = np.pad(labels, 1, mode="edge")
    height, width = labels.shape
    band = np.zeros(labels.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            band |= padded[dy : dy + height, dx : dx + width] != labels
    return band


def render_image(
    rng: np.random.Generator,
    class_ids: list[int],
    class_slots: dict[int, int],
    size_range: tuple[int, int],
    body_colour_prob: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 HxWx3) and its mask (uint8 HxW, VOC ids, 255 band) with the given objects."""
    height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
    image = _texture(rng, height, width)
    labels = np.zeros((height, width), np.uint8)
    short = min(height, width)
    for class_id in class_ids:
        slot = class_slots[class_id]
        for _attempt in range(30):
            size = rng.uniform(0.35, 0.7) * short
            cy = rng.uniform(size * 0.35, height - size * 0.35)
            cx = rng.uniform(size * 0.35, width - size * 0.35)
            body = _shape_mask(BODY_SHAPES[slot], height, width, cy, cx, size, rng.uniform(-0.35, 0.35))
            overlap = (labels[body] != 0).mean() if body.any() else 1.0
            if body.sum() > 0.02 * height * width and overlap < 0.15:
                break
        colour_slot = slot if rng.random() < body_colour_prob else rng.integers(len(BODY_COLOURS))
        colour = np.asarray(BODY_COLOURS[colour_slot], np.float32) + rng.uniform(-12, 12, 3)
        image[body] = colour + rng.normal(0, 3, size=(int(body.sum()), 3))
        labels[body] = class_id
        # The part: a small striped square placed well inside the body.
        part_size = max(4, int(round(size * rng.uniform(0.22, 0.3))))
        inner = np.argwhere(body)
        inner = inner[
            (inner[:, 0] >= part_size // 2)
            & (inner[:, 0] < height - part_size // 2)
            & (inner[:, 1] >= part_size // 2)
            & (inner[:, 1] < width - part_size // 2)
        ]
        centre = inner[len(inner) // 2] if len(inner) else np.array([int(cy), int(cx)])
        jitter = (rng.uniform(-0.15, 0.15, size=2) * size).astype(int)
        py, px = np.clip(centre + jitter, part_size // 2, [height - part_size // 2 - 1, width - part_size // 2 - 1])
        y0, x0 = py - part_size // 2, px - part_size // 2
        part = np.zeros_like(body)
        part[y0 : y0 + part_size, x0 : x0 + part_size] = True
        part &= body
        ys, xs = np.nonzero(part)
        stripe = ((ys if slot % 2 else xs) // 2) % 2 == 0
        part_colour = np.asarray(PART_COLOURS[slot], np.float32)
        image[ys, xs] = np.where(stripe[:, None], part_colour, part_colour * 0.35)
        labels[part] = class_id
    labels[_boundary_band(labels)] = IGNORE
    return np.clip(image, 0, 255).astype(np.uint8), labels


def make_demo_dataset(
    root: Path,
    *,
    class_names: list[str],
    num_train: int,
    num_val: int,
    size_range: tuple[int, int],
    max_objects: int,
    background_only_fraction: float,
    body_colour_prob: float,
    seed: int,
) -> None:
    """Write the demo dataset under root in VOC 2012 layout; the same arguments give the same files."""
    unknown = [name for name in class_names if name not in VOC_CLASSES[1:]]
    if unknown:
        raise ValueError(f"demo.classes: {unknown} are not VOC class names")
    if len(class_names) > len(BODY_SHAPES):
        raise ValueError(f"demo.classes: at most {len(BODY_SHAPES)} classes, got {len(class_names)}")
    class_ids = [VOC_CLASSES.index(name) for name in class_names]
    class_slots = {class_id: slot for slot, class_id in enumerate(class_ids)}
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    total = num_train + num_val
    for index in tqdm(range(total), desc="demo images", mininterval=2):
        split = "train" if index < num_train else "val"
        image_id = f"demo_{index:05d}"
        if rng.random() < background_only_fraction:
            objects: list[int] = []
        else:
            count = int(rng.integers(1, min(max_objects, len(class_ids)) + 1))
            objects = [int(c) for c in rng.choice(class_ids, size=count, replace=False)]
        image, mask = render_image(rng, objects, class_slots, size_range, body_colour_prob)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=92)
        write_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
        splits[split].append(image_id)
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
