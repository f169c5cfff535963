import numpy as np
import torch

from wsss.data.voc import IGNORE
from wsss.nets.transforms import augment, to_tensor


def test_a_short_side_is_placed_at_a_random_offset_and_a_long_side_cropped():
    """IRN's random_crop: an image narrower than the crop sits at a random offset in it (not always top-left),
    padded with the mean colour (0 after normalisation) and 255 in the mask; a longer side is windowed."""
    image = np.full((40, 20, 3), 200, np.uint8)
    mask = np.full((40, 20), 8, np.uint8)
    torch.manual_seed(0)
    lefts = set()
    for _ in range(20):
        x, y = augment(image, mask, (40, 40), 32)  # long side 40: 40 x 20, crop 32
        assert x.shape == (3, 32, 32) and y.shape == (32, 32)
        columns = np.flatnonzero((y != IGNORE).any(0).numpy())
        assert len(columns) == 20 and (y[:, columns] == 8).all()  # every row is image (40 > 32)
        assert torch.equal(x[:, 0, columns[0]], to_tensor(image[:1, :1])[:, 0, 0])
        assert (x[:, :, : columns[0]] == 0).all() and (y[:, : columns[0]] == IGNORE).all()
        lefts.add(int(columns[0]))
    assert len(lefts) > 3 and max(lefts) <= 12  # 32 - 20 = 12 possible offsets
