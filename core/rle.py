"""COCO run-length encoding of binary masks (the compressed-string form), without pycocotools.

Counts run down the columns (Fortran order), alternating background/foreground runs and
starting with background. The string form stores each count as 5-bit groups with a
continuation bit, delta-coded after the third count, offset by 48 into printable ASCII.

>>> import numpy as np
>>> m = np.zeros((3, 4), bool); m[1:, 2] = True
>>> (decode_rle(encode_rle(m)) == m).all()
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a 2-D bool mask."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return [int(c) for c in counts]


def counts_to_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        while True:
            chunk = value & 0x1F
            value >>= 5
            more = not ((value == 0 and not chunk & 0x10) or (value == -1 and chunk & 0x10))
            if more:
                chunk |= 0x20
            out.append(chr(chunk + 48))
            if not more:
                break
    return "".join(out)


def string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    position = 0
    while position < len(text):
        value = 0
        shift = 0
        while True:
            if position >= len(text):
                raise InputError("truncated RLE string")
            chunk = ord(text[position]) - 48
            if chunk < 0 or chunk > 63:
                raise InputError(f"invalid character {text[position]!r} in RLE string")
            value |= (chunk & 0x1F) << shift
            more = chunk & 0x20
            position += 1
            shift += 5
            if not more:
                if chunk & 0x10:
                    value |= -1 << shift
                break
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A 2-D bool mask as a COCO RLE dict ``{"size": [h, w], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"RLE encodes 2-D masks, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(mask_to_counts(mask))}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`; also accepts uncompressed (list) counts."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"not a COCO RLE mask: {rle!r:.80}") from error
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = string_to_counts(counts)
    counts = [int(c) for c in counts]
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise InputError(f"RLE counts sum to {sum(counts)}, expected {height}x{width} = {height * width}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")
