"""Transparent overlay layers the page stacks over a result: person masks and surface maps.

Boxes, faces and keypoints are drawn by the page itself (SVG) from the detections JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sganon.core.rle import decode_rle

#: RGBA of person masks: a translucent red.
MASK_COLOUR = (255, 48, 48, 110)
#: Opacity of the surface-map colours.
SURFACE_ALPHA = 190


def mask_layer(entry: dict[str, Any], height: int, width: int) -> np.ndarray:
    """uint8 RGBA ``[H, W, 4]``: every person mask of a detections entry, translucent red."""
    layer = np.zeros((height, width, 4), np.uint8)
    for person in entry.get("persons", []):
        if person.get("mask") is None:
            continue
        mask = decode_rle(person["mask"])
        if mask.shape == (height, width):
            layer[mask] = MASK_COLOUR
    return layer


def surface_layer(
    surfaces: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]], height: int, width: int
) -> np.ndarray:
    """uint8 RGBA ``[H, W, 4]``: each person's surface map, its E channels projected to colour.

    Args:
        surfaces: Per person ``(box (x0, y0, x1, y1), embedding float32 [E, h, w], valid bool [h, w])``.
    """
    layer = np.zeros((height, width, 4), np.uint8)
    for (x0, y0, x1, y1), embedding, valid in surfaces:
        channels = embedding.shape[0]
        if channels == 0 or not valid.any():
            continue
        # A fixed projection (same colours for the same surface point in every image),
        # stretched over this person's valid pixels.
        projection = np.random.default_rng(0).standard_normal((3, channels)).astype(np.float32)
        colour = np.tensordot(projection, embedding, axes=1).transpose(1, 2, 0)
        low, high = colour[valid].min(axis=0), colour[valid].max(axis=0)
        colour = ((colour - low) / np.maximum(high - low, 1e-6) * 255).clip(0, 255).astype(np.uint8)
        # The box may reach past the image; keep the part inside.
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        rows, cols = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)
        keep = valid[rows, cols]
        target = layer[cy0:cy1, cx0:cx1]
        target[keep, :3] = colour[rows, cols][keep]
        target[keep, 3] = SURFACE_ALPHA
    return layer
