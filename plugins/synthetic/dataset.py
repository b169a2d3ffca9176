"""Procedural person crops with CSE-format surface maps, for smoke tests and CI.

Every sample is a warped copy of one canonical, left-right symmetric "body" (a union of
ellipses: head, torso, arms, legs) drawn in a generator-sized crop. The body's surface is a
``grid_height x grid_width`` grid of mesh vertices laid over the canonical body; each
vertex has a 16-d unit-norm embedding that varies smoothly over the body (random Fourier
features of its canonical position), like DensePose-CSE's vertex embeddings. A pixel of
the warped body gets the id of the vertex nearest to its canonical position, and
``embedding = vertex_table[vertices] * E_mask``, as in the paper's COCO-CSE crops.

Masks follow SPEC §7.5: ``E_mask`` is the body, the dilation radius is
``max(1, ceil(8 * sqrt(n / 256**2)))`` for an ``n``-pixel body, ``border`` is the dilation
ring, ``mask`` (1 = known) everything else. The mirror image of vertex ``(row, col)`` is
``(row, grid_width - 1 - col)`` (:attr:`vertex_symmetry`), so horizontal flips stay
consistent.

A sample depends only on ``(seed, index)``: no global random state is read.

>>> dataset = SyntheticPersonCrops(resolution=(64, 32), num_samples=4)
>>> sample = dataset[0]
>>> sample["img"].shape, sample["vertices"].shape, dataset.vertex_table.shape
(torch.Size([3, 64, 32]), torch.Size([64, 32]), (2048, 16))
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from sganon.core.crops import dilate, dilation_radius
from sganon.core.errors import ConfigError
from sganon.core.registry import DATASETS

#: Canonical body parts as ellipses (centre x, centre y, radius x, radius y) in the unit
#: square, x to the right, y down; symmetric about x = 0.5.
BODY_ELLIPSES = (
    (0.50, 0.10, 0.09, 0.09),  # head
    (0.50, 0.36, 0.17, 0.20),  # torso
    (0.27, 0.36, 0.06, 0.20),  # right arm (image left)
    (0.73, 0.36, 0.06, 0.20),  # left arm
    (0.41, 0.74, 0.08, 0.25),  # right leg
    (0.59, 0.74, 0.08, 0.25),  # left leg
)


@DATASETS.register_module()
class SyntheticPersonCrops(Dataset):
    """Synthetic person crops at a generator's resolution (see the module docstring).

    Args:
        resolution: ``(H, W)`` of the crops.
        num_samples: number of distinct samples (the length of the dataset).
        surface_channels: width E of the vertex embeddings.
        grid_height: vertex rows of the canonical body.
        grid_width: vertex columns of the canonical body.
        num_vertices: K, size of the vertex table (at least ``grid_height * grid_width``;
            default exactly that). Vertices past the grid never appear in a crop; this
            lets the data fit a generator built for a given mesh size (27554 for SMPL).
        seed: seed of the samples; the vertex table depends only on ``table_seed``.
        table_seed: seed of the vertex embedding table.

    Items are dicts of tensors: ``img`` uint8 ``[3, H, W]``, ``mask`` and ``border``
    uint8 ``[1, H, W]`` (0/1), ``vertices`` int64 ``[H, W]`` (0 outside the body).
    """

    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "procedural person silhouettes with CSE-format surface maps (smoke tests)"

    def __init__(
        self,
        resolution: tuple[int, int] | list[int] = (288, 160),
        num_samples: int = 1024,
        surface_channels: int = 16,
        grid_height: int = 64,
        grid_width: int = 32,
        num_vertices: int | None = None,
        seed: int = 0,
        table_seed: int = 20211213,
    ) -> None:
        if len(resolution) != 2 or min(resolution) < 8:
            raise ConfigError(f"synthetic crops need a resolution (H, W) of at least 8x8, got {resolution!r}")
        if num_samples < 1 or surface_channels < 1 or grid_height < 2 or grid_width < 2:
            raise ConfigError("synthetic crops need num_samples >= 1, surface_channels >= 1 and a grid of at least 2x2")
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.num_samples = int(num_samples)
        self.grid_height = int(grid_height)
        self.grid_width = int(grid_width)
        grid_vertices = self.grid_height * self.grid_width
        self.num_vertices = grid_vertices if num_vertices is None else int(num_vertices)
        if self.num_vertices < grid_vertices:
            raise ConfigError(f"num_vertices ({self.num_vertices}) must cover the {grid_vertices}-vertex grid")
        self.seed = int(seed)
        self.vertex_table = self._make_vertex_table(surface_channels, table_seed)
        self.vertex_symmetry = np.arange(self.num_vertices, dtype=np.int64)  # off-grid vertices: themselves
        rows, cols = np.divmod(np.arange(grid_vertices), self.grid_width)
        self.vertex_symmetry[:grid_vertices] = rows * self.grid_width + (self.grid_width - 1 - cols)
        self.metainfo = {"name": self.name, "resolution": list(self.resolution), "num_vertices": self.num_vertices}

    @classmethod
    def default_args(cls, profile: str, generator: dict[str, Any], generator_caps: Any) -> dict[str, Any]:
        """Arguments for a build profile, fitted to the generator (crop size, surface width, mesh size;
        ``generator_caps`` is its :class:`~sganon.core.capabilities.GeneratorCapabilities`)."""
        args: dict[str, Any] = {
            "resolution": list(generator_caps.resolution),
            "surface_channels": generator_caps.surface_channels or 16,
            "num_samples": 64 if profile == "tiny" else 4096,
            "grid_height": 16 if profile == "tiny" else 64,
            "grid_width": 8 if profile == "tiny" else 32,
        }
        num_vertices = generator_caps.vertex_count or generator.get("n_vertices")
        if num_vertices is not None:
            args["num_vertices"] = int(num_vertices)
        return args

    def _make_vertex_table(self, channels: int, table_seed: int) -> np.ndarray:
        """``[K, E]`` unit-norm embeddings, smooth in the vertex's canonical position."""
        rng = np.random.default_rng(table_seed)
        rows, cols = np.divmod(np.arange(self.num_vertices), self.grid_width)
        position = np.stack([(cols + 0.5) / self.grid_width, (rows + 0.5) / self.grid_height], axis=1)
        frequencies = rng.normal(0.0, 3.0, size=(2, channels))
        phases = rng.uniform(0.0, 2 * np.pi, size=channels)
        table = np.sin(position @ frequencies + phases) + 0.1 * rng.normal(size=(len(position), channels))
        return (table / np.linalg.norm(table, axis=1, keepdims=True)).astype(np.float32)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} of a {self.num_samples}-sample dataset")
        rng = np.random.default_rng([self.seed, int(index)])
        height, width = self.resolution
        canonical_x, canonical_y = self._canonical_coordinates(rng)
        body = np.zeros((height, width), dtype=bool)
        for cx, cy, rx, ry in BODY_ELLIPSES:
            body |= ((canonical_x - cx) / rx) ** 2 + ((canonical_y - cy) / ry) ** 2 <= 1.0
        column = np.clip(np.floor(canonical_x * self.grid_width), 0, self.grid_width - 1).astype(np.int64)
        row = np.clip(np.floor(canonical_y * self.grid_height), 0, self.grid_height - 1).astype(np.int64)
        vertices = np.where(body, row * self.grid_width + column, 0)
        dilated = dilate(torch.from_numpy(body), dilation_radius(int(body.sum()))).numpy() if body.any() else body
        image = self._paint(rng, canonical_x, canonical_y, body)
        return {
            "img": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy((~dilated)[None].astype(np.uint8)),
            "border": torch.from_numpy((dilated & ~body)[None].astype(np.uint8)),
            "vertices": torch.from_numpy(vertices),
        }

    def _canonical_coordinates(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Canonical body position ``(x, y)`` of every crop pixel under a random similarity warp."""
        height, width = self.resolution
        ys, xs = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
        scale = rng.uniform(0.8, 1.15)
        aspect = rng.uniform(0.85, 1.15)
        angle = rng.normal(0.0, 0.1)
        shift = rng.normal(0.0, 0.06, size=2)
        # crop -> canonical: centre, rotate, scale, shift back
        u, v = xs - 0.5 - shift[0], ys - 0.5 - shift[1]
        cos, sin = math.cos(angle), math.sin(angle)
        canonical_x = (cos * u + sin * v) / (scale * aspect) + 0.5
        canonical_y = (-sin * u + cos * v) / scale + 0.5
        return canonical_x, canonical_y

    @staticmethod
    def _paint(rng: np.random.Generator, canonical_x: np.ndarray, canonical_y: np.ndarray, body: np.ndarray) -> np.ndarray:
        """uint8 ``[H, W, 3]``: a smooth background and clothing that follows the body surface."""
        height, width = body.shape
        ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
        corners = rng.uniform(0.1, 0.9, size=(4, 3))
        background = (
            corners[0] * ((1 - ys) * (1 - xs))[..., None] + corners[1] * ((1 - ys) * xs)[..., None]
            + corners[2] * (ys * (1 - xs))[..., None] + corners[3] * (ys * xs)[..., None]
        )
        shirt, trousers, skin = rng.uniform(0.05, 0.95, size=(3, 3))
        stripes = 0.5 + 0.5 * np.sin(canonical_y * rng.uniform(20, 60))[..., None]
        person = np.where((canonical_y < 0.55)[..., None], shirt * (0.7 + 0.3 * stripes), trousers)
        person = np.where((canonical_y < 0.19)[..., None], skin, person)
        image = np.where(body[..., None], person, background)
        image = image + rng.normal(0.0, 0.02, size=image.shape)
        return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
