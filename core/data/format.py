"""The on-disk format of person-crop training datasets (``sganon-crops``, version 1).

A dataset is a folder::

    DIR/
      meta.json             what the dataset is (below)
      vertex_table.npy      float32 [K, E], unit rows: the mesh's vertex embeddings (surface "vertices")
      vertex_symmetry.npy   int64 [K], the mirror vertex of each vertex (optional; enables flips)
      shard-000000.tar      samples 0 .. n0-1 (an uncompressed tar), or
      shard-000000/         the same files in a folder
      shard-000001.tar      ...

``meta.json``::

    {"format": "sganon-crops", "version": 1,
     "resolution": [H, W],            # every crop is H x W
     "surface": "vertices",           # or "embedding"
     "surface_channels": 16,          # E
     "num_vertices": 27554,           # K (surface "vertices"), else null
     "num_samples": 2000,
     "shards": [{"name": "shard-000000.tar", "samples": 1000}, ...],
     "source": {...}}                 # free-form provenance (tool, inputs, options)

A sample ``KEY`` (its files sorted by key give the order inside a shard) is:

* ``KEY.image.png`` (or ``.jpg``): the RGB crop, H x W;
* ``KEY.regions.png``: 8-bit labels, 0 = known pixel (``mask`` = 1), 1 = border ring,
  2 = person pixel with a surface coordinate (``E_mask``); every crop has some 2s;
* ``KEY.vertices.png``: 16-bit grey, the mesh-vertex id of each region-2 pixel, 0
  elsewhere (surface "vertices"; needs K <= 65536), or
  ``KEY.embedding.npy``: float16 ``[E, H, W]``, zeros outside region 2 (surface "embedding");
* ``KEY.json`` (optional): where the crop came from (image, annotation, box).

Shards are read with random access (tar members by offset), so training can shuffle
across the whole dataset while the files stay few and large.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_output
from ..errors import InputError

FORMAT_NAME = "sganon-crops"
FORMAT_VERSION = 1
SURFACE_KINDS = ("vertices", "embedding")
META_FILE = "meta.json"
TABLE_FILE = "vertex_table.npy"
SYMMETRY_FILE = "vertex_symmetry.npy"
#: Labels of ``regions.png``.
KNOWN, BORDER, BODY = 0, 1, 2
IMAGE_SUFFIXES = (".image.png", ".image.jpg")
MAX_PNG_VERTICES = 65536


@dataclass
class CropSample:
    """One crop in memory.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB.
        regions: uint8 ``[H, W]`` labels (:data:`KNOWN`, :data:`BORDER`, :data:`BODY`).
        vertices: int ``[H, W]`` vertex ids (0 outside the body), or ``None``.
        embedding: float ``[E, H, W]`` surface map, or ``None``.
        info: provenance, written as ``KEY.json`` when not empty.
    """

    image: np.ndarray
    regions: np.ndarray
    vertices: np.ndarray | None = None
    embedding: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetMeta:
    """The contents of ``meta.json``."""

    resolution: tuple[int, int]
    surface: str
    surface_channels: int
    num_vertices: int | None
    shards: list[dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return sum(int(shard["samples"]) for shard in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "resolution": list(self.resolution),
            "surface": self.surface,
            "surface_channels": self.surface_channels,
            "num_vertices": self.num_vertices,
            "num_samples": self.num_samples,
            "shards": self.shards,
            "source": self.source,
        }

    @classmethod
    def read(cls, root: str | os.PathLike[str]) -> "DatasetMeta":
        """Parse ``root/meta.json``; raises :class:`InputError` naming what is wrong."""
        path = Path(root) / META_FILE
        if not path.is_file():
            raise InputError(f"{root} is not a crop dataset: {META_FILE} is missing (make one with `sganon data prepare`)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{path} is not valid JSON: {error}") from error
        if data.get("format") != FORMAT_NAME:
            raise InputError(f"{path}: format must be {FORMAT_NAME!r}, got {data.get('format')!r}")
        if data.get("version") != FORMAT_VERSION:
            raise InputError(
                f"{path}: version {data.get('version')!r} is not supported (this sganon reads {FORMAT_VERSION})"
            )
        try:
            meta = cls(
                resolution=(int(data["resolution"][0]), int(data["resolution"][1])),
                surface=str(data["surface"]),
                surface_channels=int(data["surface_channels"]),
                num_vertices=None if data.get("num_vertices") is None else int(data["num_vertices"]),
                shards=[{"name": str(s["name"]), "samples": int(s["samples"])} for s in data["shards"]],
                source=dict(data.get("source") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InputError(f"{path}: malformed field ({type(error).__name__}: {error})") from error
        if meta.surface not in SURFACE_KINDS:
            raise InputError(f"{path}: surface must be one of {SURFACE_KINDS}, got {meta.surface!r}")
        if meta.surface == "vertices" and not meta.num_vertices:
            raise InputError(f"{path}: a vertex-id dataset must give num_vertices")
        if "num_samples" in data and int(data["num_samples"]) != meta.num_samples:
            raise InputError(f"{path}: num_samples {data['num_samples']} != the sum over shards {meta.num_samples}")
        return meta


def encode_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image)
    except Exception as error:  # PIL raises many types for corrupt files
        raise InputError(f"{name} cannot be decoded as an image: {error}") from error


def sample_files(key: str, sample: CropSample) -> dict[str, bytes]:
    """The files of one sample, by name."""
    files = {f"{key}.image.png": encode_png(np.ascontiguousarray(sample.image, dtype=np.uint8)),
             f"{key}.regions.png": encode_png(np.ascontiguousarray(sample.regions, dtype=np.uint8))}
    if sample.vertices is not None:
        files[f"{key}.vertices.png"] = encode_png(np.ascontiguousarray(sample.vertices, dtype=np.uint16))
    if sample.embedding is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(sample.embedding, dtype=np.float16))
        files[f"{key}.embedding.npy"] = buffer.getvalue()
    if sample.info:
        files[f"{key}.json"] = json.dumps(sample.info, sort_keys=True).encode()
    return files


def decode_sample(key: str, files: dict[str, bytes], where: str) -> CropSample:
    """A sample from its files (``files`` by suffix after the key, e.g. ``".regions.png"``)."""
    image_name = next((s for s in IMAGE_SUFFIXES if s in files), None)
    if image_name is None or ".regions.png" not in files:
        raise InputError(f"{where}: sample {key} lacks its image or regions file")
    image = decode_image(files[image_name], f"{where}/{key}{image_name}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{where}/{key}{image_name}: expected an RGB image, got shape {image.shape}")
    regions = decode_image(files[".regions.png"], f"{where}/{key}.regions.png")
    vertices = embedding = None
    if ".vertices.png" in files:
        vertices = decode_image(files[".vertices.png"], f"{where}/{key}.vertices.png").astype(np.int64)
    if ".embedding.npy" in files:
        try:
            embedding = np.load(io.BytesIO(files[".embedding.npy"]), allow_pickle=False)
        except ValueError as error:
            raise InputError(f"{where}/{key}.embedding.npy cannot be read: {error}") from error
    info = json.loads(files[".json"]) if ".json" in files else {}
    return CropSample(image=image, regions=regions, vertices=vertices, embedding=embedding, info=info)


class ShardReader:
    """Random access to the samples of one shard (a tar file or a folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar_index: dict[str, tuple[int, int]] | None = None
        self._keys: list[str] | None = None

    def _index(self) -> dict[str, tuple[int, int]]:
        """File name -> (data offset, size) of a tar shard, read once."""
        if self._tar_index is None:
            try:
                with tarfile.open(self.path, "r:") as tar:
                    self._tar_index = {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
            except (tarfile.TarError, OSError) as error:
                raise InputError(f"shard {self.path} is not a readable uncompressed tar: {error}") from error
        return self._tar_index

    def names(self) -> list[str]:
        if self.path.is_dir():
            return sorted(p.name for p in self.path.iterdir() if p.is_file())
        return sorted(self._index())

    def keys(self) -> list[str]:
        """Sample keys in order (those with an image file)."""
        if self._keys is None:
            keys = set()
            for name in self.names():
                for suffix in IMAGE_SUFFIXES:
                    if name.endswith(suffix):
                        keys.add(name[: -len(suffix)])
            self._keys = sorted(keys)
        return self._keys

    def read_files(self, key: str) -> dict[str, bytes]:
        """``{suffix: bytes}`` of sample ``key``."""
        suffixes = (*IMAGE_SUFFIXES, ".regions.png", ".vertices.png", ".embedding.npy", ".json")
        wanted = [f"{key}{suffix}" for suffix in suffixes]
        files = {}
        if self.path.is_dir():
            for name in wanted:
                file = self.path / name
                if file.is_file():
                    files[name[len(key):]] = file.read_bytes()
            return files
        index = self._index()
        with open(self.path, "rb") as handle:
            for name in wanted:
                if name in index:
                    offset, size = index[name]
                    handle.seek(offset)
                    files[name[len(key):]] = handle.read(size)
        return files

    def read(self, position: int) -> CropSample:
        keys = self.keys()
        if not 0 <= position < len(keys):
            raise InputError(f"shard {self.path} has {len(keys)} samples, asked for number {position}")
        return decode_sample(keys[position], self.read_files(keys[position]), str(self.path))


class CropWriter:
    """Writes a crop dataset: samples go into shards of ``shard_size``; ``close()`` writes ``meta.json``.

    Args:
        root: output folder (created; must not hold a dataset already).
        resolution: ``(H, W)`` of every crop.
        surface: ``"vertices"`` or ``"embedding"``.
        surface_channels: E.
        vertex_table: ``[K, E]`` (surface "vertices").
        vertex_symmetry: ``[K]`` mirror map, optional.
        shard_size: samples per shard.
        shard_format: ``"tar"`` or ``"dir"``.
        source: provenance stored in ``meta.json``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        resolution: tuple[int, int],
        surface: str,
        surface_channels: int,
        vertex_table: np.ndarray | None = None,
        vertex_symmetry: np.ndarray | None = None,
        shard_size: int = 1000,
        shard_format: str = "tar",
        source: dict[str, Any] | None = None,
    ) -> None:
        if surface not in SURFACE_KINDS:
            raise InputError(f"surface must be one of {SURFACE_KINDS}, got {surface!r}")
        if shard_format not in ("tar", "dir"):
            raise InputError(f"shard format must be 'tar' or 'dir', got {shard_format!r}")
        if shard_size < 1:
            raise InputError(f"shard size must be at least 1, got {shard_size}")
        self.root = Path(root)
        if (self.root / META_FILE).exists():
            raise InputError(f"{self.root} already holds a crop dataset; choose an empty folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.surface = surface
        self.surface_channels = int(surface_channels)
        self.num_vertices: int | None = None
        if surface == "vertices":
            if vertex_table is None:
                raise InputError("a vertex-id dataset needs the mesh's vertex table")
            table = np.asarray(vertex_table, dtype=np.float32)
            if table.ndim != 2 or table.shape[1] != self.surface_channels:
                raise InputError(f"vertex table must be [K, {self.surface_channels}], got {table.shape}")
            if table.shape[0] > MAX_PNG_VERTICES:
                raise InputError(f"vertex ids are stored as 16-bit PNG; {table.shape[0]} vertices are too many")
            self.num_vertices = int(table.shape[0])
            np.save(self.root / TABLE_FILE, table)
            if vertex_symmetry is not None:
                symmetry = np.asarray(vertex_symmetry, dtype=np.int64)
                if symmetry.shape != (self.num_vertices,):
                    raise InputError(f"vertex symmetry must be [{self.num_vertices}], got {symmetry.shape}")
                np.save(self.root / SYMMETRY_FILE, symmetry)
        self.shard_size = int(shard_size)
        self.shard_format = shard_format
        self.source = dict(source or {})
        self.shards: list[dict[str, Any]] = []
        self._count = 0
        self._tar: tarfile.TarFile | None = None
        self._in_shard = 0

    def _shard_name(self, index: int) -> str:
        return f"shard-{index:06d}" + (".tar" if self.shard_format == "tar" else "")

    def _check(self, sample: CropSample) -> None:
        height, width = self.resolution
        if sample.image.shape != (height, width, 3) or sample.regions.shape != (height, width):
            raise InputError(
                f"crop must be image [{height}, {width}, 3] and regions [{height}, {width}], got "
                f"{sample.image.shape} and {sample.regions.shape}"
            )
        if (sample.vertices is None) == (self.surface == "vertices"):
            raise InputError(f"this dataset stores surface {self.surface!r}; the sample does not match")

    def add(self, sample: CropSample) -> None:
        """Append one sample (opens a new shard when the current one is full)."""
        self._check(sample)
        if not self.shards or self._in_shard == self.shard_size:
            self._close_shard()
            self.shards.append({"name": self._shard_name(len(self.shards)), "samples": 0})
            self._in_shard = 0
            path = self.root / self.shards[-1]["name"]
            if self.shard_format == "tar":
                self._tar = tarfile.open(path, "w:", format=tarfile.PAX_FORMAT)
            else:
                path.mkdir(exist_ok=True)
        key = f"{self._count:09d}"
        for name, data in sample_files(key, sample).items():
            if self._tar is not None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                self._tar.addfile(info, io.BytesIO(data))
            else:
                (self.root / self.shards[-1]["name"] / name).write_bytes(data)
        self._count += 1
        self._in_shard += 1
        self.shards[-1]["samples"] = self._in_shard

    def _close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def close(self) -> DatasetMeta:
        """Finish the last shard and write ``meta.json`` atomically (the dataset exists from then on)."""
        self._close_shard()
        meta = DatasetMeta(self.resolution, self.surface, self.surface_channels, self.num_vertices, self.shards,
                           self.source)
        with atomic_output(self.root / META_FILE) as temporary:
            temporary.write_text(json.dumps(meta.to_dict(), indent=2) + "\n")
        return meta

    def __enter__(self) -> "CropWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._close_shard()
