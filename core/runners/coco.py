"""COCO datasets: every image anonymized (detector + the dataset's own person masks), then a
copy of the annotations written beside the images."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import mask_bounds
from ..errors import InputError, SganonError
from ..jobs import Job, confined_name, output_name, path_inside
from ..atomic import atomic_output
from ..rle import decode_rle, polygons_to_mask
from ..structures import Box, Detection
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
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputError(f"{job.source}: a COCO file holds an object with an images list")
        person_ids = {
            c.get("id")
            for c in data.get("categories") or []
            if isinstance(c, dict) and str(c.get("name", "")).strip().lower() == "person"
        }
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for annotation in data.get("annotations") or []:
            if isinstance(annotation, dict) and annotation.get("category_id") in person_ids:
                by_image.setdefault(annotation.get("image_id"), []).append(annotation)
        images_dir = job.images or job.source.parent
        # Every name is checked before anything is written: none may leave the image folder.
        names = []
        for entry in data["images"]:
            if not isinstance(entry, dict) or not entry.get("file_name"):
                raise InputError(f"{job.source}: an image entry has no file_name")
            names.append(confined_name(entry["file_name"], f"{job.source}: COCO file_name"))
            path_inside(images_dir, entry["file_name"], f"{job.source}: COCO file_name")
        target = path_inside(self.output, job.source.name, "the output name")
        for entry, file_name in zip(data["images"], names):
            source = images_dir / file_name
            annotations = by_image.get(entry.get("id"), [])
            try:
                self.images.run(
                    Job("image", source, file_name),
                    result,
                    f"images/{file_name}",
                    partial(coco_persons, annotations, entry),
                )
            except SganonError as error:
                result.failed.append((source, str(error)))
                if not continue_on_error:
                    raise InputError(f"{job.source}: stopped at {file_name}") from error
        for entry, file_name in zip(data["images"], names):
            entry["file_name"] = output_name(file_name, self.settings.extension)
        with atomic_output(target) as temporary:
            temporary.write_text(json.dumps(data), encoding="utf-8")
        result.written.append(target)


def coco_persons(annotations: list[dict[str, Any]], entry: dict[str, Any], height: int, width: int) -> list[Detection]:
    """The person detections of one COCO image read at ``height`` x ``width``; the image
    entry's own size, when given, must match."""
    try:
        given = (int(entry.get("height") or height), int(entry.get("width") or width))
    except (TypeError, ValueError) as error:
        raise InputError(f"the COCO image entry has a malformed width/height: {error}") from error
    if given != (height, width):
        raise InputError(f"the COCO entry says {given[1]}x{given[0]} but the image is {width}x{height}")
    persons = []
    for annotation in annotations:
        try:
            person = coco_person(annotation, height, width)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InputError(f"malformed COCO person annotation {annotation.get('id')}: {error}") from error
        if person is not None:
            persons.append(person)
    return persons


def coco_person(annotation: dict[str, Any], height: int, width: int) -> Detection | None:
    """A person detection from a COCO annotation's segmentation (polygons or RLE), else its
    ``bbox`` (the whole box is anonymized); ``None`` only when it marks no pixel at all."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        rle = dict(segmentation)
        if list(rle.get("size") or []) != [height, width]:
            raise InputError(f"a person RLE is of size {rle.get('size')}, the image is {[height, width]}")
        if isinstance(rle.get("counts"), list):
            rle["counts"] = [int(c) for c in rle["counts"]]
        mask = decode_rle(rle)
    elif segmentation:
        mask = polygons_to_mask(segmentation, height, width)
    else:
        mask = np.zeros((height, width), bool)
    if not mask.any() and annotation.get("bbox"):
        x, y, w, h = (float(v) for v in annotation["bbox"])
        box = Box(math.floor(x), math.floor(y), math.ceil(x + w), math.ceil(y + h)).clip(height, width)
        mask[box.y0 : box.y1, box.x0 : box.x1] = True
    box = mask_bounds(mask)
    if box is None:
        return None
    return Detection(box, 1.0, mask[box.y0 : box.y1, box.x0 : box.x1], None, "person")
