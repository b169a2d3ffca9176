"""``sganon data check``: validate a person-crop dataset (:mod:`.format`) file by file.

>>> report = check_dataset("data/crops")  # doctest: +SKIP
>>> report.ok, report.samples  # doctest: +SKIP
(True, 2000)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .format import (
    BODY,
    KNOWN,
    SYMMETRY_FILE,
    TABLE_FILE,
    DatasetMeta,
    ShardReader,
    decode_sample,
)

#: Stop listing problems after this many (the count is still reported).
MAX_LISTED = 50


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    root: Path
    samples: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(message)


def _check_tables(root: Path, meta: DatasetMeta, report: CheckReport) -> np.ndarray | None:
    if meta.surface != "vertices":
        return None
    table_path = root / TABLE_FILE
    if not table_path.is_file():
        report.error(f"{TABLE_FILE} is missing (needed for vertex ids)")
        return None
    try:
        table = np.load(table_path, allow_pickle=False)
    except ValueError as error:
        report.error(f"{TABLE_FILE} cannot be read: {error}")
        return None
    if table.shape != (meta.num_vertices, meta.surface_channels):
        report.error(f"{TABLE_FILE} is {table.shape}, meta.json says [{meta.num_vertices}, {meta.surface_channels}]")
    elif not np.allclose(np.linalg.norm(table, axis=1), 1.0, atol=1e-3):
        report.warnings.append(f"{TABLE_FILE} rows are not unit-norm (CSE vertex embeddings are)")
    symmetry_path = root / SYMMETRY_FILE
    if symmetry_path.is_file():
        symmetry = np.load(symmetry_path, allow_pickle=False)
        if symmetry.shape != (meta.num_vertices,) or symmetry.min() < 0 or symmetry.max() >= meta.num_vertices:
            report.error(f"{SYMMETRY_FILE} must be [{meta.num_vertices}] vertex ids")
        elif not np.array_equal(symmetry[symmetry], np.arange(meta.num_vertices)):
            report.warnings.append(f"{SYMMETRY_FILE} is not its own inverse (mirroring twice should give the same vertex)")
    else:
        report.warnings.append(f"no {SYMMETRY_FILE}: training cannot flip crops horizontally (set hflip to 0)")
    return table


def check_dataset(root: str | os.PathLike[str], limit: int | None = None) -> CheckReport:
    """Check ``meta.json``, the vertex tables and every sample (or the first ``limit``).

    Each sample must decode, be of the dataset's resolution, hold only the labels 0/1/2,
    have some surface pixels (label 2) and some unknown pixels (the losses divide by
    both), vertex ids below K that are 0 off the body, and finite embeddings.

    Raises:
        InputError: ``meta.json`` is missing or unreadable (nothing else can be checked).
    """
    root = Path(root)
    meta = DatasetMeta.read(root)
    report = CheckReport(root)
    _check_tables(root, meta, report)
    height, width = meta.resolution
    for shard in meta.shards:
        path = root / shard["name"]
        if not path.exists():
            report.error(f"shard {shard['name']} is missing")
            continue
        reader = ShardReader(path)
        try:
            keys = reader.keys()
        except InputError as error:
            report.error(str(error))
            continue
        if len(keys) != shard["samples"]:
            report.error(f"shard {shard['name']} holds {len(keys)} samples, meta.json says {shard['samples']}")
        for key in keys:
            if limit is not None and report.samples >= limit:
                return report
            report.samples += 1
            where = f"{shard['name']}/{key}"
            try:
                sample = decode_sample(key, reader.read_files(key), shard["name"])
            except InputError as error:
                report.error(str(error))
                continue
            if sample.image.shape != (height, width, 3) or sample.regions.shape != (height, width):
                report.error(f"{where}: not a {height}x{width} crop "
                             f"(image {sample.image.shape}, regions {sample.regions.shape})")
                continue
            labels = np.unique(sample.regions)
            if not set(labels.tolist()) <= {0, 1, 2}:
                report.error(f"{where}: regions hold labels {labels.tolist()}, only 0, 1, 2 are allowed")
            body = sample.regions == BODY
            if not body.any():
                report.error(f"{where}: no surface pixels (label 2)")
            if not (sample.regions != KNOWN).any():
                report.error(f"{where}: no pixel to generate")
            if meta.surface == "vertices":
                if sample.vertices is None:
                    report.error(f"{where}: vertex ids are missing")
                elif sample.vertices.shape != (height, width):
                    report.error(f"{where}: vertex ids are {sample.vertices.shape}, expected {(height, width)}")
                else:
                    if sample.vertices.max(initial=0) >= (meta.num_vertices or 0):
                        report.error(f"{where}: vertex id {int(sample.vertices.max())} >= K = {meta.num_vertices}")
                    if sample.vertices[~body].any():
                        report.error(f"{where}: vertex ids must be 0 outside the surface pixels")
            else:
                if sample.embedding is None:
                    report.error(f"{where}: the surface embedding is missing")
                elif sample.embedding.shape != (meta.surface_channels, height, width):
                    report.error(f"{where}: embedding is {sample.embedding.shape}, expected "
                                 f"{(meta.surface_channels, height, width)}")
                elif not np.isfinite(sample.embedding).all():
                    report.error(f"{where}: the embedding has non-finite values")
    if limit is None and report.samples != meta.num_samples:
        report.error(f"found {report.samples} samples, meta.json says {meta.num_samples}")
    return report
