"""The on-disk person-crop dataset (:mod:`.format`) as a training dataset.

>>> from sganon.core.data.dataset import PersonCropDataset  # doctest: +SKIP
>>> dataset = PersonCropDataset(root="data/coco_cse_crops")  # doctest: +SKIP
>>> dataset[0]["img"].shape  # doctest: +SKIP
torch.Size([3, 288, 160])
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, InputError
from ..registry import DATASETS
from .format import BODY, BORDER, KNOWN, SYMMETRY_FILE, TABLE_FILE, DatasetMeta, ShardReader


@DATASETS.register_module()
class PersonCropDataset(Dataset):
    """Person crops written by ``sganon data prepare`` (format: ``docs/dataset-format.md``).

    Args:
        root: the dataset folder (with ``meta.json``).
        resolution: expected ``[H, W]`` (the generator's); checked against the dataset.
        surface_channels: expected E; checked against the dataset.

    Items: ``img`` uint8 ``[3, H, W]``, ``mask`` and ``border`` uint8 ``[1, H, W]`` (0/1)
    and ``vertices`` int64 ``[H, W]`` or ``embedding`` float32 ``[E, H, W]``.
    Attributes ``vertex_table`` ``[K, E]`` and ``vertex_symmetry`` ``[K]`` (or ``None``).
    """

    name: ClassVar[str] = "crops"
    description: ClassVar[str] = "person crops on disk (sganon data prepare), sharded tar files or folders"

    def __init__(self, root: str | None = None, resolution: list[int] | None = None,
                 surface_channels: int | None = None) -> None:
        if root is None:
            raise ConfigError(
                "the crop dataset needs its folder: --cfg-options train_dataloader.dataset.root=DIR "
                "(make one with `sganon data prepare`, check it with `sganon data check DIR`)"
            )
        self.root = Path(root)
        self.meta = DatasetMeta.read(self.root)
        if resolution is not None and list(resolution) != list(self.meta.resolution):
            raise ConfigError(f"{root} holds {list(self.meta.resolution)} crops; the generator needs {list(resolution)}")
        if surface_channels is not None and surface_channels != self.meta.surface_channels:
            raise ConfigError(
                f"{root} has {self.meta.surface_channels}-channel surfaces; the generator needs {surface_channels}"
            )
        if self.meta.num_samples == 0:
            raise InputError(f"{root} holds no samples")
        self.vertex_table: np.ndarray | None = None
        self.vertex_symmetry: np.ndarray | None = None
        if self.meta.surface == "vertices":
            self.vertex_table = np.load(self.root / TABLE_FILE, allow_pickle=False).astype(np.float32)
            if self.vertex_table.shape != (self.meta.num_vertices, self.meta.surface_channels):
                raise InputError(f"{root}/{TABLE_FILE} must be [{self.meta.num_vertices}, {self.meta.surface_channels}]")
            if (self.root / SYMMETRY_FILE).is_file():
                self.vertex_symmetry = np.load(self.root / SYMMETRY_FILE, allow_pickle=False).astype(np.int64)
        self._starts = np.cumsum([0] + [int(s["samples"]) for s in self.meta.shards]).tolist()
        self._readers = [ShardReader(self.root / s["name"]) for s in self.meta.shards]
        self.metainfo = {"name": self.name, "root": str(self.root), "num_samples": self.meta.num_samples}

    @classmethod
    def default_args(cls, profile: str, generator: dict[str, Any], generator_caps: Any) -> dict[str, Any]:
        """The folder is left to the user; resolution and surface width come from the generator
        (``generator_caps``: its :class:`~sganon.core.capabilities.GeneratorCapabilities`)."""
        return {"root": None, "resolution": list(generator_caps.resolution),
                "surface_channels": generator_caps.surface_channels or None}

    def __len__(self) -> int:
        return self.meta.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of a {len(self)}-sample dataset")
        shard = bisect.bisect_right(self._starts, index) - 1
        sample = self._readers[shard].read(index - self._starts[shard])
        height, width = self.meta.resolution
        if sample.image.shape != (height, width, 3) or sample.regions.shape != (height, width):
            raise InputError(f"{self.root}: sample {index} is not a {height}x{width} crop")
        item = {
            "img": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
            "mask": torch.from_numpy((sample.regions == KNOWN)[None].astype(np.uint8)),
            "border": torch.from_numpy((sample.regions == BORDER)[None].astype(np.uint8)),
        }
        if self.meta.surface == "vertices":
            if sample.vertices is None:
                raise InputError(f"{self.root}: sample {index} has no vertex ids")
            item["vertices"] = torch.from_numpy(np.where(sample.regions == BODY, sample.vertices, 0))
        else:
            if sample.embedding is None:
                raise InputError(f"{self.root}: sample {index} has no surface embedding")
            item["embedding"] = torch.from_numpy(sample.embedding.astype(np.float32))
        return item
