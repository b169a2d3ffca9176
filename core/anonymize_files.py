"""Anonymize files: photos, folders of photos, videos and COCO datasets.

Each input is handled on its own and fails closed: if any stage fails, nothing is
written under its output name (outputs are written to a temporary file and renamed), the
failure is recorded, and the run goes on only when asked to (``continue_on_error``).

Detections can be exported (``{"images": [{"file", "persons", "faces"}]}``, video frames
with a ``"frame"`` index) and re-used instead of running the detectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .errors import InputError, SganonError
from .media import LoadedImage, VideoTranscoder, atomic_output, image_extensions, is_video, read_image, write_image
from .pipeline import AnonymizedImage, Anonymizer, Detections
from .rle import decode_rle
from .structures import Box, Detection
from .tracking import FrameWindow, PersonTracker

Progress = Callable[[int], None]


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


@dataclass
class DetectionFile:
    """Detections read from a ``--detections`` file, looked up by file name (and frame)."""

    entries: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "DetectionFile":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read the detections file: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputError(f'{path}: a detections file holds {{"images": [{{"file": ..., "persons": [...]}}]}}')
        found = cls()
        for entry in data["images"]:
            if not isinstance(entry, dict) or "file" not in entry:
                raise InputError(f'{path}: every entry of images needs a "file"')
            frame = entry.get("frame")
            found.entries[(str(entry["file"]), None if frame is None else int(frame))] = entry
        return found

    def lookup(self, name: str, frame: int | None, height: int, width: int) -> Detections:
        """The detections of ``name`` (exact relative name, else the bare file name)."""
        entry = self.entries.get((name, frame))
        if entry is None:
            bare = Path(name).name
            entry = next((e for (file, f), e in self.entries.items() if Path(file).name == bare and f == frame), None)
        if entry is None:
            if frame is not None:
                return Detections()
            raise InputError(f"the detections file has no entry for {name!r}; nothing was written for it")
        return Detections.from_json(entry, height, width)


@dataclass
class RunResult:
    """What a run did: outputs written, inputs that failed (with why), notes to show."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)


class FileAnonymizer:
    """Runs an :class:`Anonymizer` over jobs and writes the outputs.

    Args:
        anonymizer: The configured pipeline.
        output: Output folder.
        extension: ``"png"`` / ``"jpg"`` to force the image format (default: the input's).
        reuse: Detections to use instead of detecting.
        export: Collect detections for ``--export-detections``.
        visualize: Also write ``NAME.visualization.png`` (on the anonymized image).
        start: Videos: start of the span (seconds).
        end: Videos: end of the span (seconds) or ``None``.
        detect_every: Videos: run the detectors every N frames (tracks carry in between).
        lookback: Videos: frames a newly seen person / a face is also applied to, backwards.
        max_gap: Videos: frames a lost track is still anonymized.
    """

    def __init__(
        self,
        anonymizer: Anonymizer,
        output: Path,
        extension: str | None = None,
        reuse: DetectionFile | None = None,
        export: bool = False,
        visualize: bool = False,
        start: float = 0.0,
        end: float | None = None,
        detect_every: int = 1,
        lookback: int = 2,
        max_gap: int = 5,
    ) -> None:
        if detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {detect_every}")
        self.anonymizer = anonymizer
        self.output = Path(output)
        self.extension = extension
        self.reuse = reuse
        self.export = export
        self.visualize = visualize
        self.start = start
        self.end = end
        self.detect_every = detect_every
        self.lookback = lookback
        self.max_gap = max_gap

    def run(
        self,
        jobs: list[Job],
        continue_on_error: bool = False,
        on_job: Callable[[Job], None] | None = None,
        frame_progress: Callable[[Job, int | None], Progress] | None = None,
    ) -> RunResult:
        """Process ``jobs`` in order; stops at the first failure unless ``continue_on_error``."""
        result = RunResult()
        for job in jobs:
            try:
                self.check_not_overwriting(job)
                if job.kind == "image":
                    self.image_job(job, result)
                elif job.kind == "video":
                    progress = frame_progress(job, None) if frame_progress else None
                    self.video_job(job, result, progress)
                else:
                    self.coco_job(job, result, continue_on_error)
            except SganonError as error:
                result.failed.append((job.source, str(error)))
                if not continue_on_error:
                    break
            except Exception as error:  # fail closed on anything unexpected, too
                result.failed.append((job.source, f"{type(error).__name__}: {error}"))
                if not continue_on_error:
                    break
            finally:
                if on_job is not None:
                    on_job(job)
        return result

    def check_not_overwriting(self, job: Job) -> None:
        target = (self.output / output_name(job.name, self.extension)).resolve()
        if target == job.source.resolve():
            raise InputError(f"{job.source}: the output would overwrite the input; choose another -o folder")

    # ------------------------------------------------------------------ images
    def anonymize_loaded(
        self, loaded: LoadedImage, name: str, extra_persons: list[Detection] | None = None
    ) -> AnonymizedImage:
        height, width = loaded.rgb.shape[:2]
        detections = self.reuse.lookup(name, None, height, width) if self.reuse else None
        if extra_persons:
            detections = detections or self.anonymizer.detect(loaded.rgb)
            detections = Detections(detections.persons + extra_persons, detections.faces)
        return self.anonymizer.anonymize(loaded.rgb, detections)

    def image_job(
        self, job: Job, result: RunResult, name: str | None = None, extra_persons: list[Detection] | None = None
    ) -> None:
        name = name or job.name
        loaded = read_image(job.source)
        anonymized = self.anonymize_loaded(loaded, name, extra_persons)
        target = self.output / output_name(name, self.extension)
        write_image(target, loaded, anonymized.image, anonymized.replaced, self.extension)
        result.written.append(target)
        result.timings.append(anonymized.timings)
        if self.export:
            height, width = loaded.rgb.shape[:2]
            result.detections.append(
                {"file": output_name(name, self.extension), **anonymized.detections.to_json(height, width)}
            )
        if self.visualize:
            from PIL import Image

            picture = Image.fromarray(draw_detections(anonymized))
            with atomic_output(target.with_name(target.stem + ".visualization.png")) as temporary:
                picture.save(temporary, format="PNG")

    # ------------------------------------------------------------------ videos
    def video_job(self, job: Job, result: RunResult, progress: Progress | None) -> None:
        target = self.output / output_name(job.name, None)
        tracker = PersonTracker(max_gap=self.max_gap)
        window = FrameWindow(self.lookback, face_carry=max(2, self.detect_every))
        with atomic_output(target) as temporary, VideoTranscoder(job.source, temporary, self.start, self.end) as video:

            def emit(frames: list[Any]) -> None:
                for frame in frames:
                    index, rgb = frame.payload
                    anonymized = self.anonymizer.anonymize(rgb, Detections(frame.persons, frame.faces), frame.track_ids)
                    video.write(anonymized.image)
                    result.timings.append(anonymized.timings)
                    if self.export:
                        height, width = rgb.shape[:2]
                        result.detections.append(
                            {"file": job.name, "frame": index, **anonymized.detections.to_json(height, width)}
                        )
                    if progress is not None:
                        progress(1)

            for index, rgb in video.frames():
                height, width = rgb.shape[:2]
                if self.reuse is not None:
                    found: Detections | None = self.reuse.lookup(job.name, index, height, width)
                elif index % self.detect_every == 0:
                    found = self.anonymizer.detect(rgb)
                else:
                    found = None
                tracked = tracker.update(None if found is None else found.persons)
                emit(window.push((index, rgb), tracked, tracker.born, [] if found is None else found.faces))
            emit(window.drain())
        result.written.append(target)

    # ------------------------------------------------------------------ COCO
    def coco_job(self, job: Job, result: RunResult, continue_on_error: bool) -> None:
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
                self.image_job(
                    Job("image", source, file_name), result, f"images/{file_name}", [p for p in persons if p]
                )
            except SganonError as error:
                failures += 1
                result.failed.append((source, str(error)))
                if not continue_on_error:
                    raise InputError(f"{job.source}: stopped at {file_name}") from error
        for entry in data["images"]:
            entry["file_name"] = output_name(entry["file_name"], self.extension)
        target = self.output / job.source.name
        with atomic_output(target) as temporary:
            temporary.write_text(json.dumps(data), encoding="utf-8")
        result.written.append(target)


def coco_person(annotation: dict[str, Any], height: int, width: int) -> Detection | None:
    """A person detection from a COCO annotation's segmentation (polygons or RLE)."""
    from PIL import Image, ImageDraw

    segmentation = annotation.get("segmentation")
    if not segmentation or height <= 0 or width <= 0:
        return None
    if isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle.get("counts"), list):
            rle["counts"] = [int(c) for c in rle["counts"]]
        mask = decode_rle(rle)
    else:
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for polygon in segmentation:
            if len(polygon) >= 6:
                draw.polygon([float(v) for v in polygon], fill=1, outline=1)
        mask = np.asarray(canvas, dtype=bool)
    if mask.shape != (height, width) or not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Detection(box, 1.0, mask[box.y0 : box.y1, box.x0 : box.x1], None, "person")


def write_detections(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``{"images": entries}`` atomically."""
    with atomic_output(Path(path)) as temporary:
        temporary.write_text(json.dumps({"images": entries}), encoding="utf-8")


def draw_detections(result: AnonymizedImage) -> np.ndarray:
    """The anonymized image with person boxes (red), keypoints (yellow), face regions (blue)
    and each person's surface map (its channels projected to colours) overlaid."""
    from PIL import Image, ImageDraw

    canvas = result.image.astype(np.float32)
    for surface in result.surfaces:
        box, valid = surface.box, surface.valid
        if not valid.any() or surface.channels == 0:
            continue
        # A fixed random projection of the E channels to RGB, stretched over the valid pixels.
        projection = np.random.default_rng(0).standard_normal((3, surface.channels)).astype(np.float32)
        colour = np.tensordot(projection, surface.embedding, axes=1).transpose(1, 2, 0)
        low, high = colour[valid].min(axis=0), colour[valid].max(axis=0)
        colour = (colour - low) / np.maximum(high - low, 1e-6) * 255
        inside = box.clip(*canvas.shape[:2])
        rows = slice(inside.y0 - box.y0, inside.y1 - box.y0)
        cols = slice(inside.x0 - box.x0, inside.x1 - box.x0)
        target = canvas[inside.y0 : inside.y1, inside.x0 : inside.x1]
        keep = valid[rows, cols]
        target[keep] = 0.3 * target[keep] + 0.7 * colour[rows, cols][keep]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for person in result.detections.persons:
        draw.rectangle(
            [person.box.x0, person.box.y0, person.box.x1 - 1, person.box.y1 - 1], outline=(255, 0, 0), width=2
        )
        if person.keypoints is not None:
            for x, y, confidence in person.keypoints:
                if confidence >= 0.3:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 255, 0))
    for face in result.detections.faces:
        draw.rectangle([face.box.x0, face.box.y0, face.box.x1 - 1, face.box.y1 - 1], outline=(0, 96, 255), width=2)
    return np.asarray(image)
