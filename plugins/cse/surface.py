"""From a ROI's 112x112 DensePose output to its surface map over the box: resize to the box,
foreground mask, closest mesh vertex per pixel (DensePose's ``get_closest_vertices_mask_from_ES``
as its vertex visualizer calls it, up to floating-point near-ties; ../shared/reference/cse/INFERENCE.md section 7.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sganon.core.errors import ConfigError
from sganon.core.precision import without_autocast

#: Pixels per score-matrix chunk: a [chunk, K] float32 matrix (K = 27554: 113 MB per 1024 pixels).
DEFAULT_CHUNK_SIZE = 1024


def box_xywh_int(box_xyxy: torch.Tensor) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of a float XYXY box, each truncated toward zero on its own (w = int(x1 - x0)).

    >>> box_xywh_int(torch.tensor([0.0, 250.5, 180.25, 500.0]))
    (0, 250, 180, 249)
    """
    box = box_xyxy.detach().to("cpu", torch.float32)
    xywh = torch.stack((box[0], box[1], box[2] - box[0], box[3] - box[1]))
    return tuple(int(v) for v in xywh.int().tolist())


def resize_to_box(
    embedding: torch.Tensor, coarse_segm: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ROI's outputs stretched onto an ``height x width`` box (bilinear, align_corners=False).

    Args:
        embedding: ``[E, 112, 112]`` raw pixel embedding.
        coarse_segm: ``[2, 112, 112]`` (background, foreground) logits.
        height: Box height h (>= 0).
        width: Box width w (>= 0).
    Returns:
        Embedding ``[E, h, w]``, coarse segmentation ``[2, h, w]`` and the foreground mask
        bool ``[h, w]`` (``S1 > S0``; a tie is background, as argmax takes the first index).
    """
    if height <= 0 or width <= 0:
        height, width = max(height, 0), max(width, 0)
        return (
            embedding.new_zeros((embedding.shape[0], height, width)),
            coarse_segm.new_zeros((2, height, width)),
            torch.zeros((height, width), dtype=torch.bool, device=embedding.device),
        )
    resized_e = F.interpolate(embedding[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    resized_s = F.interpolate(coarse_segm[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return resized_e, resized_s, resized_s[1] > resized_s[0]


def closest_vertex_ids(
    pixels: torch.Tensor, vertex_embeddings: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """Index of the vertex closest (Euclidean) to every pixel embedding; first index on exact ties.

    ``argmin_v |e - v|^2 = argmax_v (e.v - |v|^2 / 2)``, evaluated as one matrix product of
    ``[e, 1]`` with ``[v, -|v|^2 / 2]`` per chunk of pixels (no ``[M, K]`` sums). DensePose
    evaluates ``|e|^2 - 2 e.v + |v|^2`` instead; in float32 the two can differ only where the
    best two vertices are within rounding of each other (VECTORS.md section 7, near-ties).

    Args:
        pixels: ``[M, E]`` pixel embeddings (not normalized).
        vertex_embeddings: ``[K, E]`` mesh vertex embeddings.
        chunk_size: Pixels per ``[chunk, K]`` score matrix; the result does not depend on it.
    Returns:
        int64 ``[M]``.
    """
    if chunk_size <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
    with without_autocast(pixels.device):  # float32 scores also in a bf16/fp16 pipeline
        if pixels.dtype in (torch.float16, torch.bfloat16):  # from an autocast forward
            pixels = pixels.to(vertex_embeddings.dtype)
        half_sq_norms = 0.5 * (vertex_embeddings * vertex_embeddings).sum(1, keepdim=True)
        vertices_t = torch.cat((vertex_embeddings, -half_sq_norms), dim=1).t().contiguous()  # [E + 1, K]
        ones = pixels.new_ones((pixels.shape[0], 1))
        augmented = torch.cat((pixels, ones), dim=1)  # [M, E + 1]
        ids = [
            torch.mm(augmented[start : start + chunk_size], vertices_t).argmax(dim=1)
            for start in range(0, augmented.shape[0], chunk_size)
        ]
    return torch.cat(ids) if ids else torch.zeros(0, dtype=torch.int64, device=pixels.device)


def closest_vertices_in_box(
    embedding: torch.Tensor,
    mask: torch.Tensor,
    vertex_embeddings: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Vertex id per box pixel: the closest vertex inside ``mask``, 0 outside (vertex 0 is valid too: use the mask).

    Args:
        embedding: ``[E, h, w]`` embedding resized to the box.
        mask: bool ``[h, w]`` foreground.
        vertex_embeddings: ``[K, E]``.
        chunk_size: See :func:`closest_vertex_ids`.
    Returns:
        int64 ``[h, w]``.
    """
    vertices = torch.zeros(mask.shape, dtype=torch.int64, device=embedding.device)
    pixels = embedding[:, mask].t()  # [M, E], row-major over the mask
    vertices[mask] = closest_vertex_ids(pixels, vertex_embeddings, chunk_size)
    return vertices


def segmentation_box_mask(coarse_segm: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The SG-GAN anonymizer's body mask ``S_box`` over an ``height x width`` box (V-SAM SPEC section 7.2).

    The 112x112 coarse segmentation is first reduced to its argmax (0/1; a tie is background),
    that map is resized bilinearly (align_corners=False) to the box, and ``> 0`` is taken: a box
    pixel is foreground when any foreground ROI cell contributes to it.

    Args:
        coarse_segm: ``[2, 112, 112]`` (background, foreground) logits.
        height: Box height h (> 0).
        width: Box width w (> 0).
    Returns:
        bool ``[h, w]``.
    """
    labels = (coarse_segm[1] > coarse_segm[0]).to(coarse_segm.dtype)
    resized = F.interpolate(labels[None, None], size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0] > 0
