"""Upright people found without a face: OpenCV's HOG pedestrian detector.

BlazePose's detector finds a person through the head, so someone seen from behind, or
small (a 10-pixel head), gets no proposal. This module finds such people by their whole
silhouette with the Daimler HOG + linear SVM detector that ships inside the opencv-python
wheel (``cv2.HOGDescriptor_getDaimlerPeopleDetector``: a 48x96 window, made for small
pedestrians; Apache-2.0, as OpenCV 4.5 and later). It looks only for the people BlazePose misses
(by default 48-250 pixels tall) on a grayscale copy of the image, on one core; its boxes
become Pose jobs in :class:`~.detectors.OfflinePersonDetector` (see
:func:`pedestrian_region` and docs/offline-models.md for the merge rule).

Scales, threshold and stride were chosen on OpenCV's ``vtest.avi`` (real surveillance
footage) by recall and cost: ``benchmarks/bench_pedestrians.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from sganon.core.boxes import non_maximum_suppression
from sganon.core.structures import Box

from .blaze import Region

ScoredBox = tuple[Box, float]

#: The Daimler detector's window (width, height) and the part of its height a person fills
#: (measured on vtest.avi: the person is 0.73-0.95 of the window, median 0.81).
WINDOW = (48, 96)
PERSON_IN_WINDOW = 0.8


@dataclass(frozen=True)
class PedestrianSettings:
    """Settings of :class:`PedestrianFinder`.

    Attributes:
        min_height: Smallest person (pixels tall) looked for.
        max_height: Largest person looked for (taller ones are BlazePose's).
        min_score: Minimum SVM margin of a window (the detector's ``hitThreshold``): such a
            box becomes a Pose job.
        keep_score: Minimum SVM margin of a box kept as the person when Pose finds nobody
            there (weaker boxes need Pose's confirmation). At ``min_score`` every box is
            kept: privacy first. 1.5 keeps 7 instead of 16 false boxes on the 6 photos of
            the benchmark but leaves 4 more of 164 people on vtest.avi (docs/offline-models.md).
        stride: Window stride in pixels of the scaled image.
        scale_step: Ratio between the scales scanned.
        max_pixels: No scaled copy is larger than this (bounds the cost on large images:
            the smallest person found grows with the image then).
        overlap: Boxes overlapping a better one by more than this IoU are dropped.
    """

    min_height: int = 48
    max_height: int = 250
    min_score: float = 1.0
    keep_score: float = 1.0
    stride: int = 8
    scale_step: float = 1.25
    max_pixels: int = 1_200_000
    overlap: float = 0.3


class PedestrianFinder:
    """Upright pedestrians by HOG + linear SVM (OpenCV's Daimler model), no face needed.

    Args:
        settings: Sizes, threshold and cost bounds (:class:`PedestrianSettings`).
    """

    def __init__(self, settings: PedestrianSettings = PedestrianSettings()) -> None:
        self.settings = settings
        block, cell, bins = (16, 16), (8, 8), 9
        self.hog = cv2.HOGDescriptor(WINDOW, block, cell, cell, bins)
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDaimlerPeopleDetector())

    @property
    def keep_probability(self) -> float:
        """``keep_score`` as a score of :meth:`find`."""
        return logistic(self.settings.keep_score)

    def scales(self, height: int, width: int) -> list[float]:
        """Factors the gray image is resized by, largest first: a person ``h`` pixels tall fills
        the window at ``PERSON_IN_WINDOW * 96 / h``; from ``min_height`` to ``max_height`` in
        steps of ``scale_step``, none making a copy over ``max_pixels`` or smaller than the window."""
        settings = self.settings
        largest = min(PERSON_IN_WINDOW * WINDOW[1] / settings.min_height, math.sqrt(settings.max_pixels / (height * width)))
        smallest = PERSON_IN_WINDOW * WINDOW[1] / settings.max_height
        scales = []
        scale = largest
        while scale >= smallest / settings.scale_step ** 0.5 and height * scale >= WINDOW[1] and width * scale >= WINDOW[0]:
            scales.append(scale)
            scale /= settings.scale_step
        return scales

    def find(self, image: np.ndarray) -> list[ScoredBox]:
        """Pedestrian boxes (the detector's windows, clipped to the image) and scores (the SVM
        margin through a logistic: ``min_score`` 1 is 0.73), best first, overlapping ones merged.
        ``image``: uint8 RGB ``[H, W, 3]`` or gray ``[H, W]``."""
        gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        found: list[ScoredBox] = []
        stride = (self.settings.stride, self.settings.stride)
        for scale in self.scales(height, width):
            size = (round(width * scale), round(height * scale))
            scaled = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            corners, margins = self.hog.detect(
                scaled, hitThreshold=self.settings.min_score, winStride=stride, padding=(0, 0)
            )
            for (x, y), margin in zip(np.reshape(corners, (-1, 2)), np.reshape(margins, -1)):
                box = Box(
                    math.floor(x / scale), math.floor(y / scale),
                    math.ceil((x + WINDOW[0]) / scale), math.ceil((y + WINDOW[1]) / scale),
                ).clip(height, width)
                if not box.is_empty():
                    found.append((box, logistic(float(margin))))
        # Overlapping windows, and windows mostly (70 %) inside a better one, are one person.
        return non_maximum_suppression(found, self.settings.overlap, inside=0.7)


def logistic(margin: float) -> float:
    return 1 / (1 + math.exp(-margin))


#: Pose's region around a pedestrian box is this many times the box's height: MediaPipe's
#: region is 1.25x the body, which fills ~0.8 of the box, but a window can sit a quarter of a
#: person too low or high (one scale step); measured on vtest.avi, 1.5 found 2 more people of
#: 164 than 1.0, and 2.0 none more.
REGION_SCALE = 1.5


def pedestrian_region(box: Box) -> Region:
    """Where Pose's landmark model looks for the person of a pedestrian box: an upright
    square centred on the box, ``REGION_SCALE`` times its height."""
    side = float(max(box.height, box.width)) * REGION_SCALE
    return Region((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, side, side)


def pedestrian_crop(box: Box) -> Box:
    """The crop Pose gets for a pedestrian box: its region's square grown by 20 %."""
    side = max(box.height, box.width) * REGION_SCALE * 1.2
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    return Box(math.floor(cx - side / 2), math.floor(cy - side / 2), math.ceil(cx + side / 2), math.ceil(cy + side / 2))


def is_known(box: Box, covered: np.ndarray, persons: Sequence[Box]) -> bool:
    """Whether a pedestrian box adds nothing to the persons found so far (their masks
    ``covered``, bool ``[H, W]``, and their boxes ``persons``): masks cover its body
    (:func:`is_covered`), or it lies inside a person at least twice its height (part of that
    person: a face, an arm, a print on the clothes)."""
    return is_covered(box, covered) or any(
        person.height >= 2 * box.height and box.intersect(person).area >= 0.7 * box.area for person in persons
    )


def is_covered(box: Box, covered: np.ndarray, min_fraction: float = 0.5) -> bool:
    """Whether persons found so far (``covered``, bool ``[H, W]``) cover at least
    ``min_fraction`` of the middle third of ``box`` (where an upright person's body is)."""
    third = box.width // 3
    core = Box(box.x0 + third, box.y0, max(box.x1 - third, box.x0 + third + 1), box.y1).clip(*covered.shape)
    inside = covered[core.y0 : core.y1, core.x0 : core.x1]
    return bool(inside.size and inside.mean() >= min_fraction)
