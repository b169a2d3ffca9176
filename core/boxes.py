"""Box expansion of the paper's anonymizer (SPEC §7.3 of ``shared/reference/vsam``).

A person's crop is not its tight box: the box is grown by a margin, brought to the
generator's aspect ratio (height / width, 288 / 160 = 1.8 for V-SAM) and grown further
until at least 30 % of it is background, so the generator sees context around the body.
The result may reach past the image borders (those pixels are padding in the crop).

This module is the one place that rule lives; the anonymization pipeline and
``sganon data prepare`` both call :func:`expand_person_box`. It also holds the box
geometry the rest of sganon uses (bounds of a mask, union, growth, IoU, merging).

Public API (stable):

* :func:`expand_axis` -- the axis rule (grow one axis to a target length, shift inside).
* :func:`mask_bounds` -- the exact bounding box of a bool mask (``None`` when empty).
* :func:`tight_box` -- the tight box of a box-local mask (one extra pixel at the end, §7.3).
* :func:`expand_box` -- steps b-d: margin, aspect ratio, background share.
* :func:`expand_person_box` -- all of §7.3 for one mask; ``None`` for persons too small.
* :func:`grow_box`, :func:`union_box`, :func:`box_iou`, :func:`merge_overlapping`.
* :func:`non_maximum_suppression` -- the best scored boxes, overlapping ones dropped.
* :func:`head_box` -- a face box grown to the whole head (the face path's region).
* :func:`whole_size` -- a subject's size as it would be without the frame's edge (strength).
* :func:`unrotate_box` -- a box found in an image turned by quarter turns, in the image.

>>> expand_axis(10, 20, 14, 100)
(8, 22)
>>> import numpy as np
>>> mask = np.zeros((100, 60), bool); mask[10:90, 20:40] = True
>>> expand_person_box(mask, Box(100, 50, 160, 150), image_height=400, image_width=400)
Box(x0=106, y0=56, x1=155, y1=145)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError
from .structures import Box, Detection

if TYPE_CHECKING:
    import torch

#: The paper's generator aspect ratio, height / width = 288 / 160.
PAPER_ASPECT = 288 / 160
#: Growth of each side of the tight box (step b): ``len -> floor(len * (1 + margin))``.
PAPER_MARGIN = 0.1
#: Minimum share of background pixels in the final box (step d).
PAPER_MIN_BACKGROUND = 0.3
#: Persons whose tight box has fewer pixels than this are skipped by the generator.
PAPER_MIN_AREA = 32 * 32


def expand_axis(start: int, end: int, target: int, limit: int) -> tuple[int, int]:
    """Grow (or shrink) ``[start, end)`` to length ``target``, then shift it into ``[0, limit)``.

    Both ends move by ``(target - length) // 2``; an odd remainder goes to the end. The
    interval is then shifted right if it starts before 0 and ends before ``limit``, and
    left if it ends past ``limit`` and starts after 0, each by as much as the other end
    allows, so it may stay partly outside the image (e.g. when ``target > limit``).
    """
    step = (target - (end - start)) // 2
    start -= step
    end += step
    if end - start != target:
        end += 1
    if start < 0 and end > limit:
        return start, end
    if start < 0 and end < limit:
        shift = min(-start, limit - end)
        start += shift
        end += shift
    if end > limit and start > 0:
        shift = min(end - limit, start)
        start -= shift
        end -= shift
    return start, end


def mask_bounds(mask: np.ndarray) -> Box | None:
    """The smallest box holding every ``True`` pixel of a bool ``[H, W]`` mask, or ``None``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def tight_box(mask: np.ndarray, box: Box) -> Box:
    """The tight box of ``mask`` (bool ``[box.height, box.width]``) in image coordinates.

    As in the reference: the start is the first non-empty row/column, the exclusive end
    is the last non-empty one + 2 (one extra pixel), capped at the box size. An empty
    mask gives the whole ``box``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (box.height, box.width):
        raise InputError(f"mask shape {mask.shape} does not match the box size {(box.height, box.width)}")
    bounds = mask_bounds(mask)
    if bounds is None:
        return box
    x0, y0, x1, y1 = bounds.x0, bounds.y0, min(bounds.x1 + 1, box.width), min(bounds.y1 + 1, box.height)
    return Box(box.x0 + x0, box.y0 + y0, box.x0 + x1, box.y0 + y1)


def expand_box(
    box: Box,
    image_height: int,
    image_width: int,
    foreground_pixels: int,
    aspect: float = PAPER_ASPECT,
    margin: float = PAPER_MARGIN,
    min_background: float = PAPER_MIN_BACKGROUND,
) -> Box:
    """Steps b-d of §7.3 applied to a tight box.

    Args:
        box: The tight box (non-empty).
        image_height: Source image height (the vertical axis limit).
        image_width: Source image width (the horizontal axis limit).
        foreground_pixels: Person pixels in the detection (``n`` of step d).
        aspect: Target height / width of the crop (the generator's).
        margin: Step b growth of each side, ``len -> min(floor(len * (1 + margin)), image size)``.
        min_background: Step d minimum background share of the final box.
    """
    if box.is_empty():
        raise InputError(f"cannot expand an empty box {box}")
    x0, y0, x1, y1 = box
    # b. margin on each axis, never beyond the image size.
    x0, x1 = expand_axis(x0, x1, min(math.floor((x1 - x0) * (1 + margin)), image_width), image_width)
    y0, y1 = expand_axis(y0, y1, min(math.floor((y1 - y0) * (1 + margin)), image_height), image_height)
    # c. aspect ratio: grow the axis that is too short (a box of exactly the ratio stays).
    height, width = y1 - y0, x1 - x0
    if height / width < aspect:
        y0, y1 = expand_axis(y0, y1, math.floor(width * aspect), image_height)
    elif height / width > aspect:
        x0, x1 = expand_axis(x0, x1, math.floor(height / aspect), image_width)
    # d. background share: the box must hold the person's pixels / (1 - min_background).
    target_area = math.floor(foreground_pixels / (1 - min_background))
    height, width = y1 - y0, x1 - x0
    if height * width < target_area:
        scale = math.sqrt(target_area / (height * width))
        x0, x1 = expand_axis(x0, x1, math.floor(scale * width), image_width)
        y0, y1 = expand_axis(y0, y1, math.floor(scale * height), image_height)
    return Box(x0, y0, x1, y1)


def expand_person_box(
    mask: np.ndarray,
    box: Box,
    image_height: int,
    image_width: int,
    aspect: float = PAPER_ASPECT,
    margin: float = PAPER_MARGIN,
    min_background: float = PAPER_MIN_BACKGROUND,
    min_area: int = PAPER_MIN_AREA,
) -> Box | None:
    """The crop box of one person (all of §7.3), or ``None`` when it is too small.

    Args:
        mask: The person's segmentation, bool ``[box.height, box.width]`` (``S_box``).
        box: The detection box in the source image.
        image_height: Source image height.
        image_width: Source image width.
        aspect: Target height / width of the crop.
        margin: See :func:`expand_box`.
        min_background: See :func:`expand_box`.
        min_area: Persons whose tight box covers fewer pixels are skipped (``None``).
    """
    mask = np.asarray(mask, dtype=bool)
    tight = tight_box(mask, box)
    if tight.area < min_area:
        return None
    # The reference counts the person as floor(box area * mean(S_box)) in float64.
    person_pixels = math.floor(box.area * float(mask.astype(np.int64).mean())) if mask.size else 0
    return expand_box(tight, image_height, image_width, person_pixels, aspect, margin, min_background)


def grow_box(box: Box, fraction: float, image_height: int, image_width: int) -> Box:
    """``box`` grown by ``fraction`` of its size on each side, clipped to the image."""
    dx, dy = math.ceil(box.width * fraction), math.ceil(box.height * fraction)
    return Box(box.x0 - dx, box.y0 - dy, box.x1 + dx, box.y1 + dy).clip(image_height, image_width)


#: A face box's growth upwards (forehead, hair) and downwards (chin), relative to its growth
#: sideways (ears): face detectors box the eyes-to-mouth area, a person recognizes a head.
HEAD_UP, HEAD_DOWN = 2.5, 0.5
#: Typical width / height of a head box and of a person box (see :func:`whole_size`).
HEAD_ASPECT = 0.8
PERSON_ASPECT = 0.4


def head_box(face: Box, margin: float) -> Box:
    """The region that hides a face: its box grown to the whole head, by ``margin`` of its
    width on each side, ``HEAD_UP x margin`` of its height upwards and ``HEAD_DOWN x margin``
    downwards (not clipped; ``margin=0`` keeps the box).

    >>> head_box(Box(100, 100, 140, 150), 0.2)
    Box(x0=92, y0=75, x1=148, y1=155)
    """
    dx = math.ceil(face.width * margin)
    up, down = math.ceil(face.height * margin * HEAD_UP), math.ceil(face.height * margin * HEAD_DOWN)
    return Box(face.x0 - dx, face.y0 - up, face.x1 + dx, face.y1 + down)


def whole_size(box: Box, aspect: float) -> tuple[int, int]:
    """``(height, width)`` of a subject (head, person) whose visible box is ``box``, as it
    would be without the frame's edge: a side cut short is restored from the other by the
    subject's typical ``aspect`` (width / height), so a strength set from this size (blocks
    of a pixelation, a blur's radius) does not shrink when the subject is cut.

    >>> whole_size(Box(0, 0, 20, 100), PERSON_ASPECT)  # a standing person cut at the side
    (100, 40)
    """
    return max(box.height, math.ceil(box.width / aspect)), max(box.width, math.ceil(box.height * aspect))


def union_box(a: Box, b: Box | None) -> Box:
    """The smallest box holding ``a`` and ``b`` (``a`` when ``b`` is ``None``)."""
    if b is None:
        return a
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 for empty boxes). Plain arithmetic: the
    offline path does not import torchvision (1.1 s of every process's start)."""
    if a.is_empty() or b.is_empty():
        return 0.0
    inter = Box(max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)).area
    return inter / (a.area + b.area - inter)


def non_maximum_suppression(
    items: list[tuple[Box, float]], iou: float, inside: float | None = None
) -> list[tuple[Box, float]]:
    """Greedy non-maximum suppression of ``(box, score)`` pairs: best score first, a box is
    dropped when it overlaps a kept one by more than ``iou`` (IoU) or, with ``inside``, shares
    at least that part of the smaller box's area with it (one box mostly inside the other)."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(items, key=lambda item: -item[1]):
        if not any(too_close(box, other, iou, inside) for other, _ in kept):
            kept.append((box, score))
    return kept


def too_close(a: Box, b: Box, iou: float, inside: float | None = None) -> bool:
    """Whether ``a`` and ``b`` overlap by more than ``iou`` or, with ``inside``, share at least
    that part of the smaller one's area (see :func:`non_maximum_suppression`)."""
    if box_iou(a, b) > iou:
        return True
    smaller = min(a.area, b.area)
    return inside is not None and smaller > 0 and a.intersect(b).area >= inside * smaller


def merge_overlapping(detections: list[Detection], iou: float = 0.3) -> list[Detection]:
    """Detections (faces) whose boxes overlap by more than ``iou`` merged into their union box,
    highest score first; masks and keypoints are dropped (the union is a box region)."""
    merged: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        for i, other in enumerate(merged):
            if box_iou(detection.box, other.box) > iou:
                merged[i] = Detection(union_box(other.box, detection.box), other.score, label=other.label)
                break
        else:
            merged.append(detection)
    return merged


def unrotate_box(box: Box, turns: int, height: int, width: int) -> Box:
    """A box found in ``np.rot90(image, turns)`` mapped back to ``image`` (``height x width``)."""
    turns %= 4
    if turns == 1:  # rotated[y, x] = image[x, width - 1 - y]
        return Box(width - box.y1, box.x0, width - box.y0, box.x1)
    if turns == 2:
        return Box(width - box.x1, height - box.y1, width - box.x0, height - box.y0)
    if turns == 3:  # rotated[y, x] = image[height - 1 - x, y]
        return Box(box.y0, height - box.x1, box.y1, height - box.x0)
    return box
