"""COCO datasets: every image anonymized (detector + the dataset's own person masks), then a
copy of the annotations written beside the images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..boxes import mask_bounds
from ..errors import InputError, SganonError
from ..jobs import Job, output_name
from ..media import atomic_output
from ..rle import decode_rle, polygons_to_mask
from ..structures import Detection
from .image import ImageRunner
from .settings import RunResult, RunSettings


class CocoRunner:
    """Anonymizes COCO jobs (annotation JSON + image folder) into ``output``."""

    def __init__(self, images: ImageRunner, output: Path, settings: RunSettings) -> None:
        self.images = images
        self.output = output
        self.settings = settings

    def run(self, job: Job, result: RunResult, continue_on_error: bool) -> None:
        """Anonymize every image of a COCO dataset (detector + the dataset's own person
        masks), then write a copy of the annotations beside the images."""
        try:
            data = json.loads(job.source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"{job.source}: cannot read the COCO annotations: {error}") from error
        person_ids = {c.get("id") for c in data.get("categories", []) if c.get("name") == "person"}
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for annotation in data.get("annotations", []):
            if annotation.get("category_id") in person_ids:
                by_image.setdefault(annotation.get("image_id"), []).append(annotation)
        images_dir = job.images or job.source.parent
        failures = 0
        for entry in data["images"]:
            file_name = entry.get("file_name")
            if not file_name:
                raise InputError(f"{job.source}: an image entry has no file_name")
            source = images_dir / file_name
            try:
                height, width = int(entry.get("height", 0)), int(entry.get("width", 0))
                persons = [coco_person(a, height, width) for a in by_image.get(entry.get("id"), [])]
                self.images.run(Job("image", source, file_name), result, f"images/{file_name}", [p for p in persons if p])
            except SganonError as error:
                failures += 1
                result.failed.append((source, str(error)))
                if not continue_on_error:
                    raise InputError(f"{job.source}: stopped at {file_name}") from error
        for entry in data["images"]:
            entry["file_name"] = output_name(entry["file_name"], self.settings.extension)
        target = self.output / job.source.name
        with atomic_output(target) as temporary:
            temporary.write_text(json.dumps(data), encoding="utf-8")
        result.written.append(target)


def coco_person(annotation: dict[str, Any], height: int, width: int) -> Detection | None:
    """A person detection from a COCO annotation's segmentation (polygons or RLE)."""
    segmentation = annotation.get("segmentation")
    if not segmentation or height <= 0 or width <= 0:
        return None
    if isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle.get("counts"), list):
            rle["counts"] = [int(c) for c in rle["counts"]]
        mask = decode_rle(rle)
    else:
        mask = polygons_to_mask(segmentation, height, width)
    box = mask_bounds(mask) if mask.shape == (height, width) else None
    if box is None:
        return None
    return Detection(box, 1.0, mask[box.y0 : box.y1, box.x0 : box.x1], None, "person")
