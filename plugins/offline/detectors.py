"""Offline person and face detectors built from the MediaPipe models in the mediapipe wheel.

Persons (``--detector offline``): BlazePose person proposals on the whole image and on
overlapping tiles (so small and crowded people are found), plus proposals seeded from
faces that no body covers; then MediaPipe Pose with segmentation on each proposal's crop
gives one instance mask and 33 keypoints per person. Duplicates are merged by mask overlap.

Faces (``offline-face``): MediaPipe full-range face detection on the whole image and on
overlapping tiles, merged by non-maximum suppression.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sganon.core.interfaces import Detector
from sganon.core.registry import MODELS
from sganon.core.structures import Box, Detection

from .mediapipe_models import MediaPipeModels, PoseResult


def box_iou(a: Box, b: Box) -> float:
    inter = a.intersect(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def tiles(height: int, width: int, grid: int, overlap: float = 0.25) -> list[Box]:
    """``grid x grid`` overlapping tiles covering an image (each ``1/grid`` + overlap of a side)."""
    if grid <= 1:
        return [Box(0, 0, width, height)]
    tile_h = min(height, int(np.ceil(height / grid * (1 + overlap))))
    tile_w = min(width, int(np.ceil(width / grid * (1 + overlap))))
    out = []
    for row in range(grid):
        for col in range(grid):
            y0 = round(row * (height - tile_h) / (grid - 1))
            x0 = round(col * (width - tile_w) / (grid - 1))
            out.append(Box(x0, y0, x0 + tile_w, y0 + tile_h))
    return out


def tile_grids(height: int, width: int, min_tile_side: int, max_grid: int = 3) -> list[int]:
    """Grids to scan: the whole image, then finer grids (up to ``max_grid``) while tiles
    stay at least ``min_tile_side`` pixels on their shorter side."""
    grids = [1]
    for grid in range(2, max_grid + 1):
        if min(height, width) / grid >= min_tile_side:
            grids.append(grid)
    return grids


def non_maximum_suppression(items: list[tuple[Box, float]], iou: float) -> list[tuple[Box, float]]:
    """Keep the best-scoring boxes, dropping any overlapping a kept one by more than ``iou``."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(items, key=lambda item: -item[1]):
        if all(box_iou(box, other) <= iou for other, _ in kept):
            kept.append((box, score))
    return kept


def scan_faces(
    models: MediaPipeModels, image: np.ndarray, min_tile_side: int, max_grid: int = 3
) -> list[tuple[Box, float]]:
    """Face boxes (clipped to the image) from the whole image and its tiles, after NMS."""
    height, width = image.shape[:2]
    found: list[tuple[Box, float]] = []
    for grid in tile_grids(height, width, min_tile_side, max_grid):
        for tile in tiles(height, width, grid):
            pixels = image[tile.y0 : tile.y1, tile.x0 : tile.x1]
            for box, score in models.detect_faces(pixels):
                shifted = Box(box.x0 + tile.x0, box.y0 + tile.y0, box.x1 + tile.x0, box.y1 + tile.y0).clip(
                    height, width
                )
                if not shifted.is_empty():
                    found.append((shifted, score))
    return non_maximum_suppression(found, 0.3)


@MODELS.register_module()
class OfflineFaceDetector(Detector):
    """Faces with MediaPipe full-range face detection (in the mediapipe wheel, Apache-2.0).

    Args:
        min_score: Minimum detection confidence.
        min_tile_side: The image is also scanned in 2x2 and 3x3 tiles while a tile's
            shorter side stays at least this many pixels (finds small faces).
    """

    name: ClassVar[str] = "offline-face"
    description: ClassVar[str] = "faces: MediaPipe full-range face detector on the image and its tiles (offline)"
    labels: ClassVar[tuple[str, ...]] = ("face",)

    def __init__(self, min_score: float = 0.5, min_tile_side: int = 240) -> None:
        self.models = MediaPipeModels(min_face_score=min_score)
        self.min_tile_side = min_tile_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [
            Detection(box, min(max(score, 0.0), 1.0), label="face")
            for box, score in scan_faces(self.models, image, self.min_tile_side)
        ]


@MODELS.register_module()
class OfflinePersonDetector(Detector):
    """Persons: BlazePose proposals (image + tiles + unclaimed faces), then MediaPipe Pose
    with segmentation on each proposal (models in the mediapipe wheel, Apache-2.0).

    Args:
        min_score: Minimum BlazePose detector confidence of a proposal.
        mask_threshold: Segmentation probability above which a pixel is the person.
        min_tile_side: Tiles scanned for proposals (the whole image, then a 2x2 grid) keep
            at least this shorter side.
        crop_scale: A proposal's crop is its body square enlarged by this factor.
        seed_from_faces: Also look for a body below every face that no mask covers.
        duplicate_iou: Two persons whose masks overlap more than this are one person.
    """

    name: ClassVar[str] = "offline"
    description: ClassVar[str] = (
        "persons: MediaPipe BlazePose proposals + Pose landmarks and segmentation per person (offline)"
    )
    labels: ClassVar[tuple[str, ...]] = ("person",)

    def __init__(
        self,
        min_score: float = 0.5,
        mask_threshold: float = 0.5,
        min_tile_side: int = 160,
        crop_scale: float = 1.2,
        seed_from_faces: bool = True,
        duplicate_iou: float = 0.5,
    ) -> None:
        self.models = MediaPipeModels(min_pose_score=min_score)
        self.mask_threshold = mask_threshold
        self.min_tile_side = min_tile_side
        self.crop_scale = crop_scale
        self.seed_from_faces = seed_from_faces
        self.duplicate_iou = duplicate_iou

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        proposals: list[tuple[Box, float]] = []
        for grid in tile_grids(height, width, self.min_tile_side, max_grid=2):
            for tile in tiles(height, width, grid):
                for proposal in self.models.detect_poses(
                    np.ascontiguousarray(image[tile.y0 : tile.y1, tile.x0 : tile.x1])
                ):
                    body = proposal.body_box(1.25 * self.crop_scale)
                    shifted = Box(body.x0 + tile.x0, body.y0 + tile.y0, body.x1 + tile.x0, body.y1 + tile.y0)
                    if not shifted.clip(height, width).is_empty():
                        proposals.append((shifted, proposal.score))
        persons: list[Detection] = []
        # Pixels of persons already found are blanked in later crops, so Pose (which takes
        # the most prominent person of a crop) moves on to the next one in a crowd.
        covered = np.zeros((height, width), dtype=bool)
        for box, score in non_maximum_suppression(proposals, 0.5):
            self.add_person(persons, covered, self.person_in(image, box, score, covered))
        if self.seed_from_faces:
            for face, score in scan_faces(self.models, image, self.min_tile_side, max_grid=2):
                inside = covered[face.y0 : face.y1, face.x0 : face.x1]
                if inside.size and inside.mean() > 0.5:
                    continue
                self.add_person(persons, covered, self.person_in(image, body_below(face), score, covered, face=face))
        return persons

    def add_person(self, persons: list[Detection], covered: np.ndarray, person: Detection | None) -> None:
        if person is not None and self.add_unless_duplicate(persons, person):
            covered |= person.mask_in_image(*covered.shape)

    def person_in(
        self, image: np.ndarray, box: Box, score: float, covered: np.ndarray, face: Box | None = None
    ) -> Detection | None:
        """Pose + mask of the person in ``box`` (``covered`` pixels blanked); with ``face``,
        only if the person's nose lies in (or near) that face."""
        height, width = image.shape[:2]
        inside = box.clip(height, width)
        if inside.width < 8 or inside.height < 8:
            return None
        pixels = image[inside.y0 : inside.y1, inside.x0 : inside.x1].copy()
        pixels[covered[inside.y0 : inside.y1, inside.x0 : inside.x1]] = 0
        pose = self.models.estimate_pose(pixels)
        if pose is None:
            return None
        keypoints = pose.keypoints.copy()
        keypoints[:, 0] += inside.x0
        keypoints[:, 1] += inside.y0
        if face is not None:
            nose_x, nose_y = keypoints[0, :2]
            grown = Box(
                face.x0 - face.width // 2,
                face.y0 - face.height // 2,
                face.x1 + face.width // 2,
                face.y1 + face.height // 2,
            )
            if not (grown.x0 <= nose_x < grown.x1 and grown.y0 <= nose_y < grown.y1):
                return None
        mask = self.mask_of(pose, inside)
        if mask is None:
            return None
        new = mask & ~covered[inside.y0 : inside.y1, inside.x0 : inside.x1]
        if new.sum() < 0.5 * mask.sum():  # mostly a person found before
            return None
        mask = new
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        tight = Box(
            inside.x0 + int(cols[0]),
            inside.y0 + int(rows[0]),
            inside.x0 + int(cols[-1]) + 1,
            inside.y0 + int(rows[-1]) + 1,
        )
        local = mask[tight.y0 - inside.y0 : tight.y1 - inside.y0, tight.x0 - inside.x0 : tight.x1 - inside.x0]
        return Detection(tight, float(min(max(score, 0.0), 1.0)), local, keypoints, "person")

    def mask_of(self, pose: PoseResult, inside: Box) -> np.ndarray | None:
        if pose.segmentation is None or pose.segmentation.shape != (inside.height, inside.width):
            return None
        mask = pose.segmentation > self.mask_threshold
        return mask if mask.any() else None

    def add_unless_duplicate(self, persons: list[Detection], person: Detection) -> bool:
        """Append ``person`` unless its mask mostly overlaps one already found (keep the larger).

        Returns whether ``persons`` changed.
        """
        for i, other in enumerate(persons):
            common = person.box.intersect(other.box)
            if common.is_empty():
                continue
            a = person.full_mask()[
                common.y0 - person.box.y0 : common.y1 - person.box.y0,
                common.x0 - person.box.x0 : common.x1 - person.box.x0,
            ]
            b = other.full_mask()[
                common.y0 - other.box.y0 : common.y1 - other.box.y0, common.x0 - other.box.x0 : common.x1 - other.box.x0
            ]
            inter = int((a & b).sum())
            union = int(person.full_mask().sum() + other.full_mask().sum()) - inter
            if union and inter / union > self.duplicate_iou:
                if person.full_mask().sum() > other.full_mask().sum():
                    persons[i] = person
                    return True
                return False
        persons.append(person)
        return True


def body_below(face: Box) -> Box:
    """A box that would hold a standing body whose face is ``face`` (about 8 faces tall)."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2
    return Box(int(cx - 2.5 * size), int(face.y0 - size / 2), int(cx + 2.5 * size), int(face.y0 + 8 * size))
