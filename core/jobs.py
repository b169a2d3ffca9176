"""What to anonymize: the jobs found in the inputs (photos, folders, videos, COCO datasets).

A job is one input file (for COCO: the annotation JSON) and the name its output gets,
relative to the input it was found in (mirrored under ``-o``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import InputError
from .media import image_extensions, is_video


@dataclass
class Job:
    """One thing to anonymize.

    Attributes:
        kind: ``"image"``, ``"video"`` or ``"coco"``.
        source: The input file (for COCO: the annotation JSON).
        name: Its name relative to the input it was found in (mirrored in the output).
        images: COCO only: the image folder.
    """

    kind: str
    source: Path
    name: str
    images: Path | None = None


def is_coco_file(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data


def collect_jobs(inputs: Iterable[Path], coco_images: Path | None = None) -> list[Job]:
    """Jobs for files and folders (recursive; files Pillow or PyAV reads, by extension).

    A file given by name is always a job (a broken one then fails with a clear error); a
    ``.json`` file in COCO format is a dataset whose images lie in ``coco_images`` (default:
    the JSON's folder).
    """
    readable = image_extensions()
    jobs: list[Job] = []
    for path in map(Path, inputs):
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.name.startswith("."):
                    continue
                suffix = file.suffix.lower()
                if suffix in readable or is_video(file):
                    jobs.append(Job("video" if is_video(file) else "image", file, file.relative_to(path).as_posix()))
        elif path.is_file():
            if is_coco_file(path):
                jobs.append(Job("coco", path, path.name, coco_images or path.parent))
            else:
                jobs.append(Job("video" if is_video(path) else "image", path, path.name))
        else:
            raise InputError(f"{path}: no such file or folder")
    names: dict[str, Path] = {}
    for job in jobs:
        if job.name in names:
            raise InputError(
                f"{job.source} and {names[job.name]} would both be written as {job.name!r}; run them separately"
            )
        names[job.name] = job.source
    return jobs


def output_name(name: str, extension: str | None) -> str:
    if not extension:
        return name
    return str(Path(name).with_suffix("." + extension.lower().lstrip(".")))
