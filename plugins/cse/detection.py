"""Box arithmetic of the detector path: input resize, anchors, box decoding, proposal and
detection selection, and the rescale back to the original image (detectron2 semantics;
../shared/reference/cse/INFERENCE.md sections 3 and 7)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from sganon.core.structures import check_rgb_image

from .network import ANCHOR_ASPECT_RATIOS, ANCHOR_SIZES, FPN_STRIDES

#: detectron2's PIXEL_MEAN (BGR order, 0..255 scale); PIXEL_STD is 1.
PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
SIZE_DIVISIBILITY = 32
#: Deltas are clamped at log(1000/16) before exp().
SCALE_CLAMP = math.log(1000.0 / 16)
RPN_DELTA_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """ResizeShortestEdge's output (h, w): shortest edge to ``min_size``, longest capped at ``max_size``, rounded half up.

    >>> resized_size(512, 512, 800, 1333), resized_size(300, 600, 800, 1333)
    ((800, 800), (667, 1333))
    """
    scale = min_size * 1.0 / min(height, width)
    if height < width:
        new_h, new_w = min_size * 1.0, scale * width
    else:
        new_h, new_w = scale * height, min_size * 1.0
    if max(new_h, new_w) > max_size:
        scale = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    # at least one pixel (detectron2 itself fails on a side that rounds to 0)
    return max(1, int(new_h + 0.5)), max(1, int(new_w + 0.5))


def resize_bgr(image: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """The network's view of an RGB uint8 image: PIL-bilinear resized, BGR, uint8 ``[3, h, w]``.

    PIL's bilinear filter antialiases when shrinking and rounds to uint8; resizing RGB then
    flipping equals flipping then resizing (the filter is per channel).
    """
    image = check_rgb_image(image)
    new_h, new_w = resized_size(image.shape[0], image.shape[1], min_size, max_size)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    return np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1))


def batch_images(resized_bgr: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Normalize (BGR - mean) and zero-pad bottom/right to a common size, multiple of 32: ``[N, 3, Hp, Wp]``."""
    height = max(image.shape[1] for image in resized_bgr)
    width = max(image.shape[2] for image in resized_bgr)
    height = -(-height // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    width = -(-width // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    batch = torch.zeros((len(resized_bgr), 3, height, width), dtype=torch.float32, device=device)
    mean = torch.tensor(PIXEL_MEAN_BGR, dtype=torch.float32, device=device).reshape(3, 1, 1)
    for index, image in enumerate(resized_bgr):
        pixels = torch.from_numpy(image)
        if device.type == "cuda":  # uint8 from pinned memory, no host sync
            pixels = pixels.pin_memory().to(device, non_blocking=True)
        pixels = pixels.to(device=device, dtype=torch.float32)
        batch[index, :, : image.shape[1], : image.shape[2]] = (pixels - mean) / 1.0
    return batch


def anchors_for_level(level: str, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Anchors ``[h*w*A, 4]`` (XYXY, input pixels) of an FPN level, row-major cells, A ratios per cell.

    One size per level; ``w = sqrt(size^2 / ratio)``, ``h = ratio * w``, not rounded; offset 0.
    """
    size = float(ANCHOR_SIZES[level])
    base = []
    for ratio in ANCHOR_ASPECT_RATIOS:
        w = math.sqrt(size * size / ratio)
        h = ratio * w
        base.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    base_anchors = torch.tensor(base, dtype=torch.float32, device=device)
    stride = FPN_STRIDES[level]
    shift_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=device)
    shift_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=device)
    grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
    grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
    shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=1)
    return (shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4)


def decode_boxes(deltas: torch.Tensor, boxes: torch.Tensor, weights: tuple[float, float, float, float]) -> torch.Tensor:
    """Apply (dx, dy, dw, dh) ``deltas`` ``[R, 4]`` to ``boxes`` ``[R, 4]`` XYXY (dw, dh clamped at log(1000/16))."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    center_x = boxes[:, 0] + 0.5 * widths
    center_y = boxes[:, 1] + 0.5 * heights
    dx = deltas[:, 0] / weights[0]
    dy = deltas[:, 1] / weights[1]
    dw = torch.clamp(deltas[:, 2] / weights[2], max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3] / weights[3], max=SCALE_CLAMP)
    new_center_x = dx * widths + center_x
    new_center_y = dy * heights + center_y
    new_w = torch.exp(dw) * widths
    new_h = torch.exp(dh) * heights
    return torch.stack(
        (new_center_x - 0.5 * new_w, new_center_y - 0.5 * new_h, new_center_x + 0.5 * new_w, new_center_y + 0.5 * new_h),
        dim=1,
    )


def clip_boxes(boxes: torch.Tensor, height: int | float, width: int | float) -> torch.Tensor:
    """XYXY ``boxes`` ``[R, 4]`` clamped to ``[0, width] x [0, height]``."""
    return torch.stack(
        (boxes[:, 0].clamp(min=0, max=width), boxes[:, 1].clamp(min=0, max=height),
         boxes[:, 2].clamp(min=0, max=width), boxes[:, 3].clamp(min=0, max=height)),
        dim=1,
    )


def nonempty(boxes: torch.Tensor) -> torch.Tensor:
    """Bool ``[R]``: width and height strictly positive."""
    return ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)


def select_proposals(
    objectness: list[torch.Tensor],
    deltas: list[torch.Tensor],
    anchors: list[torch.Tensor],
    image_size: tuple[int, int],
    pre_nms_topk: int,
    post_nms_topk: int,
    nms_threshold: float,
) -> torch.Tensor:
    """RPN proposals of one image: top-k per level, decode, clip, drop empty, NMS per level, top-k overall.

    Args:
        objectness: Per level ``[A, h, w]`` logits.
        deltas: Per level ``[4A, h, w]`` deltas.
        anchors: Per level ``[h*w*A, 4]`` anchors.
        image_size: (h, w) of the resized image (before padding).
        pre_nms_topk: Kept per level before NMS.
        post_nms_topk: Kept after NMS.
        nms_threshold: IoU threshold.
    Returns:
        ``[P, 4]`` proposals (XYXY input pixels), by decreasing objectness.
    """
    from torchvision.ops import batched_nms  # imported when used: torchvision is slow to import

    boxes, scores, levels = [], [], []
    for level, (logits, level_deltas, level_anchors) in enumerate(zip(objectness, deltas, anchors)):
        count = logits.shape[0]
        logits = logits.permute(1, 2, 0).reshape(-1)  # (h, w, A) order, like the anchors
        level_deltas = level_deltas.reshape(count, 4, *level_deltas.shape[1:]).permute(2, 3, 0, 1).reshape(-1, 4)
        top = min(pre_nms_topk, logits.numel())
        top_scores, top_index = logits.topk(top)
        boxes.append(decode_boxes(level_deltas[top_index], level_anchors[top_index], RPN_DELTA_WEIGHTS))
        scores.append(top_scores)
        levels.append(torch.full((top,), level, dtype=torch.int64, device=logits.device))
    boxes_all, scores_all, levels_all = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
    finite = torch.isfinite(boxes_all).all(dim=1) & torch.isfinite(scores_all)
    boxes_all, scores_all, levels_all = boxes_all[finite], scores_all[finite], levels_all[finite]
    boxes_all = clip_boxes(boxes_all, *image_size)
    keep = nonempty(boxes_all)
    boxes_all, scores_all, levels_all = boxes_all[keep], scores_all[keep], levels_all[keep]
    keep = batched_nms(boxes_all, scores_all, levels_all, nms_threshold)[:post_nms_topk]
    return boxes_all[keep]


def select_detections(
    proposals: torch.Tensor,
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    image_size: tuple[int, int],
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Person detections of one image from the box head: softmax, decode, clip, ``score > threshold``, NMS, top-k.

    Args:
        proposals: ``[P, 4]`` proposal boxes.
        class_logits: ``[P, 2]`` (person, background).
        box_deltas: ``[P, 4]`` person-class deltas (weights 10, 10, 5, 5).
        image_size: (h, w) of the resized image.
        score_threshold: Strict lower bound on the person probability.
        nms_threshold: IoU threshold.
        max_detections: Most detections kept.
    Returns:
        Boxes ``[D, 4]`` (input pixels, clipped) and scores ``[D]``, by decreasing score.
    """
    from torchvision.ops import batched_nms

    scores = torch.softmax(class_logits, dim=-1)
    boxes = decode_boxes(box_deltas, proposals, BOX_DELTA_WEIGHTS)
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    boxes, scores = boxes[finite], scores[finite, 0]  # drop the background column
    boxes = clip_boxes(boxes, *image_size)
    keep = scores > score_threshold
    boxes, scores = boxes[keep], scores[keep]
    keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.int64), nms_threshold)[:max_detections]
    return boxes[keep], scores[keep]


def boxes_to_input(boxes: torch.Tensor, original_size: tuple[int, int], input_size: tuple[int, int]) -> torch.Tensor:
    """Original-image XYXY boxes ``[R, 4]`` -> network-input frame: ``box * new / old`` in float64, then float32."""
    (old_h, old_w), (new_h, new_w) = original_size, input_size
    scale = torch.tensor([new_w / old_w, new_h / old_h, new_w / old_w, new_h / old_h], dtype=torch.float64)
    return (boxes.detach().to("cpu", torch.float64) * scale).to(device=boxes.device, dtype=torch.float32)


def boxes_to_original(boxes: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
    """detectron2's ``detector_postprocess``: scale float32 boxes back (factors in Python float) and clip."""
    (in_h, in_w), (out_h, out_w) = input_size, original_size
    scaled = boxes.to(torch.float32).clone()
    scaled[:, 0::2] *= out_w / in_w
    scaled[:, 1::2] *= out_h / in_h
    return clip_boxes(scaled, out_h, out_w)
