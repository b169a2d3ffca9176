"""COCO run-length encoding of binary masks, through ``pycocotools``.

``encode_rle`` gives the compressed-string form ``{"size": [h, w], "counts": str}`` (JSON
friendly); ``decode_rle`` also reads uncompressed (list) counts, and
``polygons_to_mask`` rasterizes COCO polygon segmentations.

>>> import numpy as np
>>> m = np.zeros((3, 4), bool); m[1:, 2] = True
>>> (decode_rle(encode_rle(m)) == m).all()
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from .errors import InputError


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A 2-D bool mask as a COCO RLE dict ``{"size": [h, w], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"RLE encodes 2-D masks, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`; also accepts uncompressed (list) counts.

    Raises:
        InputError: not an RLE dict, or counts that do not add up to ``h * w``.
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"not a COCO RLE mask: {rle!r:.80}") from error
    if isinstance(counts, list):
        counts = [int(c) for c in counts]
        if any(c < 0 for c in counts) or sum(counts) != height * width:
            raise InputError(f"RLE counts sum to {sum(counts)}, expected {height}x{width} = {height * width}")
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        text = counts.encode("ascii") if isinstance(counts, str) else counts
        compressed = {"size": [height, width], "counts": text}
        # pycocotools does not check that the runs fill the image: check before decoding.
        if int(coco_mask.area(compressed)) > height * width or not _fills(compressed, height * width):
            raise InputError(f"RLE counts do not describe a {height}x{width} mask")
    return coco_mask.decode(compressed).astype(bool)


def _fills(compressed: dict[str, Any], pixels: int) -> bool:
    """Whether the runs of a compressed RLE add up to exactly ``pixels``."""
    shift, value, runs = 0, 0, []
    for char in compressed["counts"]:
        c = char - 48
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            continue
        if c & 0x10:
            value |= -1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
        shift, value = 0, 0
    return sum(runs) == pixels and all(r >= 0 for r in runs)


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO polygon segmentation (``[[x0, y0, x1, y1, ...], ...]``) as a bool ``[height, width]`` mask."""
    usable = [[float(v) for v in polygon] for polygon in polygons if len(polygon) >= 6]
    if not usable:
        return np.zeros((height, width), dtype=bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(usable, height, width))).astype(bool)
