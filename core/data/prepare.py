"""``sganon data prepare``: person crops for training, from a COCO-format dataset.

For every image of a COCO annotation file (``images`` + ``annotations`` with a
``person`` category), persons come from the annotations' masks (``use_annotation_masks``;
crowd annotations are skipped) or from the configured detector; the configured surface
embedder gives each person its surface map. Each person then becomes a crop exactly as
the anonymizer makes one (:func:`sganon.core.crops.prepare_person_crop`: the paper's box
expansion to the generator's aspect ratio with margin and background share, SPEC §7.3,
resize to the generator's resolution, and the dilation that makes the border ring,
§7.4-7.5), so the generator trains on the inputs it will see. Persons too small for the
paper's rule (tight box under 32x32) or without surface pixels are skipped and counted.

The crops are written in the format of :mod:`.format` (sharded), with the embedder's
vertex table and, if given, the mesh's vertex symmetry map (``.npy``, int ``[K]``).

>>> summary = prepare_from_coco("instances.json", "images/", "crops/", embedder, None,
...                             (288, 160), 16, use_annotation_masks=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..crops import prepare_person_crop
from ..errors import ConfigError, InputError
from ..interfaces import Detector, SurfaceEmbedder
from .format import BODY, BORDER, KNOWN, CropSample, CropWriter

Progress = Callable[[int, int], None]


@dataclass
class PrepareSummary:
    """Counts of a :func:`prepare_from_coco` run."""

    images: int = 0
    persons: int = 0
    written: int = 0
    too_small: int = 0
    no_surface: int = 0
    failed_images: list[tuple[str, str]] = field(default_factory=list)


def embedder_vertex_table(embedder: SurfaceEmbedder) -> np.ndarray | None:
    """The embedder's mesh vertex embeddings ``[K, E]``, or ``None`` if it gives no vertex ids.

    Read from the attribute ``vertex_table`` or, for the CSE embedder,
    ``mesh_vertex_embeddings``.
    """
    for name in ("vertex_table", "mesh_vertex_embeddings"):
        table = getattr(embedder, name, None)
        if table is not None:
            table = table.detach().cpu().numpy() if hasattr(table, "detach") else np.asarray(table)
            return table.astype(np.float32)
    return None


def person_category_ids(coco: dict[str, Any]) -> set[int]:
    ids = {int(c["id"]) for c in coco.get("categories", []) if c.get("name") == "person"}
    if not ids:
        raise InputError("the COCO file has no category named 'person'")
    return ids


def load_coco(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the COCO file {path}: {error}") from error
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) or "annotations" not in coco:
        raise InputError(f"{path} is not a COCO annotation file (needs 'images' and 'annotations')")
    return coco


def crop_sample(crop: Any, info: dict[str, Any]) -> CropSample:
    """A :class:`CropSample` from a :class:`sganon.core.crops.PersonCrop`."""
    image = ((crop.image.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    mask = crop.mask[0].numpy() > 0.5
    border = crop.border[0].numpy() > 0.5
    regions = np.full(mask.shape, BODY, dtype=np.uint8)
    regions[border] = BORDER
    regions[mask] = KNOWN
    vertices = None if crop.vertices is None else np.where(regions == BODY, crop.vertices.numpy(), 0)
    embedding = None if crop.vertices is not None else crop.embedding.numpy() * (regions == BODY)
    return CropSample(image=image, regions=regions, vertices=vertices, embedding=embedding, info=info)


def prepare_from_coco(
    annotations: str | os.PathLike[str],
    images: str | os.PathLike[str],
    output: str | os.PathLike[str],
    embedder: SurfaceEmbedder,
    detector: Detector | None,
    resolution: tuple[int, int],
    surface_channels: int,
    use_annotation_masks: bool = False,
    vertex_symmetry: str | os.PathLike[str] | None = None,
    shard_size: int = 1000,
    shard_format: str = "tar",
    limit: int | None = None,
    progress: Progress | None = None,
) -> PrepareSummary:
    """Write the person crops of a COCO dataset to ``output`` (see the module docstring).

    Args:
        annotations: the COCO annotation JSON.
        images: folder the ``file_name`` of each image is relative to.
        output: new dataset folder.
        embedder: surface embedder (its vertex ids and table are stored when it has them).
        detector: person detector; unused (may be ``None``) with ``use_annotation_masks``.
        resolution: ``(H, W)`` of the generator.
        surface_channels: E, the generator's surface input width (the embedder's output).
        use_annotation_masks: persons from the annotations' masks instead of the detector.
        vertex_symmetry: ``.npy`` file with the mirror vertex of each vertex (enables flips).
        shard_size: samples per shard.
        shard_format: ``"tar"`` or ``"dir"``.
        limit: only the first ``limit`` images.
        progress: called with ``(images done, images total)``.
    """
    from ..runners.coco import coco_person
    from ..images import read_image

    if not use_annotation_masks and detector is None:
        raise ConfigError("prepare needs a detector, or use_annotation_masks")
    coco = load_coco(annotations)
    persons_of = person_category_ids(coco)
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for annotation in coco["annotations"]:
        if int(annotation.get("category_id", -1)) in persons_of and not annotation.get("iscrowd", 0):
            by_image[annotation.get("image_id")].append(annotation)
    entries = coco["images"][:limit] if limit is not None else coco["images"]

    table = embedder_vertex_table(embedder)
    channels = int(surface_channels)
    if channels <= 0:
        raise ConfigError(f"embedder {type(embedder).__name__} gives no surface channels; training needs surface maps")
    if table is not None and table.shape[1] != channels:
        raise ConfigError(f"the embedder's vertex table has {table.shape[1]} channels, the generator expects {channels}")
    symmetry = None
    if vertex_symmetry is not None:
        if table is None:
            raise ConfigError("a vertex symmetry map only applies to embedders that give vertex ids")
        symmetry = np.load(vertex_symmetry, allow_pickle=False)
    source = {
        "tool": "sganon data prepare",
        "annotations": str(annotations),
        "persons": "annotation masks" if use_annotation_masks else f"detector {type(detector).__name__}",
        "embedder": type(embedder).__name__,
    }
    aspect = resolution[0] / resolution[1]  # the crop box takes the generator's aspect ratio
    summary = PrepareSummary()
    writer = CropWriter(output, resolution, "vertices" if table is not None else "embedding", channels,
                        vertex_table=table, vertex_symmetry=symmetry, shard_size=shard_size,
                        shard_format=shard_format, source=source)
    with writer:
        for done, entry in enumerate(entries, start=1):
            file_name = str(entry.get("file_name", ""))
            try:
                image = read_image(Path(images) / file_name).rgb
                height, width = image.shape[:2]
                if use_annotation_masks:
                    annotations_here = by_image.get(entry.get("id"), [])
                    pairs = [(coco_person(a, height, width), a.get("id")) for a in annotations_here]
                    pairs = [(d, annotation_id) for d, annotation_id in pairs if d is not None]
                else:
                    pairs = [(d, None) for d in detector.detect(image) if d.label == "person"]
                detections = [d for d, _ in pairs]
                surfaces = embedder.embed(image, detections) if detections else []
            except InputError as error:
                summary.failed_images.append((file_name, str(error)))
                continue
            summary.images += 1
            for (detection, annotation_id), surface in zip(pairs, surfaces):
                summary.persons += 1
                crop = prepare_person_crop(image, detection, surface, resolution, channels, aspect=aspect)
                if crop is None:
                    summary.too_small += 1
                    continue
                info = {"image": file_name, "image_id": entry.get("id"), "annotation_id": annotation_id,
                        "box": crop.crop.box.to_list()}
                sample = crop_sample(crop, info)
                if not (sample.regions == BODY).any():
                    summary.no_surface += 1
                    continue
                writer.add(sample)
                summary.written += 1
            if progress is not None:
                progress(done, len(entries))
    return summary
