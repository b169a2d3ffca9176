"""Data structures that flow between the components, each serializable to plain dicts.

Coordinates are pixels of the source image, ``x`` to the right and ``y`` down. A box is
half-open: it covers columns ``x0 .. x1-1`` and rows ``y0 .. y1-1``.

>>> box = Box(10, 20, 30, 60)
>>> box.width, box.height
(20, 40)
>>> Detection.from_dict(Detection(box, score=0.9).to_dict()).box == box
True
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .errors import InputError
from .rle import decode_rle, encode_rle


class Box(NamedTuple):
    """Integer half-open box ``[x0, x1) x [y0, y1)`` in source-image pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def clip(self, image_height: int, image_width: int) -> "Box":
        """The part of the box inside an image of the given size (may be empty)."""
        return Box(
            min(max(self.x0, 0), image_width),
            min(max(self.y0, 0), image_height),
            min(max(self.x1, 0), image_width),
            min(max(self.y1, 0), image_height),
        )

    def shifted(self, dx: int, dy: int) -> "Box":
        """This box moved by ``(dx, dy)`` pixels (e.g. from a crop's frame to the image's)."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def intersect(self, other: "Box") -> "Box":
        return Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))

    def to_list(self) -> list[int]:
        return [int(self.x0), int(self.y0), int(self.x1), int(self.y1)]

    @classmethod
    def from_list(cls, values: Any) -> "Box":
        try:
            x0, y0, x1, y1 = (int(round(float(v))) for v in values)
        except (TypeError, ValueError) as error:
            raise InputError(f"a box must be four numbers [x0, y0, x1, y1], got {values!r}") from error
        return cls(x0, y0, x1, y1)


def array_to_dict(array: np.ndarray) -> dict[str, Any]:
    """A numpy array as a JSON-safe dict (dtype, shape, base64 of the C-order bytes)."""
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def array_from_dict(data: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`array_to_dict`."""
    try:
        raw = base64.b64decode(data["data"], validate=True)
        array = np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"not a serialized array: {error}") from error
    return array.copy()


@dataclass
class Detection:
    """One detected person (or face).

    Args:
        box: Tight box of the instance in the source image (inside the image).
        score: Detector confidence in [0, 1].
        mask: Instance mask, bool ``[box.height, box.width]``, relative to ``box``.
            ``None`` means the whole box (faces, box-only detectors).
        keypoints: ``[K, 3]`` float32 (x, y, confidence) in source pixels, or ``None``.
        label: ``"person"`` or ``"face"``.
        surface: The person's :class:`SurfaceMap` when the detector computed it in the same
            pass (a model serving detector and embedder); not serialized.
    """

    box: Box
    score: float
    mask: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    label: str = "person"
    surface: "SurfaceMap | None" = None

    def __post_init__(self) -> None:
        self.box = Box(*(int(v) for v in self.box))
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != (self.box.height, self.box.width):
                raise InputError(
                    f"detection mask has shape {self.mask.shape}, expected (box height, box width) = "
                    f"{(self.box.height, self.box.width)}"
                )
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 3:
                raise InputError(f"keypoints must be [K, 3] (x, y, confidence), got {self.keypoints.shape}")

    def full_mask(self) -> np.ndarray:
        """The instance mask relative to ``box``; the whole box when no mask was given."""
        if self.mask is None:
            return np.ones((self.box.height, self.box.width), dtype=bool)
        return self.mask

    def mask_in_image(self, image_height: int, image_width: int) -> np.ndarray:
        """The instance mask pasted into a bool image of the given size."""
        out = np.zeros((image_height, image_width), dtype=bool)
        inside = self.box.clip(image_height, image_width)
        if not inside.is_empty():
            local = self.full_mask()[
                inside.y0 - self.box.y0 : inside.y1 - self.box.y0, inside.x0 - self.box.x0 : inside.x1 - self.box.x0
            ]
            out[inside.y0 : inside.y1, inside.x0 : inside.x1] = local
        return out

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"box": self.box.to_list(), "score": float(self.score), "label": self.label}
        if self.mask is not None:
            data["mask"] = encode_rle(self.mask)
        if self.keypoints is not None:
            data["keypoints"] = self.keypoints.astype(float).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Detection":
        try:
            box = Box.from_list(data["box"])
            mask = decode_rle(data["mask"]) if data.get("mask") is not None else None
            keypoints = np.asarray(data["keypoints"], dtype=np.float32) if data.get("keypoints") is not None else None
            return cls(box, float(data["score"]), mask, keypoints, str(data.get("label", "person")))
        except KeyError as error:
            raise InputError(f"a detection needs the field {error}") from error


@dataclass
class SurfaceMap:
    """Dense pixel-to-surface correspondences of one person, over its detection box.

    Args:
        box: The region it covers in the source image (usually the detection's box).
        embedding: ``[E, box.height, box.width]`` float32 surface coordinates.
        valid: ``[box.height, box.width]`` bool, where ``embedding`` is meaningful.
        vertices: ``[box.height, box.width]`` int64 mesh-vertex ids (CSE), or ``None``.
    """

    box: Box
    embedding: np.ndarray
    valid: np.ndarray
    vertices: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = Box(*(int(v) for v in self.box))
        self.embedding = np.asarray(self.embedding, dtype=np.float32)
        self.valid = np.asarray(self.valid, dtype=bool)
        size = (self.box.height, self.box.width)
        if self.embedding.ndim != 3 or self.embedding.shape[1:] != size:
            raise InputError(f"surface embedding must be [E, {size[0]}, {size[1]}], got {self.embedding.shape}")
        if self.valid.shape != size:
            raise InputError(f"surface validity mask must be {size}, got {self.valid.shape}")
        if self.vertices is not None:
            self.vertices = np.asarray(self.vertices, dtype=np.int64)
            if self.vertices.shape != size:
                raise InputError(f"vertex ids must be {size}, got {self.vertices.shape}")

    @property
    def channels(self) -> int:
        return int(self.embedding.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_list(),
            "embedding": array_to_dict(self.embedding),
            "valid": encode_rle(self.valid),
            "vertices": None if self.vertices is None else array_to_dict(self.vertices),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SurfaceMap":
        try:
            vertices = data.get("vertices")
            return cls(
                Box.from_list(data["box"]),
                array_from_dict(data["embedding"]),
                decode_rle(data["valid"]),
                None if vertices is None else array_from_dict(vertices),
            )
        except KeyError as error:
            raise InputError(f"a surface map needs the field {error}") from error


@dataclass(frozen=True)
class Crop:
    """Where a generator crop sits in the source image.

    The crop shows ``box`` of the source image (which may extend past the image borders;
    outside pixels are padding), resized to ``size = (height, width)``.
    """

    box: Box
    size: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", Box(*(int(v) for v in self.box)))
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        if self.box.is_empty():
            raise InputError(f"a crop needs a non-empty box, got {self.box}")
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise InputError(f"a crop needs a positive size, got {self.size}")

    def extract(self, image: np.ndarray, fill: int | float = 0) -> np.ndarray:
        """The pixels of ``box`` from ``image`` ([H, W] or [H, W, C]), padded with ``fill``.

        Returns ``[box.height, box.width(, C)]`` at source resolution (not resized).
        """
        height, width = image.shape[:2]
        out = np.full((self.box.height, self.box.width) + image.shape[2:], fill, dtype=image.dtype)
        inside = self.box.clip(height, width)
        if not inside.is_empty():
            out[inside.y0 - self.box.y0 : inside.y1 - self.box.y0, inside.x0 - self.box.x0 : inside.x1 - self.box.x0] = (
                image[inside.y0 : inside.y1, inside.x0 : inside.x1]
            )
        return out

    def paste(self, image: np.ndarray, patch: np.ndarray, region: np.ndarray) -> None:
        """Write ``patch`` into ``image`` in place where ``region`` is true.

        ``patch`` is ``[box.height, box.width(, C)]`` and ``region`` bool ``[box.height, box.width]``
        (both at source resolution); parts outside the image are dropped.
        """
        if patch.shape[:2] != (self.box.height, self.box.width) or region.shape != patch.shape[:2]:
            raise InputError(
                f"patch {patch.shape[:2]} and region {region.shape} must both be the box size "
                f"{(self.box.height, self.box.width)}"
            )
        height, width = image.shape[:2]
        inside = self.box.clip(height, width)
        if inside.is_empty():
            return
        rows = slice(inside.y0 - self.box.y0, inside.y1 - self.box.y0)
        cols = slice(inside.x0 - self.box.x0, inside.x1 - self.box.x0)
        target = image[inside.y0 : inside.y1, inside.x0 : inside.x1]
        keep = region[rows, cols]
        target[keep] = patch[rows, cols][keep]

    def crop_to_source(self, y: float, x: float) -> tuple[float, float]:
        """Map a continuous crop coordinate (pixel-edge convention) to the source image."""
        return (self.box.y0 + y * self.box.height / self.size[0], self.box.x0 + x * self.box.width / self.size[1])

    def source_to_crop(self, y: float, x: float) -> tuple[float, float]:
        """Inverse of :meth:`crop_to_source`."""
        return ((y - self.box.y0) * self.size[0] / self.box.height, (x - self.box.x0) * self.size[1] / self.box.width)

    def to_dict(self) -> dict[str, Any]:
        return {"box": self.box.to_list(), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Crop":
        try:
            return cls(Box.from_list(data["box"]), tuple(data["size"]))
        except KeyError as error:
            raise InputError(f"a crop needs the field {error}") from error


@dataclass
class CropBatch:
    """A batch of person crops at a generator's resolution (torch tensors).

    Attributes:
        image: ``[N, 3, H, W]`` float in [-1, 1], the real pixels (generators must not
            look at them where ``mask`` is 0; baselines such as blur may).
        mask: ``[N, 1, H, W]`` float, 1 = known pixel to keep, 0 = pixel to replace.
        border: ``[N, 1, H, W]`` float, ring around the person: unknown, without surface.
        embedding: ``[N, E, H, W]`` float surface map (zeros outside the person), E may be 0.
        vertices: ``[N, H, W]`` int64 mesh-vertex ids (0 outside the person), or ``None``.
        crops: Where each crop sits in the source image.
        subjects: ``(height, width)`` in crop pixels of each crop's whole subject (the person
            or head as it would be without the frame's edge), for generators whose strength
            follows the subject's size (baselines); ``None``: the region to replace gives it.
    """

    image: Any
    mask: Any
    border: Any
    embedding: Any
    vertices: Any = None
    crops: list[Crop] = field(default_factory=list)
    subjects: list[tuple[float, float]] | None = None

    @property
    def condition(self) -> Any:
        """``image * mask``: what a generator is allowed to see."""
        return self.image * self.mask

    @property
    def surface_mask(self) -> Any:
        """``1 - mask - border``: person pixels that carry a surface coordinate (E_mask)."""
        return 1 - self.mask - self.border


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous uint8 RGB ``[H, W, 3]`` array, or a clear :class:`InputError`."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"an image must be a numpy array (uint8 RGB [H, W, 3]), got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"an image must be uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"an image must not be empty, got {list(image.shape)}")
    return np.ascontiguousarray(image)
