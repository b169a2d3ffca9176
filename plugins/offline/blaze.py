"""MediaPipe's face and pose models with the processing MediaPipe wraps around them, in torch.

The four models (files under ``models/``, Apache-2.0, from the ``mediapipe==0.10.21``
wheel) run on a whole batch at once: as :class:`~.tflite.TfliteModule` (torch, CUDA) or, on
the CPU, converted to ONNX for onnxruntime (:class:`~.tflite.OnnxRunner`):

* :class:`FaceDetector`: BlazeFace full range (``face_detection_full_range_sparse.tflite``),
  as MediaPipe's ``FaceDetection(model_selection=1)``;
* :class:`PoseDetector`: the BlazePose detector (``pose_detection.tflite``), every person
  proposal, as MediaPipe's ``PoseDetectionCpu`` graph;
* :class:`PoseLandmarker`: MediaPipe Pose (``static_image_mode``, model complexity 1,
  segmentation on) on whole crops: the detector's best proposal gives a rotated region,
  ``pose_landmark_full.tflite`` gives 33 keypoints and a mask there, both projected back;
* :class:`PersonSegmenter`: the selfie segmentation (``selfie_segmentation.tflite``), as
  MediaPipe's ``SelfieSegmentation(model_selection=0)``: the whole picture stretched to
  256x256, the probabilities resized back.

The processing follows MediaPipe 0.10.21's graphs: images are letterboxed into the model's
square input by a bilinear warp that maps the region's corners onto the tensor's corners
(OpenCV ``warpPerspective`` semantics: tensor pixel ``u`` samples ``x0 + u * w / size``);
SSD anchors; box decoding; weighted non-maximum suppression; letterbox removal; the pose
region from the detector's hip centre and body-size keypoint (rotated so the body is
upright, enlarged 1.25x); the landmark heatmap refinement; and the inverse warp of the mask.
Equality with the MediaPipe runtime is tested against recorded outputs
(``tests/test_blaze.py``, vectors made by ``benchmarks/record_mediapipe_vectors.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sganon.core.errors import PluginError
from sganon.core.structures import Box

from .tfjs import TfjsModule, traced_onnx
from .tflite import OnnxRunner, TfliteModule

MODELS_DIR = Path(__file__).parent / "models"
FACE_MODEL = "face_detection_full_range_sparse.tflite"
POSE_DETECTOR_MODEL = "pose_detection.tflite"
POSE_LANDMARK_MODEL = "pose_landmark_full.tflite"
SELFIE_MODEL = "selfie_segmentation.tflite"


def model_path(name: str) -> Path:
    path = MODELS_DIR / name
    if not path.is_file():
        raise PluginError(f"{path} is missing: the offline models ship with sganon; reinstall it (`pip install -e .`)")
    return path


@lru_cache(maxsize=None)
def load_model(name: str, device: str) -> TfliteModule | TfjsModule | OnnxRunner:
    """The model file ``name`` (``.tflite``, or a TF.js ``.json`` graph such as NanoDet's),
    loaded once per device: on the CPU in onnxruntime (one thread per call; 2-3x faster than
    torch on these small networks, measured in docs/offline-models.md), elsewhere as a torch
    module on ``device``. Both take and give torch tensors (the graph's input layout)."""
    path = model_path(name)
    if path.suffix == ".json":
        module = TfjsModule(path).eval()
        if device == "cpu":  # traced at the graph's declared batch (1): run one picture at a time
            return OnnxRunner(traced_onnx(module), max_batch=module.input_shape[0])
        return module.to(device)
    if device == "cpu":
        return OnnxRunner(path)
    return TfliteModule(path).eval().to(device)


@dataclass
class PoseProposal:
    """One person found by the BlazePose detector.

    Attributes:
        score: Detector confidence.
        center: ``(x, y)`` of the hip centre in image pixels.
        radius: Radius in pixels of the circle around the whole body.
        face: The face box the detector anchors on, in image pixels.
    """

    score: float
    center: tuple[float, float]
    radius: float
    face: Box

    def body_box(self, scale: float = 1.25) -> Box:
        """Square box around the body (MediaPipe enlarges its body circle by 1.25)."""
        half = self.radius * scale
        cx, cy = self.center
        return Box(int(cx - half), int(cy - half), int(np.ceil(cx + half)), int(np.ceil(cy + half)))


@dataclass
class PoseResult:
    """Pose of one person in a crop: keypoints ``[33, 3]`` (x, y, visibility) in crop pixels,
    segmentation ``[h, w]`` float in [0, 1]."""

    keypoints: np.ndarray
    segmentation: np.ndarray | None


@dataclass(frozen=True)
class Region:
    """A rotated rectangle in image pixels: centre, size, rotation (radians, clockwise on
    screen, MediaPipe's ``NormalizedRect.rotation``)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0


def whole_image_region(height: int, width: int) -> tuple[Region, tuple[float, float, float, float]]:
    """The square region that letterboxes a ``height x width`` image into a square tensor, and
    the padding ``(left, top, right, bottom)`` as fractions of that region (MediaPipe's PadRoi)."""
    if width >= height:  # a wide image: rows are added above and below
        pad = (1 - height / width) / 2
        return Region(width / 2, height / 2, width, width), (0.0, pad, 0.0, pad)
    pad = (1 - width / height) / 2
    return Region(width / 2, height / 2, height, height), (pad, 0.0, pad, 0.0)


def warp_matrix(region: Region, size: int) -> torch.Tensor:
    """``[2, 3]``: tensor pixel ``(u, v, 1)`` -> image pixel ``(x, y)`` (corners onto corners)."""
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    sx, sy = region.width / size, region.height / size
    # x = cx + cos * (u * sx - w/2) - sin * (v * sy - h/2), y likewise with sin, cos.
    return torch.tensor(
        [
            [cos * sx, -sin * sy, region.cx - cos * region.width / 2 + sin * region.height / 2],
            [sin * sx, cos * sy, region.cy - sin * region.width / 2 - cos * region.height / 2],
        ],
        dtype=torch.float32,
    )


def warp_into_tensor(image: torch.Tensor, region: Region, size: int, border: str) -> torch.Tensor:
    """Bilinear warp of ``region`` of ``image`` (``[3, H, W]`` float 0..255) into ``[3, size, size]``
    (rounded to whole 0..255 values as MediaPipe's uint8 warp). ``border``: ``zeros`` or ``border``
    (replicate)."""
    _, height, width = image.shape
    matrix = warp_matrix(region, size).to(image.device)
    steps = torch.arange(size, device=image.device, dtype=torch.float32)
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    x = matrix[0, 0] * u + matrix[0, 1] * v + matrix[0, 2]
    y = matrix[1, 0] * u + matrix[1, 1] * v + matrix[1, 2]
    # OpenCV's warp rounds source positions to 1/32 pixel (INTER_BITS); so do we.
    x, y = (x * 32).round() / 32, (y * 32).round() / 32
    grid = torch.stack([x / max(width - 1, 1) * 2 - 1, y / max(height - 1, 1) * 2 - 1], dim=-1)
    out = F.grid_sample(image[None], grid[None], mode="bilinear", padding_mode=border, align_corners=True)[0]
    return out.round().clamp(0, 255)


def image_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    """``[3, H, W]`` float32 0..255 of a uint8 RGB ``[H, W, 3]`` image."""
    pixels = np.ascontiguousarray(image)
    if not pixels.flags.writeable:  # torch wants writable memory (the copy is cheap next to the models)
        pixels = pixels.copy()
    return torch.from_numpy(pixels).to(device).permute(2, 0, 1).float()


@lru_cache(maxsize=None)
def ssd_anchor_centers(size: int, strides: tuple[int, ...], interpolated: bool) -> np.ndarray:
    """``[A, 2]`` (x, y) anchor centres of MediaPipe's SsdAnchorsCalculator with fixed anchor
    sizes (aspect ratio 1, offset 0.5): layers of equal stride share a grid; each layer gives one
    anchor per cell, two with the interpolated scale."""
    centers = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2 if interpolated else 1
            last += 1
        cells = math.ceil(size / strides[layer])
        for y in range(cells):
            for x in range(cells):
                centers += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
        layer = last
    return np.array(centers, np.float32)


@dataclass
class Candidate:
    """A decoded detection in normalized tensor coordinates: box ``(xmin, ymin, xmax, ymax)``,
    keypoints ``[K, 2]`` and score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode(
    boxes: torch.Tensor, scores: torch.Tensor, anchors: np.ndarray, size: int, num_keypoints: int, min_score: float
) -> list[list[Candidate]]:
    """MediaPipe's TensorsToDetectionsCalculator (reverse output order, sigmoid scores clipped at
    +-100, unit anchors) on a batch: ``boxes`` ``[N, A, 4 + 2K]``, ``scores`` ``[N, A, 1]``."""
    probabilities = torch.sigmoid(scores[..., 0].clamp(-100, 100)).cpu().numpy()
    raw = boxes.cpu().numpy()
    found = []
    for n in range(raw.shape[0]):
        keep = np.nonzero(probabilities[n] >= min_score)[0]
        items = []
        for a in keep:
            values = raw[n, a] / size
            cx, cy = values[0] + anchors[a, 0], values[1] + anchors[a, 1]
            w, h = values[2], values[3]
            points = values[4 : 4 + 2 * num_keypoints].reshape(num_keypoints, 2) + anchors[a]
            items.append(Candidate(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), points, float(probabilities[n, a])))
        found.append(items)
    return found


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width < 0 or height < 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(candidates: list[Candidate], threshold: float = 0.3) -> list[Candidate]:
    """MediaPipe's weighted non-maximum suppression: best first; every remaining candidate
    overlapping it by IoU > ``threshold`` is merged into it (box and keypoints averaged by
    score), the score stays the best one's."""
    remaining = sorted(candidates, key=lambda c: -c.score)
    kept = []
    while remaining:
        best = remaining[0]
        cluster = [c for c in remaining if iou(c.box, best.box) > threshold]
        remaining = [c for c in remaining if iou(c.box, best.box) <= threshold]
        weights = np.array([c.score for c in cluster], np.float64)
        if cluster:
            box = sum(w * c.box for w, c in zip(weights, cluster)) / weights.sum()
            points = sum(w * c.keypoints for w, c in zip(weights, cluster)) / weights.sum()
            best = Candidate(box, points, best.score)
        kept.append(best)
    return kept


def remove_letterbox(candidate: Candidate, padding: tuple[float, float, float, float]) -> Candidate:
    """Normalized tensor coordinates -> normalized image coordinates."""
    left, top, right, bottom = padding
    scale = np.array([1 - left - right, 1 - top - bottom])
    offset = np.array([left, top])
    box = np.concatenate([(candidate.box[:2] - offset) / scale, (candidate.box[2:] - offset) / scale])
    return Candidate(box, (candidate.keypoints - offset) / scale, candidate.score)


def pixel_box(box: np.ndarray, height: int, width: int) -> Box:
    """A normalized ``(xmin, ymin, xmax, ymax)`` in pixels, rounded outwards (as MediaPipe's
    relative box ``xmin, ymin, width, height`` was)."""
    x0, y0 = float(box[0]) * width, float(box[1]) * height
    x1 = x0 + (float(box[2]) - float(box[0])) * width
    y1 = y0 + (float(box[3]) - float(box[1])) * height
    return Box(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))


class _SsdDetector:
    """A BlazeFace-style SSD model on letterboxed whole images, batched."""

    model_name: str
    size: int
    strides: tuple[int, ...]
    interpolated: bool
    num_keypoints: int

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.anchors = ssd_anchor_centers(self.size, self.strides, self.interpolated)

    def candidates(self, images: Sequence[np.ndarray | torch.Tensor], min_score: float) -> list[list[Candidate]]:
        """Detections per image after NMS, in normalized image coordinates. ``images``: uint8 RGB
        ``[H, W, 3]`` arrays or ``[3, H, W]`` float 0..255 tensors (on this device)."""
        if not images:
            return []
        batch, paddings = [], []
        for image in images:
            pixels = image if isinstance(image, torch.Tensor) else image_tensor(image, self.device)
            region, padding = whole_image_region(pixels.shape[1], pixels.shape[2])
            batch.append(warp_into_tensor(pixels, region, self.size, "zeros"))
            paddings.append(padding)
        with torch.inference_mode():
            boxes, scores = load_model(self.model_name, self.device)(torch.stack(batch) / 127.5 - 1.0)
        decoded = decode(boxes, scores, self.anchors, self.size, self.num_keypoints, min_score)
        return [
            [remove_letterbox(c, padding) for c in weighted_nms(found)] for found, padding in zip(decoded, paddings)
        ]


class FaceDetector(_SsdDetector):
    """BlazeFace full range (MediaPipe ``FaceDetection(model_selection=1)``): candidates from score
    0.6 merged by NMS, then those of at least ``min_score`` kept.

    Args:
        min_score: Minimum face score (MediaPipe's ``min_detection_confidence``).
        device: Torch device of the model.
    """

    model_name = FACE_MODEL
    size = 192
    strides = (4,)
    interpolated = False
    num_keypoints = 6

    # The decoding threshold of MediaPipe 0.10.21's full-range graph: its 0.6 stays in force
    # whatever min_detection_confidence says (measured: its boxes match only with 0.6).
    GRAPH_MIN_SCORE = 0.6

    def __init__(self, min_score: float = 0.5, device: str = "cpu") -> None:
        super().__init__(device)
        self.min_score = min_score

    def detect_batch(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[list[tuple[Box, float]]]:
        """Face boxes (image pixels, may pass the borders) and scores, per image."""
        found = []
        for image, candidates in zip(images, self.candidates(images, self.GRAPH_MIN_SCORE)):
            height, width = (image.shape[1:] if isinstance(image, torch.Tensor) else image.shape[:2])
            found.append([(pixel_box(c.box, height, width), c.score) for c in candidates if c.score >= self.min_score])
        return found


class PoseDetector(_SsdDetector):
    """The BlazePose detector: every person proposal (MediaPipe's ``PoseDetectionCpu``:
    candidates from score 0.2 merged by NMS, then those of at least ``min_score`` kept).

    Args:
        min_score: Minimum proposal score.
        device: Torch device of the model.
    """

    model_name = POSE_DETECTOR_MODEL
    size = 224
    strides = (8, 16, 32, 32, 32)
    interpolated = True
    num_keypoints = 4
    GRAPH_MIN_SCORE = 0.5  # PoseDetectionCpu's decoding threshold in mediapipe 0.10.21 (measured)

    def __init__(self, min_score: float = 0.5, device: str = "cpu") -> None:
        super().__init__(device)
        self.min_score = min_score

    def detect_batch(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[list[PoseProposal]]:
        """Person proposals per image, in its pixels."""
        found = []
        for image, candidates in zip(images, self.candidates(images, self.GRAPH_MIN_SCORE)):
            height, width = (image.shape[1:] if isinstance(image, torch.Tensor) else image.shape[:2])
            found.append([proposal(c, height, width) for c in candidates if c.score >= self.min_score])
        return found


def proposal(candidate: Candidate, height: int, width: int) -> PoseProposal:
    (cx, cy), (ex, ey) = candidate.keypoints[:2] * np.array([width, height])
    face = pixel_box(candidate.box, height, width)
    return PoseProposal(candidate.score, (float(cx), float(cy)), float(np.hypot(ex - cx, ey - cy)), face)


def pose_region(candidate: Candidate, height: int, width: int, scale: float = 1.25) -> Region:
    """MediaPipe's PoseDetectionToRoi: a square centred on the hip centre (keypoint 0), side
    twice its distance to keypoint 1 times ``scale``, rotated so that 0 -> 1 points up."""
    (x0, y0), (x1, y1) = candidate.keypoints[:2] * np.array([width, height])
    side = 2 * math.hypot(x1 - x0, y1 - y0) * scale
    angle = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    angle -= 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    return Region(float(x0), float(y0), side, side, angle)


class PoseLandmarker:
    """MediaPipe Pose on whole crops, batched: per crop, the detector's best proposal (score at
    least ``min_detection_score``) gives a region; the landmark model gives 33 keypoints and a
    segmentation there (``None`` when its pose flag is under ``min_presence``).

    Args:
        min_detection_score: MediaPipe Pose's ``min_detection_confidence``.
        min_presence: MediaPipe Pose's pose-presence threshold (``min_tracking_confidence``).
        device: Torch device of the models.
    """

    size = 256
    heatmap_kernel = 7
    min_heatmap_confidence = 0.5

    def __init__(self, min_detection_score: float = 0.5, min_presence: float = 0.5, device: str = "cpu") -> None:
        self.detector = PoseDetector(device=device)
        self.min_detection_score = min_detection_score
        self.min_presence = min_presence
        self.device = device

    def estimate_batch(
        self, crops: Sequence[np.ndarray], given: Sequence[Region | None] | None = None
    ) -> list[PoseResult | None]:
        """The pose of the most prominent person in each uint8 RGB crop, or ``None``.
        ``given``: per crop, a region (crop pixels) for the landmark model instead of the
        detector's (``None``: the detector's), for people the detector does not propose."""
        pixels = [image_tensor(crop, self.device) for crop in crops]
        given = list(given) if given is not None else [None] * len(crops)
        to_detect = [i for i, region in enumerate(given) if region is None]
        detections = self.detector.candidates([pixels[i] for i in to_detect], self.min_detection_score)
        regions: list[tuple[int, Region]] = [(i, region) for i, region in enumerate(given) if region is not None]
        for i, found in zip(to_detect, detections):
            if found:
                regions.append((i, pose_region(found[0], crops[i].shape[0], crops[i].shape[1])))
        results: list[PoseResult | None] = [None] * len(crops)
        if not regions:
            return results
        batch = torch.stack([warp_into_tensor(pixels[i], region, self.size, "border") for i, region in regions])
        with torch.inference_mode():
            landmarks, flags, segmentations, heatmaps, _ = load_model(POSE_LANDMARK_MODEL, self.device)(batch / 255.0)
        presence = flags[:, 0].cpu().numpy()  # the graph ends in a sigmoid
        landmarks = landmarks.reshape(len(regions), 39, 5).cpu().numpy()
        heatmaps = torch.sigmoid(heatmaps).cpu().numpy()
        masks = torch.sigmoid(segmentations)
        for k, (i, region) in enumerate(regions):
            if presence[k] < self.min_presence:  # MediaPipe's ThresholdingCalculator: flag if >= threshold
                continue
            height, width = crops[i].shape[:2]
            points = refine_from_heatmap(landmarks[k, :, :2] / self.size, heatmaps[k], self.heatmap_kernel,
                                         self.min_heatmap_confidence)
            keypoints = np.empty((33, 3), np.float32)
            keypoints[:, :2] = project_points(points[:33], region)
            keypoints[:, 2] = 1 / (1 + np.exp(-landmarks[k, :33, 3]))
            segmentation = unwarp_mask(masks[k, 0], region, height, width).cpu().numpy()
            results[i] = PoseResult(keypoints, segmentation)
        return results


def refine_from_heatmap(points: np.ndarray, heatmap: np.ndarray, kernel: int, min_confidence: float) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmapCalculator: each normalized point ``[L, 2]`` moves to
    the confidence-weighted mean cell of the ``kernel``-wide window of its heatmap channel
    (``heatmap`` ``[L, h, w]``, sigmoid applied) when the window's best confidence reaches
    ``min_confidence``. Includes MediaPipe's bounds check (rows are not checked from above)."""
    channels, rows, cols = heatmap.shape
    refined = points.copy()
    offset = (kernel - 1) // 2
    for index in range(channels):
        col, row = int(points[index, 0] * cols), int(points[index, 1] * rows)  # C++ truncation
        if col < 0 or col >= cols or row < 0:
            continue
        r0, r1 = max(0, row - offset), min(rows, row + offset + 1)
        c0, c1 = max(0, col - offset), min(cols, col + offset + 1)
        window = heatmap[index, r0:r1, c0:c1].astype(np.float32)
        total = window.sum()
        if window.size == 0 or window.max() < min_confidence or total <= 0:
            continue
        refined[index, 0] = (window.sum(axis=0) * np.arange(c0, c1)).sum() / cols / total
        refined[index, 1] = (window.sum(axis=1) * np.arange(r0, r1)).sum() / rows / total
    return refined


def project_points(points: np.ndarray, region: Region) -> np.ndarray:
    """Normalized region coordinates ``[L, 2]`` -> image pixels (MediaPipe's LandmarkProjection)."""
    cos, sin = math.cos(region.rotation), math.sin(region.rotation)
    x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
    return np.stack(
        [(cos * x - sin * y) * region.width + region.cx, (sin * x + cos * y) * region.height + region.cy], axis=1
    )


def unwarp_mask(mask: torch.Tensor, region: Region, height: int, width: int) -> torch.Tensor:
    """The region's ``[S, S]`` mask warped back onto a ``height x width`` image (bilinear, zero
    outside the region; image pixel ``x`` maps to tensor pixel ``S * inverse(x / W)``, MediaPipe's
    WarpAffine of the inverse transform)."""
    size = mask.shape[-1]
    matrix = warp_matrix(region, size).double()
    forward = torch.cat([matrix, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    inverse = torch.linalg.inv(forward)[:2].float().to(mask.device)
    ys = torch.arange(height, device=mask.device, dtype=torch.float32)
    xs = torch.arange(width, device=mask.device, dtype=torch.float32)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    u = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    v = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    grid = torch.stack([u / (size - 1) * 2 - 1, v / (size - 1) * 2 - 1], dim=-1)
    return F.grid_sample(mask[None, None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]


class PersonSegmenter:
    """MediaPipe's selfie segmentation (the general 256x256 model): for every pixel, the
    probability that it shows a person. It looks at the whole picture stretched to its input
    (as MediaPipe's graph does) and needs no face and no whole body, so it also sees people
    from behind or cut by the frame's edge; it was made for people near the camera (video
    calls), and small people far away are not its.

    Args:
        device: Torch device of the model.
    """

    size = 256

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def segment_batch(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[np.ndarray]:
        """Float32 ``[H, W]`` person probabilities of each uint8 RGB ``[H, W, 3]`` image (or
        ``[3, H, W]`` float 0..255 tensor)."""
        pixels = [image_tensor(image, self.device) if isinstance(image, np.ndarray) else image for image in images]
        if not pixels:
            return []
        regions = [Region(p.shape[2] / 2, p.shape[1] / 2, p.shape[2], p.shape[1]) for p in pixels]
        batch = torch.stack([warp_into_tensor(p, region, self.size, "zeros") for p, region in zip(pixels, regions)])
        with torch.inference_mode():
            (masks,) = load_model(SELFIE_MODEL, self.device)(batch / 255.0)  # the graph ends in a sigmoid
        # Back to each image's size as MediaPipe does (a plain bilinear resize, half-pixel centres).
        return [
            F.interpolate(masks[k : k + 1], tuple(p.shape[1:]), mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
            for k, p in enumerate(pixels)
        ]
