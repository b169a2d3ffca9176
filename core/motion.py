"""Moving people in static-camera video: what the detectors miss, motion shows (issue 19).

Real surveillance footage has people 50-120 pixels tall, walking away from the camera or
seen from the side: no face for the face models, no face for BlazePose's face-seeded
proposals. What they all do is move against a still background. :class:`MovingPeople`
keeps a background model of the video (OpenCV's MOG2 on a small colour copy, a few
milliseconds per frame) and, on each detection frame, turns every person-sized moving blob
that no detected person covers into a person detection: the blob's pixels, dilated, without
keypoints. Such a region is replaced like any person (the baselines fill it; the realistic
path treats it as a person without a pose). A moving car or a swaying bush costs some
utility; a missed person costs privacy.

The rules (all in :meth:`MovingPeople.uncovered`):

* the background holds only while the camera holds still: when the camera has moved since
  the frame the background started from (the median motion of corner features between the
  two is over :attr:`MovingPeople.max_camera_motion` pixels of the small copy: a pan, a
  hand-held camera's drift, a cut to another shot), the background starts anew from this
  frame and adds nothing for ``warmup`` frames. A model that went on learning through pans
  and cuts showed leftovers of earlier views as person-sized blobs for a hundred frames and
  more (boxes over railings and parked cars of an edited street clip). Measured from the
  first frame, not the previous one, so that a slow drift adds up while sensor noise does
  not: a fixed camera's corners stay within 0.13 pixels of it over ``vtest.avi``'s 795
  frames (0.20 on a dark, noisy copy; benchmarks/bench_camera_motion.py);
* frames where more than :attr:`MovingPeople.max_moving` of the picture moves (a light
  switched on, a crowd filling the picture) add nothing: motion says nothing there;
* a blob counts when it is at least ``min_height`` of the frame tall, at least
  ``min_aspect`` times as tall as wide (people alone or two or three side by side; not cars,
  which are 2-3 times wider than tall) and not mostly (``covered``) under a detected
  person's mask;
* a blob must also be moving now (``min_changed`` of it differs from the previous frame),
  which drops the ghosts a background model leaves where something stood at its start ...
* ... or lie mostly (``held_overlap`` of its box) on a person-sized blob of an earlier
  detection frame (under a detected person or not) that moved, itself or through the blobs
  it continues, at most ``hold`` frames ago. A walker who stops (a man at a car's open boot,
  someone waiting) stays a person while the background model still sees him, for up to
  ``hold`` frames after he last moved (about as long as MOG2 takes to learn a still figure
  into the background), even when the detector that found him loses him. A ghost never
  moves, so it is held only where a walker left it, and no longer than ``hold`` frames;
* the background needs ``warmup`` frames before its blobs are trusted.
"""

from __future__ import annotations

import numpy as np

from .crops import dilated_in_frame
from .structures import Box, Detection

#: The side the background model works at (longest side of its copy).
MODEL_SIDE = 320


class MovingPeople:
    """A static camera's background, and the moving person-sized blobs no detection covers.

    Args:
        min_height: Smallest blob height as a fraction of the frame's height (people 30
            pixels tall in a 576-row frame: 0.05).
        min_aspect: A blob counts when its height is at least this times its width.
        covered: A blob at least this much under detected persons' masks adds nothing.
        max_moving: Frames where more than this fraction of pixels moves add nothing.
        warmup: Frames seen before blobs count.
        grow: Blobs are dilated by this fraction of their height (limbs, hair: MOG2's
            foreground misses thin and slow parts).
        min_changed: A blob counts only when at least this fraction of its pixels changed
            since the previous frame (a walker's edges and texture do; a "ghost", the
            background uncovered where something stood when the model began, does not) ...
        hold: ... or when it lies on a person-sized blob of an earlier detection frame that
            moved at most this many frames before (a person who stopped walking).
        held_overlap: "Lies on": at least this fraction of its box inside that blob's box.
        max_camera_motion: The camera moved (or the shot changed) when the median motion of
            corner features since the frame the background started from is over this (pixels
            of the small copy): the background starts anew (:meth:`reset`).
    """

    def __init__(
        self,
        min_height: float = 0.05,
        min_aspect: float = 0.6,
        covered: float = 0.5,
        max_moving: float = 0.25,
        warmup: int = 5,
        grow: float = 0.1,
        min_changed: float = 0.1,
        hold: int = 25,
        held_overlap: float = 0.5,
        max_camera_motion: float = 0.35,
    ) -> None:
        self.min_height = min_height
        self.min_aspect = min_aspect
        self.covered = covered
        self.max_moving = max_moving
        self.warmup = warmup
        self.grow = grow
        self.min_changed = min_changed
        self.hold = hold
        self.held_overlap = held_overlap
        self.max_camera_motion = max_camera_motion
        self.reset()

    def reset(self) -> None:
        """Forget the background (a new scene): blobs count again after ``warmup`` frames."""
        import cv2

        self._model = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=16, detectShadows=False)
        self._seen = 0
        self._previous: np.ndarray | None = None  # the last small copy
        self._first: np.ndarray | None = None  # the small copy the background started from
        self._changed: np.ndarray | None = None  # pixels that changed since the last small copy (bool)
        # Person-sized blobs of the last `hold` frames (small-copy boxes) and the frame they last moved.
        self._counted: list[tuple[Box, int]] = []

    def foreground(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """Update the background with one frame (uint8 RGB ``[H, W, 3]``); returns the moving
        pixels of the small copy (bool) and its scale to the frame."""
        import cv2

        small = small_copy(rgb)
        if self._previous is not None and self._previous.shape != small.shape:
            self.reset()  # the frame size changed mid-stream: a new background
        if self._previous is not None:
            self._changed = np.abs(small.astype(np.int16) - self._previous).max(axis=2) > 20
            if camera_motion(self._first, small) > self.max_camera_motion:
                self.reset()  # a new view: this frame starts its background
        if self._first is None:
            self._first = small
        self._previous = small.astype(np.int16)
        moving = self._model.apply(small) > 0  # in colour: a white coat on grey asphalt; shadows are kept (dark clothes look like shadows)
        moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))  # one blob per object
        self._seen += 1
        return moving.astype(bool), small.shape[1] / rgb.shape[1]

    def uncovered(self, rgb: np.ndarray, persons: list[Detection] | None) -> list[Detection]:
        """Feed one frame; on a detection frame (``persons`` given: the persons found in it),
        the moving person-sized blobs they do not cover, as person detections in frame pixels."""
        import cv2

        moving, scale = self.foreground(rgb)
        if persons is None:
            return []
        if self._seen <= self.warmup or moving.mean() > self.max_moving:
            self._counted = []  # a pan or a new scene: what stood still before is no guide
            return []
        height, width = rgb.shape[:2]
        count, labels, stats, _ = cv2.connectedComponentsWithStats(moving.astype(np.uint8), connectivity=8)
        found, counted = [], []
        for label in range(1, count):
            x, y, w, h = (int(v) for v in stats[label, :4])
            if h < self.min_height * moving.shape[0] or h < self.min_aspect * w:
                continue
            pixels = labels[y : y + h, x : x + w] == label
            small_box = Box(x, y, x + w, y + h)
            if self._changed is not None and self._changed[y : y + h, x : x + w][pixels].mean() >= self.min_changed:
                moved = self._seen
            else:  # still: a person who stopped, or a ghost of where something stood when the model began
                moved = self.last_moved(small_box)
                if moved is None or self._seen - moved > self.hold:
                    continue
            counted.append((small_box, moved))
            box = Box(
                int(x / scale), int(y / scale), min(width, int(np.ceil((x + w) / scale))), min(height, int(np.ceil((y + h) / scale)))
            )
            blob = cv2.resize(pixels.astype(np.uint8), (box.width, box.height),
                              interpolation=cv2.INTER_NEAREST).astype(bool)  # fmt: skip
            if under_persons(box, blob, persons, height, width) >= self.covered:
                continue
            found.append(grown_blob(box, blob, max(1, round(self.grow * box.height)), height, width))
        self._counted = [(box, moved) for box, moved in self._counted + counted if self._seen - moved <= self.hold]
        return found

    def last_moved(self, small_box: Box) -> int | None:
        """The latest frame in which a remembered blob that ``small_box`` (small copy) lies on
        moved; ``None`` when it lies on none."""
        least = self.held_overlap * small_box.area
        return max((moved for box, moved in self._counted if small_box.intersect(box).area >= least), default=None)


def small_copy(rgb: np.ndarray) -> np.ndarray:
    """The copy the background model sees: ``rgb`` (uint8 ``[H, W, 3]``) shrunk to at most
    ``MODEL_SIDE`` pixels on its longest side (never enlarged)."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, MODEL_SIDE / max(height, width))
    return cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def camera_motion(earlier: np.ndarray, later: np.ndarray, features: int = 200) -> float:
    """The median motion in pixels of up to ``features`` corners of ``earlier`` tracked into
    ``later`` (Lucas-Kanade; both RGB ``[H, W, 3]`` of one size, any integer type): about 0
    for a fixed camera while most corners are background (not people); ``inf`` when none is
    tracked, or when a picture without corners changed (a cut from or to a blank frame)."""
    import cv2

    before = cv2.cvtColor(earlier.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    after = cv2.cvtColor(later.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(before, features, 0.01, 5)
    if corners is None:
        return 0.0 if np.array_equal(before, after) else float("inf")
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, corners, None, winSize=(15, 15), maxLevel=2)
    found = found.ravel() == 1
    if not found.any():
        return float("inf")
    return float(np.median(np.linalg.norm((moved - corners).reshape(-1, 2)[found], axis=1)))


def under_persons(box: Box, blob: np.ndarray, persons: list[Detection], height: int, width: int) -> float:
    """The fraction of ``blob`` (bool, relative to ``box``) under the persons' masks."""
    under = np.zeros_like(blob)
    for person in persons:
        common = person.box.intersect(box)
        if common.is_empty():
            continue
        mask = person.full_mask()[
            common.y0 - person.box.y0 : common.y1 - person.box.y0, common.x0 - person.box.x0 : common.x1 - person.box.x0
        ]
        under[common.y0 - box.y0 : common.y1 - box.y0, common.x0 - box.x0 : common.x1 - box.x0] |= mask
    return float((under & blob).sum()) / max(int(blob.sum()), 1)


def grown_blob(box: Box, blob: np.ndarray, radius: int, height: int, width: int) -> Detection:
    """A person detection: ``blob`` dilated by ``radius`` pixels, inside the frame."""
    grown, mask = dilated_in_frame(box, blob, radius, height, width)
    return Detection(grown, 0.5, mask, None, "person")
