"""Person crops for a generator and paste-back (SPEC §7.4, §7.5 and §7.8 of ``shared/reference/vsam``).

:func:`prepare_person_crop` turns one detection (+ its surface map) into the generator's
inputs at the generator's resolution (or at the crop's own size for generators that work
at any size), and :func:`paste_back` writes generated crops into the image, changing
only the pixels of each person's dilated region.

>>> import numpy as np
>>> from sganon.core.structures import Box, Detection
>>> image = np.zeros((200, 120, 3), np.uint8)
>>> mask = np.zeros((100, 40), bool); mask[10:90, 10:30] = True
>>> crop = prepare_person_crop(image, Detection(Box(40, 50, 80, 150), 0.9, mask), None, (288, 160))
>>> tuple(crop.image.shape), crop.crop.size
((3, 288, 160), (288, 160))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .boxes import (
    PAPER_ASPECT,
    PAPER_MARGIN,
    PAPER_MIN_AREA,
    PAPER_MIN_BACKGROUND,
    PERSON_ASPECT,
    expand_person_box,
    whole_size,
)
from .errors import InputError
from .structures import Box, Crop, CropBatch, Detection, SurfaceMap


@dataclass
class PersonCrop:
    """One region to anonymize, as a generator input plus how to paste it back.

    Attributes:
        crop: Where the crop sits in the source image (``crop.box`` may pass the borders)
            and its size ``(H, W)`` at the generator.
        image: ``[3, H, W]`` float in [-1, 1] (padding outside the image is -1).
        mask: ``[1, H, W]`` float, 1 = known pixel.
        border: ``[1, H, W]`` float, unknown pixels without a surface coordinate.
        embedding: ``[E, H, W]`` float surface map, zero outside the surface pixels.
        vertices: ``[H, W]`` int64 vertex ids or ``None``.
        person: bool ``[box.height, box.width]``: the person's pixels (``E_mask``) at source
            resolution, in the frame of ``crop.box``.
        region: bool ``[box.height, box.width]``: every pixel that will be replaced (the
            dilated person, and every pixel of the detection's own mask), at source
            resolution, in the frame of ``crop.box``.
        index: Position of the detection this crop came from.
        subject: ``(height, width)`` in crop pixels of the whole subject (see
            :attr:`CropBatch.subjects`), or ``None``.
    """

    crop: Crop
    image: torch.Tensor
    mask: torch.Tensor
    border: torch.Tensor
    embedding: torch.Tensor
    vertices: torch.Tensor | None
    person: np.ndarray
    region: np.ndarray
    index: int = 0
    subject: tuple[float, float] | None = None

    def without_inputs(self) -> "PersonCrop":
        """This crop without its generator inputs (empty tensors): what paste-back needs, once
        the crop is generated (the inputs of a full-resolution crop are 20 bytes a pixel)."""
        empty = torch.empty(0)
        return replace(self, image=empty, mask=empty, border=empty, embedding=empty, vertices=None)

    def region_in_image(self, image_height: int, image_width: int) -> np.ndarray:
        """The replaced pixels as a bool ``[image_height, image_width]`` mask."""
        return Detection(self.crop.box, 1.0, self.region).mask_in_image(image_height, image_width)

    def region_inside(self, image_height: int, image_width: int) -> tuple[Box, np.ndarray]:
        """The replaced pixels inside the image, box-local (no image-sized mask): the crop box
        clipped to the image, and bool ``[box.height, box.width]`` of it (a view)."""
        return clipped(self.crop.box, self.region, image_height, image_width)


def clipped(box: Box, mask: np.ndarray, image_height: int, image_width: int) -> tuple[Box, np.ndarray]:
    """``box`` clipped to the image and the part of ``mask`` (``[box.height, box.width]``) inside it."""
    inside = box.clip(image_height, image_width)
    if inside.is_empty():
        return inside, np.zeros((max(inside.height, 0), max(inside.width, 0)), dtype=bool)
    local = mask[inside.y0 - box.y0 : inside.y1 - box.y0, inside.x0 - box.x0 : inside.x1 - box.x0]
    return inside, local


def or_into(target: np.ndarray, box: Box, mask: np.ndarray) -> None:
    """``target[box] |= mask`` for a box inside ``target`` (bool ``[H, W]``)."""
    target[box.y0 : box.y1, box.x0 : box.x1] |= mask


def dilation_radius(pixels: int) -> int:
    """§7.5: ``r = max(1, ceil(8 * sqrt(n / 256^2)))`` for a person of ``n`` pixels."""
    return max(1, math.ceil(8 * math.sqrt(pixels / 256**2)))


def disk(radius: int) -> torch.Tensor:
    """``[2r+1, 2r+1]`` float structuring element: offsets with ``dx^2 + dy^2 <= r^2``."""
    offsets = torch.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).float()


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a bool ``[H, W]`` mask by a disk of ``radius`` (same size out).

    A pixel is set when a mask pixel lies within ``radius`` of it, ``dx^2 + dy^2 <= r^2``:
    exactly :func:`disk`, from the exact Euclidean distance transform (OpenCV's
    ``DIST_MASK_PRECISE``), so the cost does not grow with the radius (a tracked person
    grown by its motion needs radii of a hundred pixels and more).
    """
    import cv2

    pixels = mask.numpy()
    if not pixels.any():
        return torch.zeros(pixels.shape, dtype=torch.bool)
    distance = cv2.distanceTransform((~pixels).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Squared distances are whole numbers: half a unit of slack absorbs float32 rounding.
    return torch.from_numpy(distance.astype(np.float64) ** 2 <= radius * radius + 0.5)


def dilated_in_frame(box: Box, mask: np.ndarray, radius: int, height: int, width: int) -> tuple[Box, np.ndarray]:
    """A box-local bool ``mask`` dilated by a disk of ``radius`` (:func:`dilate`): the box
    grown by ``radius`` on each side and clipped to a ``height x width`` frame, and the
    dilated mask relative to it."""
    grown = Box(box.x0 - radius, box.y0 - radius, box.x1 + radius, box.y1 + radius)
    placed = np.zeros((grown.height, grown.width), dtype=bool)
    placed[radius : radius + box.height, radius : radius + box.width] = mask
    if radius > 0:
        placed = dilate(torch.from_numpy(placed), radius).numpy()
    inside = grown.clip(height, width)
    return inside, placed[inside.y0 - grown.y0 : inside.y1 - grown.y0, inside.x0 - grown.x0 : inside.x1 - grown.x0]


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array to ``size = (H, W)`` (torch's ``nearest``)."""
    if mask.shape == size:
        return mask.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    return F.interpolate(tensor, size=size, mode="nearest")[0, 0].numpy().astype(mask.dtype)


def resize_bilinear(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of ``[C, h, w]`` to ``[C, *size]`` (a no-op at equal size)."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(tensor[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def place_in_box(values: np.ndarray, source: Box, target: Box, fill: float = 0) -> np.ndarray:
    """Copy ``values`` (``[..., source.height, source.width]``) into the frame of ``target``."""
    out = np.full(values.shape[:-2] + (target.height, target.width), fill, dtype=values.dtype)
    common = source.intersect(target)
    if not common.is_empty():
        out[..., common.y0 - target.y0 : common.y1 - target.y0, common.x0 - target.x0 : common.x1 - target.x0] = values[
            ..., common.y0 - source.y0 : common.y1 - source.y0, common.x0 - source.x0 : common.x1 - source.x0
        ]
    return out


def crop_image(image: np.ndarray, box: Box, size: tuple[int, int]) -> torch.Tensor:
    """§7.4: the pixels of ``box`` (uint8 zero padding), to [-1, 1], resized to ``size``."""
    pixels = Crop(box, size).extract(image, fill=0)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div_(255).mul_(2).sub_(1)
    return resize_bilinear(tensor, size)


def prepare_person_crop(
    image: np.ndarray,
    detection: Detection,
    surface: SurfaceMap | None,
    resolution: tuple[int, int] | None,
    surface_channels: int = 0,
    aspect: float = PAPER_ASPECT,
    margin: float = PAPER_MARGIN,
    min_background: float = PAPER_MIN_BACKGROUND,
    min_area: int = PAPER_MIN_AREA,
    index: int = 0,
    surface_at_crop: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    fail_safe: bool = True,
) -> PersonCrop | None:
    """The generator inputs of one person (§7.3-7.5), or ``None`` when it is too small.

    Args:
        image: Source image, uint8 RGB ``[H, W, 3]``.
        detection: The person; its mask is the segmentation ``S_box``.
        surface: Its surface map, or ``None`` for generators without surface input.
        resolution: ``(H, W)`` of the generator, or ``None`` to keep the crop's own size.
        surface_channels: Channels ``E`` of the embedding input (0 when none).
        aspect: Crop height / width (the generator's; the paper's 1.8 when ``resolution`` is None).
        margin: Box growth of §7.3 b.
        min_background: Background share of §7.3 d.
        min_area: Persons whose tight box is smaller are skipped.
        index: Stored in the result (which detection it is).
        surface_at_crop: The embedder's ``surface_at_crop(embedding [E, H, W], mask [H, W])
            -> (embedding, vertices)``, if it has one: recomputes the surface at the crop's
            resolution (CSE: nearest mesh vertex per crop pixel, §7.6). Without it, vertex
            ids are resized (nearest) from the box.
        fail_safe: Also replace every pixel of the detection's own mask (thin parts the
            resize to the generator's resolution lost). ``False`` replaces exactly the
            resized dilated mask, as the reference anonymizer (SPEC §7.8).
    """
    height, width = image.shape[:2]
    segmentation = detection.full_mask()
    box = expand_person_box(segmentation, detection.box, height, width, aspect, margin, min_background, min_area)
    if box is None:
        return None
    size = (box.height, box.width) if resolution is None else (int(resolution[0]), int(resolution[1]))
    person_box = place_in_box(segmentation, detection.box, box)
    m0 = torch.from_numpy(resize_nearest(person_box, size))
    dilated = dilate(m0, dilation_radius(int(m0.sum())))
    surface_pixels = m0
    embedding = torch.zeros(surface_channels, *size)
    vertices = None
    if surface is not None and surface_channels > 0:
        if surface.channels != surface_channels:
            raise InputError(
                f"the surface map has {surface.channels} channels but the generator expects {surface_channels}; "
                "use the embedder the generator was trained with"
            )
        valid = torch.from_numpy(resize_nearest(place_in_box(surface.valid, surface.box, box), size))
        surface_pixels = m0 & valid
        values = torch.from_numpy(place_in_box(surface.embedding, surface.box, box))
        embedding = resize_bilinear(values, size) * surface_pixels
        if surface_at_crop is not None:
            embedding, vertices = surface_at_crop(embedding, surface_pixels)
            embedding = embedding * surface_pixels
            vertices = vertices.long() * surface_pixels
        elif surface.vertices is not None:
            ids = resize_nearest(place_in_box(surface.vertices, surface.box, box), size)
            vertices = torch.from_numpy(ids).long() * surface_pixels
    mask = (~dilated).float()[None]
    border = (dilated & ~surface_pixels).float()[None]
    person_src = resize_mask_to(surface_pixels, (box.height, box.width))
    region_src = resize_mask_to(dilated, (box.height, box.width))
    whole_height, whole_width = whole_size(detection.box, PERSON_ASPECT)
    return PersonCrop(
        crop=Crop(box, size),
        image=crop_image(image, box, size),
        mask=mask,
        border=border,
        embedding=embedding,
        vertices=vertices,
        person=person_src,
        # Fail safe: every pixel of the original mask is replaced, also thin parts the resize to
        # the generator's resolution lost.
        region=region_src | person_src | person_box if fail_safe else region_src,
        index=index,
        subject=(whole_height * size[0] / box.height, whole_width * size[1] / box.width),
    )


def prepare_region_crop(
    image: np.ndarray,
    region: np.ndarray,
    box: Box,
    context: float = 0.5,
    index: int = 0,
    subject: tuple[int, int] | None = None,
) -> PersonCrop:
    """A crop at native size that replaces exactly ``region`` (faces, small persons).

    Args:
        image: Source image, uint8 RGB ``[H, W, 3]``.
        region: bool ``[box.height, box.width]``, the pixels to replace.
        box: Where ``region`` lies in the image.
        context: The crop shows ``box`` grown by this fraction of its size on each side,
            so baselines see the surroundings (the surroundings are never changed).
        index: Stored in the result.
        subject: ``(height, width)`` of the whole head or person the region hides (see
            :func:`~sganon.core.boxes.whole_size`), or ``None``.
    """
    grow_x, grow_y = math.ceil(box.width * context), math.ceil(box.height * context)
    height, width = image.shape[:2]
    outer = Box(box.x0 - grow_x, box.y0 - grow_y, box.x1 + grow_x, box.y1 + grow_y).clip(height, width)
    outer = Box(min(outer.x0, box.x0), min(outer.y0, box.y0), max(outer.x1, box.x1), max(outer.y1, box.y1))
    region_outer = place_in_box(np.asarray(region, dtype=bool), box, outer)
    size = (outer.height, outer.width)
    known = torch.from_numpy(~region_outer).float()[None]
    return PersonCrop(
        crop=Crop(outer, size),
        image=crop_image(image, outer, size),
        mask=known,
        border=1 - known,
        embedding=torch.zeros(0, *size),
        vertices=None,
        person=np.zeros_like(region_outer),
        region=region_outer,
        index=index,
        subject=subject,
    )


def resize_mask_to(mask: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """§7.8: a bool ``[h, w]`` mask resized bilinearly (antialiased) to ``size``, then ``> 0``."""
    if tuple(mask.shape) == tuple(size):
        return mask.numpy().astype(bool)
    return (resize_bilinear(mask.float()[None], size)[0] > 0).numpy()


def collate(crops: list[PersonCrop]) -> CropBatch:
    """Stack crops of one size into a :class:`CropBatch`."""
    sizes = {crop.crop.size for crop in crops}
    if len(sizes) != 1:
        raise InputError(f"a batch needs crops of one size, got {sorted(sizes)}")

    def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
        # One crop: a view, not a copy (a full-resolution crop's inputs are hundreds of MB).
        return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)

    with_vertices = [crop.vertices is not None for crop in crops]
    vertices = stack([crop.vertices for crop in crops]) if all(with_vertices) else None
    return CropBatch(
        image=stack([crop.image for crop in crops]),
        mask=stack([crop.mask for crop in crops]),
        border=stack([crop.border for crop in crops]),
        embedding=stack([crop.embedding for crop in crops]),
        vertices=vertices,
        crops=[crop.crop for crop in crops],
        subjects=[crop.subject for crop in crops] if all(crop.subject is not None for crop in crops) else None,
    )


def to_uint8(generated: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """§7.7: ``[3, H, W]`` in [-1, 1] to 0..255 values (float, integral). With ``in_place``,
    ``generated`` itself is overwritten when it is a float32 CPU tensor (no full-size temporary)."""
    values = generated.detach().float().cpu()
    values = values.mul_(0.5) if in_place else values.mul(0.5)
    return values.add_(0.5).clamp_(0, 1).mul_(255).round_()


def feather_weights(region: np.ndarray, width: int) -> np.ndarray:
    """Blend weights in [0, 1] that ramp from the region's edge to 1 over ``width`` pixels.

    Zero outside ``region``, so feathering never changes a pixel outside it.
    """
    inside = torch.from_numpy(np.ascontiguousarray(region)).float()[None, None]
    weight = inside.clone()
    eroded = inside
    for _ in range(width - 1):
        eroded = -F.max_pool2d(-eroded, 3, stride=1, padding=1)
        weight = weight + eroded
    return (weight[0, 0] / width).clamp(0, 1).numpy() * region


def paste_back(
    image: np.ndarray,
    crops: list[PersonCrop],
    generated: list[torch.Tensor],
    feather: int = 0,
    in_place: bool = False,
) -> np.ndarray:
    """Write generated crops into a copy of ``image`` (§7.8), or into ``image`` itself with
    ``in_place``; returns the result.

    ``crops`` are pasted in the order given. Pass 1 writes each crop's person pixels that
    no earlier crop has claimed and claims them; pass 2 does the same with each crop's
    remaining region (the dilation ring), so an earlier ring wins over a later one. Pixels
    outside every ``region`` keep their original bytes.

    Args:
        image: uint8 ``[H, W, 3]``.
        crops: The prepared crops.
        generated: ``[3, h, w]`` per crop at ``crop.crop.size``: float in [-1, 1], or uint8.
        feather: Width in pixels of a soft edge inside each region (0 = hard edge).
        in_place: Write into ``image`` (an output already, not the input).
    """
    paste = PasteBack(image, feather, in_place)
    for crop, result in zip(crops, generated, strict=True):
        paste.add(crop, result)
    return paste.finish()


class PasteBack:
    """:func:`paste_back` one crop at a time, as each is generated.

    Pass 1 (a crop's person pixels) runs in :meth:`add`, in the order the crops come, which
    is what :func:`paste_back` does with all of them at hand; pass 2 (the rings) runs in
    :meth:`finish`. Between the two only each crop's ring is kept (its pixel values and
    blend weights), not its full-resolution patch: memory for a person is its masks, not
    its generated pixels.

    Args:
        image: uint8 ``[H, W, 3]``, the image to paste into (copied unless ``in_place``).
        feather: Width in pixels of a soft edge inside each region (0 = hard edge).
        in_place: Write into ``image`` (an output already, not the input).
    """

    def __init__(self, image: np.ndarray, feather: int = 0, in_place: bool = False) -> None:
        self.out = image if in_place else image.copy()
        self.feather = feather
        self.claimed = np.zeros(image.shape[:2], dtype=bool)
        #: Per crop: where it lies, its ring (bool, box-sized), the patch's and weights' values on the ring.
        self.rings: list[tuple[Crop, np.ndarray, np.ndarray, np.ndarray | None]] = []

    def add(self, crop: PersonCrop, result: torch.Tensor) -> None:
        """Pass 1 of ``crop`` with its generator output ``result`` (``[3, h, w]`` at
        ``crop.crop.size``: float in [-1, 1], or uint8 levels)."""
        height, width = self.out.shape[:2]
        patch = patch_of(crop, result)
        weight = feather_weights(crop.region, self.feather)[..., None] if self.feather > 0 else None
        write_region(self.out, crop.crop, patch, crop.person, self.claimed, weight)
        or_into(self.claimed, *clipped(crop.crop.box, crop.person, height, width))
        ring = crop.region & ~crop.person
        self.rings.append((crop.crop, ring, patch[ring], None if weight is None else weight[ring]))

    def finish(self) -> np.ndarray:
        """Pass 2 (every ring, in the order added); returns the image."""
        for place, ring, values, weights in self.rings:
            patch = np.zeros(ring.shape + (3,), dtype=np.uint8)
            patch[ring] = values
            weight = None
            if weights is not None:
                weight = np.zeros(ring.shape + (1,), dtype=weights.dtype)
                weight[ring] = weights
            write_region(self.out, place, patch, ring, self.claimed, weight)
            place.paste(self.claimed, np.ones(ring.shape, dtype=bool), ring)
        self.rings = []
        return self.out


def patch_of(crop: PersonCrop, result: torch.Tensor) -> np.ndarray:
    """The generator's output for ``crop`` as uint8 ``[box.height, box.width, 3]`` (§7.7-7.8:
    levels 0..255, resized bilinearly to the crop's box in the source image)."""
    box = crop.crop.box
    if result.dtype == torch.uint8 and tuple(result.shape[-2:]) == (box.height, box.width):
        return result.cpu().permute(1, 2, 0).numpy()  # already the patch (any-size generators)
    levels = result.float() if result.dtype == torch.uint8 else to_uint8(result)
    values = resize_bilinear(levels.cpu(), (box.height, box.width))
    return torch.round(values.clamp(0, 255)).to(torch.uint8).permute(1, 2, 0).numpy()


def write_region(
    out: np.ndarray,
    place: Crop,
    patch: np.ndarray,
    region: np.ndarray,
    claimed: np.ndarray,
    weight: np.ndarray | None,
) -> None:
    """Write ``patch`` (of the box of ``place``) where ``region`` is set and ``claimed`` is not,
    blended by ``weight`` (``[h, w, 1]`` from :func:`feather_weights`) or, without it, replacing
    the pixels."""
    write = region & ~place.extract(claimed, fill=True)
    if weight is None:
        place.paste(out, patch, write)
        return
    current = place.extract(out)
    blended = np.round(weight * patch + (1 - weight) * current).astype(np.uint8)
    place.paste(out, blended, write)
