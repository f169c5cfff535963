"""The photos a trained network segmented (results/segmented): every label map and overlay of the segment step's
shards gathered in one folder, and a table of what each photo holds. numpy only (no torch): a CPU step."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from wsss.data.voc import IGNORE, read_mask

log = logging.getLogger(__name__)


def segments_table(label_paths: Mapping[str, Path], class_names: list[str]) -> pd.DataFrame:
    """One row per image and class it holds (background too): image, class, class_id, pixels, fraction (of
    the image's pixels), from the images' label maps."""
    rows = []
    for image_id, path in sorted(label_paths.items()):
        label = read_mask(path, len(class_names))
        ids, counts = np.unique(label, return_counts=True)
        rows += [
            {
                "image": image_id,
                "class": class_names[c] if c != IGNORE else "ignore",
                "class_id": int(c),
                "pixels": int(n),
                "fraction": float(n / label.size),
            }
            for c, n in zip(ids, counts)
        ]
    return pd.DataFrame(rows, columns=["image", "class", "class_id", "pixels", "fraction"])


def gather_segmented(shard_dirs, out_dir, class_names: list[str]) -> pd.DataFrame:
    """results/segmented from the segment step's shards: labels/ and overlays/ of every photo (hard links to
    the shards' files: no copy; a copy where the file system has no links) and segments.parquet
    (segments_table), written last."""
    out_dir = Path(out_dir)
    labels = {}
    for folder in ("labels", "overlays"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for shard in shard_dirs:
            for path in sorted((Path(shard) / folder).iterdir()):
                target = out_dir / folder / path.name
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
                if folder == "labels":
                    labels[path.stem] = target
    table = segments_table(labels, class_names)
    table.to_parquet(out_dir / "segments.parquet", index=False)
    log.info("segmented %d photos into %s", len(labels), out_dir)
    return table
