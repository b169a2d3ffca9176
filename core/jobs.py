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
from .images import image_extensions
from .video import is_video


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


def collect_jobs(
    inputs: Iterable[Path], coco_images: Path | None = None, skipped: list[tuple[Path, str]] | None = None
) -> list[Job]:
    """Jobs for files and folders (recursive; files Pillow or PyAV reads, by extension).

    A file given by name is always a job (a broken one then fails with a clear error); a
    ``.json`` file in COCO format is a dataset whose images lie in ``coco_images`` (default:
    the JSON's folder). Files of a folder that are not read are added to ``skipped`` with why.
    """
    readable = image_extensions()
    jobs: list[Job] = []
    for path in map(Path, inputs):
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                suffix = file.suffix.lower()
                if any(part.startswith(".") for part in file.relative_to(path).parts):
                    reason = "hidden file"
                elif suffix in readable or is_video(file):
                    jobs.append(Job("video" if is_video(file) else "image", file, file.relative_to(path).as_posix()))
                    continue
                elif suffix == ".json":
                    reason = "JSON files in folders are not read (give a COCO annotation file by name)"
                else:
                    reason = f"not an image or video extension sganon reads ({suffix or 'no extension'})"
                if skipped is not None:
                    skipped.append((file, reason))
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


def confined_name(name: str, what: str) -> str:
    """``name`` as a relative POSIX path that stays inside the folder it is relative to.

    Raises :class:`InputError` for absolute paths, ``..`` parts and empty names (a COCO
    ``file_name`` or a detections ``file`` must not point outside its root).
    """
    text = str(name).replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or text.startswith("/") or ".." in parts or ":" in parts[0]:
        raise InputError(f"{what} {name!r} must be a relative path inside its folder (no absolute path, no '..')")
    return "/".join(parts)


def path_inside(folder: Path, name: str, what: str) -> Path:
    """``folder / name``, refused unless it resolves inside ``folder`` (symbolic links too)."""
    target = Path(folder) / confined_name(name, what)
    root = Path(folder).resolve()
    if not target.resolve().is_relative_to(root):
        raise InputError(f"{what} {name!r} resolves to {target.resolve()}, outside {root}")
    return target


def is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_paths(jobs: list[Job], output: Path, extra_inputs: Iterable[Path] = (), export: Path | None = None) -> None:
    """Refuse runs whose outputs could overwrite or mix with the inputs (before anything is written).

    ``output`` may neither lie inside an input folder (outputs would become inputs) nor
    contain an input (an input could be overwritten); ``export`` may not be an input.
    """
    inputs = [job.source for job in jobs] + [job.images for job in jobs if job.images is not None]
    inputs += [Path(p) for p in extra_inputs]
    for source in inputs:
        if Path(source).is_dir() and is_within(output, source):
            raise InputError(f"the output folder {output} lies inside the input folder {source}; choose another -o")
        if is_within(source, output):
            raise InputError(f"the input {source} lies inside the output folder {output}; choose another -o")
        if export is not None and Path(export).resolve() == Path(source).resolve():
            raise InputError(f"--export-detections {export} is an input; choose another file")
        if export is not None and Path(source).is_dir() and is_within(export, source):
            raise InputError(f"--export-detections {export} lies inside the input folder {source}; choose another file")


def job_output_name(job: Job, extension: str | None) -> str:
    """The name a job's output gets under ``-o`` (images: ``extension``; WebM video: MP4)."""
    from .video import MP4_INSTEAD

    if job.kind == "video":
        return output_name(job.name, "mp4") if job.source.suffix.lower() in MP4_INSTEAD else job.name
    return output_name(job.name, extension if job.kind == "image" else None)


def check_output_names(jobs: list[Job], extension: str | None) -> None:
    """Refuse two inputs that would be written under one name (the second would replace the first)."""
    names: dict[str, Path] = {}
    for job in jobs:
        name = job_output_name(job, extension)
        if name in names:
            raise InputError(f"{job.source} and {names[name]} would both be written as {name!r}; run them separately")
        names[name] = job.source


def output_name(name: str, extension: str | None) -> str:
    if not extension:
        return name
    return str(Path(name).with_suffix("." + extension.lower().lstrip(".")))
