"""The paper's anonymizer after the DensePose-CSE forward (SPEC section 7 of ``shared/reference/vsam``).

:func:`anonymize_densepose` turns the predictor's per-instance outputs into an anonymized
image with a V-SAM generator, exactly as the official ``full_body_anonymization`` anonymizer
does (checked against ``shared/reference/e2e``). It is built from small steps that the
pipeline calls one by one after its own DensePose forward (this is what
:func:`anonymize_steps` does)::

    instances = instances_from_predictor(densepose, height, width)           # 7.1-7.2
    persons = [p for i in instances if (p := expand_instance(i, height, width))]  # 7.3
    crops = [crop_inputs(image, p, vertex_table) for p in persons]            # 7.4-7.6
    bodies = generate_bodies(generator, crops, truncation, z)                 # 7.7
    out = paste_bodies(image, crops, bodies)                                  # 7.8
    region = paste_region(height, width, crops)    # the pixels that may have changed

``densepose`` holds, per detection in detection order and in original-image pixels:
``boxes_xywh`` float ``[N, 4]``, ``coarse_segm`` float ``[N, 2, h, w]`` (channel 1 = person)
and ``embedding`` float ``[N, 16, h, w]`` (``DensePoseCSE.densepose_from_boxes`` gives the
last two; its boxes, XYXY, convert with ``x0, y0, x1 - x0, y1 - y0``), for the detections
above the detector's score threshold (0.3 in the paper's CLI, SPEC 7.1).

Where a helper of :mod:`sganon.core` differs from the official code in a corner case, this
module has its own (see :func:`expanded_box` and :func:`paste_bodies`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from sganon.core.boxes import PAPER_MIN_AREA, expand_person_box, tight_box
from sganon.core.crops import PersonCrop, paste_back, prepare_person_crop, to_uint8
from sganon.core.errors import ConfigError, InputError
from sganon.core.precision import without_autocast
from sganon.core.structures import Box, Detection, SurfaceMap

#: The generator's crop size (height, width).
CROP_SIZE = (288, 160)
#: Instances per generator call, as in the official anonymizer (z is drawn per batch).
BATCH_SIZE = 2
#: Pixels per ``[chunk, K]`` distance matrix of the vertex search (K = 27554: 113 MB each of two buffers at 1024).
VERTEX_CHUNK = 1024


@dataclass
class DensePoseInstance:
    """One non-empty detection, resized to its (rounded) box (SPEC 7.1-7.2).

    Attributes:
        det_index: Position in the predictor outputs.
        box: Rounded XYXY detection box (inside the image).
        segmentation: bool ``[box.height, box.width]`` person mask ``S_box``.
        embedding: float ``[16, box.height, box.width]`` CSE embedding over the box (its device).
    """

    det_index: int
    box: Box
    segmentation: np.ndarray
    embedding: torch.Tensor


@dataclass
class ExpandedInstance:
    """A detection with its crop box (SPEC 7.3); ``tight_box`` is the box of ``S_box``."""

    instance: DensePoseInstance
    tight_box: Box
    exp_box: Box


@dataclass
class CropInputs:
    """The generator inputs of one person at :data:`CROP_SIZE` (SPEC 7.4-7.6).

    Attributes:
        det_index: Position in the predictor outputs.
        exp_box: Expanded box in the image (may pass the borders).
        image: ``[3, H, W]`` float in [-1, 1] (-1 outside the image).
        e_mask: bool ``[H, W]`` person pixels ``M0`` (``E_mask``).
        dilated: bool ``[H, W]`` ``M0`` dilated by a disk; ``mask = ~dilated``.
        vertices: int64 ``[H, W]`` nearest vertex per ``e_mask`` pixel, 0 elsewhere.
        embedding: ``[16, H, W]`` ``vertex_table[vertices] * e_mask`` (the G input).
        crop: The same as the pipeline's :class:`~sganon.core.crops.PersonCrop` (what
            :func:`sganon.core.crops.paste_back` writes back).
    """

    det_index: int
    exp_box: Box
    image: torch.Tensor
    e_mask: torch.Tensor
    dilated: torch.Tensor
    vertices: torch.Tensor
    embedding: torch.Tensor
    crop: PersonCrop

    @property
    def mask(self) -> torch.Tensor:
        """bool ``[H, W]``, 1 = known pixel."""
        return ~self.dilated

    @property
    def border(self) -> torch.Tensor:
        """bool ``[H, W]``, the dilation ring around ``e_mask``."""
        return self.dilated & ~self.e_mask


def rounded_boxes(boxes_xywh: torch.Tensor) -> torch.Tensor:
    """int64 ``[N, 4]`` XYXY: ``round(x0), round(y0), round(x0 + w), round(y0 + h)`` in the boxes' dtype (half to even)."""
    boxes = boxes_xywh.detach().cpu()
    x0, y0, w, h = boxes.unbind(1)
    return torch.stack((x0, y0, x0 + w, y0 + h), dim=1).round().long()


def instances_from_predictor(densepose: Mapping[str, Any], image_height: int, image_width: int) -> list[DensePoseInstance]:
    """SPEC 7.1-7.2: ``S = argmax(coarse_segm)``, rounded boxes, empty boxes dropped, both resized to the box.

    Raises:
        InputError: missing keys, mismatched shapes, or a box outside the image.
    """
    try:
        boxes_xywh, coarse_segm, embedding = (densepose[k] for k in ("boxes_xywh", "coarse_segm", "embedding"))
    except KeyError as error:
        raise InputError(f"densepose outputs need boxes_xywh, coarse_segm and embedding; missing {error}") from None
    n = boxes_xywh.shape[0]
    if tuple(boxes_xywh.shape) != (n, 4) or coarse_segm.ndim != 4 or coarse_segm.shape[:2] != (n, 2):
        raise InputError(
            f"expected boxes_xywh [N, 4] and coarse_segm [N, 2, h, w], got {list(boxes_xywh.shape)} "
            f"and {list(coarse_segm.shape)}"
        )
    if embedding.ndim != 4 or embedding.shape[0] != n:
        raise InputError(f"expected embedding [N, C, h, w] with N = {n}, got {list(embedding.shape)}")
    boxes = rounded_boxes(boxes_xywh)
    labels = coarse_segm.argmax(dim=1)  # ties -> background
    instances = []
    for index in range(n):
        x0, y0, x1, y1 = boxes[index].tolist()
        if x0 == x1 or y0 == y1:
            continue
        box = Box(x0, y0, x1, y1)
        if x0 < 0 or y0 < 0 or x1 > image_width or y1 > image_height or box.is_empty():
            raise InputError(f"detection {index} box {box.to_list()} is not inside the {image_width}x{image_height} image")
        size = (box.height, box.width)
        label = labels[index].float()[None, None]  # 0/1 as float32, as the official code
        segmentation = F.interpolate(label, size=size, mode="bilinear", align_corners=False)[0, 0] > 0
        resized = F.interpolate(embedding[index : index + 1], size=size, mode="bilinear", align_corners=False)[0]
        instances.append(DensePoseInstance(index, box, segmentation.cpu().numpy(), resized))
    return instances


def expanded_box(
    segmentation: np.ndarray, box: Box, image_height: int, image_width: int
) -> tuple[Box, Box]:
    """SPEC 7.3: ``(tight box, expanded box)``, by :func:`sganon.core.boxes.expand_person_box`."""
    expanded = expand_person_box(segmentation, box, image_height, image_width, min_area=0)
    return tight_box(segmentation, box), expanded


def expand_instance(instance: DensePoseInstance, image_height: int, image_width: int) -> ExpandedInstance | None:
    """SPEC 7.3 for one instance; ``None`` when its tight box is under 32x32 pixels (skipped)."""
    tight, exp_box = expanded_box(instance.segmentation, instance.box, image_height, image_width)
    if tight.area < PAPER_MIN_AREA:
        return None
    return ExpandedInstance(instance, tight, exp_box)


def closest_vertices(pixels: torch.Tensor, vertex_table: torch.Tensor, chunk_size: int = VERTEX_CHUNK) -> torch.Tensor:
    """Nearest row of ``vertex_table`` ``[K, C]`` for each of ``pixels`` ``[M, C]``: int64 ``[M]``.

    DensePose's own evaluation: squared distances ``-2 e.v + |e|^2 + |v|^2`` in the table's
    dtype, ``argmin`` (first index on ties), ``chunk_size`` pixels at a time (memory is
    ``chunk_size * K`` values). Runs on the vertex table's device.
    """
    if chunk_size <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
    with without_autocast(vertex_table.device):  # in the table's dtype also under autocast
        return nearest_rows(pixels.to(vertex_table.device, vertex_table.dtype), vertex_table, chunk_size)


def nearest_rows(pixels: torch.Tensor, vertex_table: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """:func:`closest_vertices` of ``pixels`` already in the table's device and dtype."""
    if pixels.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=vertex_table.device)
    table_t = vertex_table.t()
    table_sq = (vertex_table * vertex_table).sum(1, keepdim=True).t()  # [1, K]
    # Two [chunk, K] buffers reused for every chunk (a fresh large tensor per chunk costs page faults).
    rows = min(chunk_size, pixels.shape[0])
    products = pixels.new_empty((rows, vertex_table.shape[0]))
    norms = torch.empty_like(products)
    ids = []
    for start in range(0, pixels.shape[0], chunk_size):
        chunk = pixels[start : start + chunk_size]
        distances, sums = products[: chunk.shape[0]], norms[: chunk.shape[0]]
        torch.mm(-2 * chunk, table_t, out=distances)
        torch.add((chunk * chunk).sum(1, keepdim=True), table_sq, out=sums)  # |e|^2 + |v|^2 first, as DensePose
        distances += sums
        ids.append(distances.argmin(dim=1))
    return torch.cat(ids)


def vertex_surface(
    vertex_table: torch.Tensor, chunk_size: int = VERTEX_CHUNK
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """SPEC 7.6 as the pipeline's ``surface_at_crop`` hook: ``(embedding [E, H, W] at crop
    resolution, mask bool [H, W]) -> (vertex_table[vertices] * mask, vertices int64 [H, W])``.

    The nearest-vertex search runs on the vertex table's device; results come back on the
    embedding's device.
    """

    def surface_at_crop(embedding: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask.to(torch.bool)
        vertices = torch.zeros(mask.shape, dtype=torch.int64, device=vertex_table.device)
        on_table = mask.to(vertex_table.device)
        vertices[on_table] = closest_vertices(embedding[:, mask].t(), vertex_table, chunk_size)
        surface = vertex_table.to(embedding.dtype)[vertices].permute(2, 0, 1) * on_table
        return surface.to(embedding.device), vertices.to(embedding.device)

    return surface_at_crop


def crop_inputs(
    image: np.ndarray,
    person: ExpandedInstance,
    vertex_table: torch.Tensor,
    size: tuple[int, int] = CROP_SIZE,
    chunk_size: int = VERTEX_CHUNK,
) -> CropInputs:
    """SPEC 7.4-7.6: crop and resize one person to ``size``, dilate its mask, assign vertices.

    This is the pipeline's own :func:`sganon.core.crops.prepare_person_crop` with the
    nearest-vertex hook :func:`vertex_surface` and the reference's exact paste region.

    Args:
        image: uint8 RGB ``[H, W, 3]``.
        person: The instance and its expanded box.
        vertex_table: Raw ``[K, 16]`` vertex embeddings (the search runs on its device).
        size: Crop size (height, width).
        chunk_size: Pixels per distance matrix of the vertex search.
    """
    instance = person.instance
    height, width = image.shape[:2]
    detection = Detection(instance.box, 1.0, instance.segmentation)
    embedding = instance.embedding.detach().float().cpu().numpy()
    surface = SurfaceMap(instance.box, embedding, instance.segmentation)
    crop = prepare_person_crop(
        image, detection, surface, size, int(embedding.shape[0]), min_area=0, index=instance.det_index,
        surface_at_crop=vertex_surface(vertex_table, chunk_size), fail_safe=False,
    )
    if crop is None or crop.crop.box != person.exp_box:
        raise InputError(f"detection {instance.det_index}: its crop box differs from SPEC 7.3's {person.exp_box}")
    dilated = crop.mask[0] < 0.5
    return CropInputs(
        det_index=instance.det_index,
        exp_box=person.exp_box,
        image=crop.image,
        e_mask=dilated & (crop.border[0] < 0.5),
        dilated=dilated,
        vertices=crop.vertices.cpu(),
        embedding=crop.embedding.cpu(),
        crop=crop,
    )


@torch.no_grad()
def generate_bodies(
    generator: torch.nn.Module,
    crops: list[CropInputs],
    truncation: float | None = 0.0,
    z: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[torch.Tensor]:
    """SPEC 7.7: run G on the crops in batches; uint8 ``[3, H, W]`` (CPU) per crop.

    Args:
        generator: A V-SAM generator in eval mode (e.g. from ``load_fba_checkpoint``).
        crops: The prepared crops, in paste order.
        truncation: W-interpolation t in [0, 1] (0: ``w = w_avg``, z has no effect); ``None``: none.
        z: ``[len(crops), z_channels]``, row k for crop k; ``None`` draws ``randn(B, z)`` per batch.
        batch_size: Crops per generator call.
    """
    if z is not None and (z.ndim != 2 or z.shape[0] != len(crops)):
        raise InputError(f"z must have one row per anonymized person ({len(crops)}), got {list(z.shape)}")
    device = next(generator.parameters()).device
    bodies = []
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size]
        image = torch.stack([c.image for c in batch]).to(device)
        mask = torch.stack([c.mask for c in batch]).float()[:, None].to(device)
        border = torch.stack([c.border for c in batch]).float()[:, None].to(device)
        embedding = torch.stack([c.embedding for c in batch]).to(device)
        vertices = torch.stack([c.vertices for c in batch]).to(device)
        if z is None:
            batch_z = torch.randn(len(batch), generator.z_channels, device=device)
        else:
            batch_z = z[start : start + batch_size].to(device=device, dtype=image.dtype)
        out = generator(image * mask, mask, border, embedding, vertices, z=batch_z, truncation=truncation)["img"]
        bodies.extend(to_uint8(img).to(torch.uint8) for img in out)
    return bodies


def paste_bodies(image: np.ndarray, crops: list[CropInputs], bodies: list[torch.Tensor]) -> np.ndarray:
    """SPEC 7.8: paste generated bodies into a copy of ``image``, in the order given, with the
    pipeline's :func:`sganon.core.crops.paste_back` (pass 1 person pixels, pass 2 the rings;
    each pass claims what it writes, first writer wins)."""
    return paste_back(image, [crop.crop for crop in crops], bodies)


def paste_region(image_height: int, image_width: int, crops: list[CropInputs]) -> np.ndarray:
    """bool ``[H, W]``: every pixel :func:`paste_bodies` may write (the union of the resized dilated masks)."""
    region = np.zeros((image_height, image_width), dtype=bool)
    for crop in crops:
        frame = crop.crop.crop
        frame.paste(region, np.ones(crop.crop.region.shape, dtype=bool), crop.crop.region)
    return region


@dataclass
class DensePoseAnonymization:
    """Everything :func:`anonymize_steps` computed, for inspection (privacy checks, debugging).

    Attributes:
        image: The anonymized uint8 ``[H, W, 3]`` image.
        instances: The non-empty detections (SPEC 7.1-7.2).
        persons: The instances that survived the 32x32 filter, with their boxes (7.3).
        crops: Their generator inputs (7.4-7.6), in paste order.
        bodies: The generated uint8 ``[3, H, W]`` crops (7.7).
        region: bool ``[H, W]``, every pixel the paste-back may have written (7.8).
    """

    image: np.ndarray
    instances: list[DensePoseInstance]
    persons: list[ExpandedInstance]
    crops: list[CropInputs]
    bodies: list[torch.Tensor]
    region: np.ndarray


def anonymize_steps(
    image: np.ndarray,
    densepose: Mapping[str, Any],
    vertex_table: torch.Tensor,
    generator: torch.nn.Module,
    truncation: float = 0.0,
    z: torch.Tensor | None = None,
    chunk_size: int = VERTEX_CHUNK,
) -> DensePoseAnonymization:
    """:func:`anonymize_densepose` keeping every intermediate result (same arguments, plus ``chunk_size``)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be a uint8 RGB [H, W, 3] array, got {getattr(image, 'shape', type(image))}")
    height, width = image.shape[:2]
    # Crops at the generator's resolution: 288x160 for the released model (SPEC 7.4).
    size = tuple(int(v) for v in getattr(generator, "resolution", CROP_SIZE))
    instances = instances_from_predictor(densepose, height, width)
    persons = [p for p in (expand_instance(i, height, width) for i in instances) if p is not None]
    if z is not None and (z.ndim != 2 or z.shape[0] != len(persons)):
        raise InputError(f"z must have one row per anonymized person ({len(persons)}), got {list(z.shape)}")
    crops = [crop_inputs(image, person, vertex_table, size, chunk_size) for person in persons]
    bodies = generate_bodies(generator, crops, truncation, z)
    return DensePoseAnonymization(
        image=paste_bodies(image, crops, bodies),
        instances=instances,
        persons=persons,
        crops=crops,
        bodies=bodies,
        region=paste_region(height, width, crops),
    )


def anonymize_densepose(
    image: np.ndarray,
    densepose: Mapping[str, Any],
    vertex_table: torch.Tensor,
    generator: torch.nn.Module,
    truncation: float = 0.0,
    z: torch.Tensor | None = None,
) -> np.ndarray:
    """Anonymize every person of the DensePose outputs with a V-SAM generator (SPEC 7.1-7.8).

    Args:
        image: uint8 RGB ``[H, W, 3]``.
        densepose: ``boxes_xywh`` ``[N, 4]``, ``coarse_segm`` ``[N, 2, h, w]``, ``embedding``
            ``[N, 16, h, w]`` in image pixels, detection order (any device).
        vertex_table: Raw ``[27554, 16]`` vertex embeddings (unit rows; DensePose's
            ``smpl_27554``); the vertex search runs on its device.
        generator: V-SAM G in eval mode, e.g. ``load_fba_checkpoint(path)[0]`` (any device).
        truncation: W-interpolation toward ``w_avg`` in [0, 1] (0: ``w = w_avg``, z has no effect).
        z: ``[M, z_channels]`` for the M persons that are anonymized (after the filters), in
            detection order; ``None`` draws ``randn(B, z_channels)`` per batch of 2.

    Returns:
        The anonymized uint8 ``[H, W, 3]`` image (a copy; pixels outside the persons'
        dilated regions are unchanged).

    Raises:
        InputError: a malformed image or predictor output, or z with the wrong number of rows.
    """
    return anonymize_steps(image, densepose, vertex_table, generator, truncation, z).image


def e2e_comparison(output: np.ndarray, expected: np.ndarray, region: np.ndarray) -> dict[str, Any]:
    """The measures of the end-to-end vectors' rule (shared/reference/e2e/FORMAT.md) for one
    case: ``outside_max`` (largest per-pixel channel difference outside ``region``),
    ``inside_max`` and ``inside_share_le2`` (share within 2 levels) inside it, and ``ok``:
    identical outside, >= 99.5 % within 2 levels inside and none over 8."""
    d = np.abs(output.astype(np.int32) - expected.astype(np.int32)).max(axis=2)
    inside = d[region]
    measures: dict[str, Any] = {
        "outside_max": int(d[~region].max()) if (~region).any() else 0,
        "inside_max": int(inside.max()) if inside.size else 0,
        "inside_share_le2": float((inside <= 2).mean()) if inside.size else 1.0,
    }
    measures["ok"] = (
        measures["outside_max"] == 0 and measures["inside_share_le2"] >= 0.995 and measures["inside_max"] <= 8
    )
    return measures
