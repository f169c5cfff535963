"""Training augmentation (random rescale, flip, crop; Hide-and-Seek for the classifier) and normalisation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss.data.voc import IGNORE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> normalised float (3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def resize_image(image: np.ndarray, height: int, width: int, resample=Image.BILINEAR) -> np.ndarray:
    """PIL resize of a uint8 image; bilinear by default (training augmentation), bicubic for CAMs (IRN)."""
    return np.array(Image.fromarray(image).resize((width, height), resample))


def long_side_size(height: int, width: int, long_side: int | None) -> tuple[int, int]:
    """The size an image is resized to so that its long side is long_side (its own size for None):
    round(H s) x round(W s), s = long_side / max(H, W), each side at least 1 px."""
    if long_side is None or long_side == max(height, width):
        return height, width
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(image: np.ndarray, long_side: int | None) -> np.ndarray:
    """The uint8 image resized with PIL bicubic so that its long side is long_side (as it is for None or
    when it already has that long side): what CAMs and predictions run on."""
    size = long_side_size(*image.shape[:2], long_side)
    return image if size == image.shape[:2] else resize_image(image, *size, Image.BICUBIC)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.array(Image.fromarray(mask).resize((width, height), Image.NEAREST))


def augment(
    image: np.ndarray, mask: np.ndarray | None, resize_long: tuple[int, int], crop_size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random long-side rescale, horizontal flip and crop, as IRN's classifier data (voc12/dataloader.py):
    the image is rescaled bicubic (imutils.random_resize_long), the mask nearest; a side longer than the
    crop gives a random window, a shorter one is placed at a random offset inside the crop (imutils.random_crop),
    the rest padded with zeros (the mean colour after normalisation) and 255 in the mask.

    Randomness comes from torch's generator, so a seeded run (and seeded DataLoader workers) repeats exactly.
    """
    long_side = int(torch.randint(resize_long[0], resize_long[1] + 1, (1,)))
    height, width = long_side_size(*image.shape[:2], long_side)
    image = resize_image(image, height, width, Image.BICUBIC)
    if mask is not None:
        mask = resize_mask(mask, height, width)
    if torch.rand(1).item() < 0.5:
        image = image[:, ::-1]
        mask = mask[:, ::-1] if mask is not None else None
    x = to_tensor(image)
    y = torch.from_numpy(np.ascontiguousarray(mask)).long() if mask is not None else None
    top = int(torch.randint(0, abs(crop_size - height) + 1, (1,)))
    left = int(torch.randint(0, abs(crop_size - width) + 1, (1,)))
    # a short side: padded so that the image sits at the offset; a long side: the window starts there
    pad_top, pad_left = (top if height < crop_size else 0), (left if width < crop_size else 0)
    pad = (pad_left, max(crop_size - width - pad_left, 0), pad_top, max(crop_size - height - pad_top, 0))
    if any(pad):
        x = F.pad(x, pad, value=0.0)
        y = F.pad(y, pad, value=IGNORE) if y is not None else None
    top, left = top - pad_top, left - pad_left
    x = x[:, top : top + crop_size, left : left + crop_size]
    y = y[top : top + crop_size, left : left + crop_size] if y is not None else None
    return x, y


def normalised_colour(rgb) -> torch.Tensor:
    """An RGB colour (0-255, may be fractional) normalised exactly as to_tensor normalises pixels: (3, 1, 1)."""
    return to_tensor(np.asarray(rgb, dtype=np.float32).reshape(1, 1, 3))


def hide_patches(x: torch.Tensor, hide_prob: float, patch_size: int, fill: torch.Tensor) -> torch.Tensor:
    """Hide-and-Seek (Singh & Lee, ICCV 2017): each square of a patch_size grid over the (3, H, W) crop is
    hidden with probability hide_prob, i.e. filled with fill (3, 1, 1); the last row and column of the
    grid may be partial.

    Hidden parts force the classifier to find every other part of an object, not only the most
    discriminative one. Draws from torch's generator, as augment does; hide_prob 0 draws nothing, so runs
    without hiding keep today's random stream.
    """
    if hide_prob <= 0:
        return x
    height, width = x.shape[-2:]
    rows, cols = -(-height // patch_size), -(-width // patch_size)
    hidden = torch.rand(rows, cols) < hide_prob
    hidden = hidden.repeat_interleave(patch_size, 0).repeat_interleave(patch_size, 1)[:height, :width]
    return torch.where(hidden, fill.to(x.dtype), x)
