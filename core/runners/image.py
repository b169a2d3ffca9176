"""Photos: read, anonymize, write (same format, EXIF and mode kept), optional visualization."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..anonymizer import AnonymizedImage, Anonymizer
from ..detections import Detections, ExportedDetections, pixels_sha256
from ..jobs import Job, output_name, path_inside
from ..atomic import atomic_output
from ..images import LoadedImage, read_image, write_image
from ..structures import Detection
from .settings import RunResult, RunSettings


class ImageRunner:
    """Anonymizes image jobs into ``output``."""

    def __init__(self, anonymizer: Anonymizer, output: Path, settings: RunSettings) -> None:
        self.anonymizer = anonymizer
        self.output = output
        self.settings = settings

    def anonymize_loaded(
        self, loaded: LoadedImage, name: str, extra_persons: list[Detection] | None = None, pixels: str | None = None
    ) -> AnonymizedImage:
        """Anonymize a read image (re-used detections when given, plus ``extra_persons``);
        ``pixels`` is the image's :func:`pixels_sha256` (checked against re-used detections)."""
        height, width = loaded.rgb.shape[:2]
        reuse = self.settings.reuse
        detections = reuse.lookup(name, None, height, width, pixels) if reuse else None
        faces_scanned = detections is None  # the detectors run on this image (here or in anonymize)
        if extra_persons:
            detections = detections or self.anonymizer.detect(loaded.rgb)
            detections = Detections(detections.persons + extra_persons, detections.faces)
        return self.anonymizer.anonymize(loaded.rgb, detections, faces_scanned=faces_scanned)

    def run(
        self,
        job: Job,
        result: RunResult,
        name: str | None = None,
        extra_persons: Callable[[int, int], list[Detection]] | None = None,
    ) -> None:
        """Anonymize ``job`` and write it as ``name`` (default: the job's name) under the output;
        ``extra_persons(height, width)`` gives persons known beforehand (COCO annotations)."""
        name = name or job.name
        self.anonymizer.reseed(name)
        extension = self.settings.extension
        target = path_inside(self.output, output_name(name, extension), "the output name")
        loaded = read_image(job.source, self.settings.max_pixels)
        height, width = loaded.rgb.shape[:2]
        pixels = pixels_sha256(loaded.rgb) if self.settings.reuse or self.settings.export else None
        persons = extra_persons(height, width) if extra_persons is not None else None
        anonymized = self.anonymize_loaded(loaded, name, persons, pixels)
        write_image(target, loaded, anonymized.image, anonymized.replaced, extension)
        result.written.append(target)
        result.timings.append(anonymized.timings)
        result.refound += anonymized.refound
        if self.settings.export:
            result.detections.append(
                ExportedDetections.of(output_name(name, extension), anonymized.detections, height, width, sha256=pixels)
            )
        if self.settings.visualize:
            from PIL import Image

            from ..visualize import draw_detections

            picture = Image.fromarray(draw_detections(anonymized))
            with atomic_output(target.with_name(target.stem + ".visualization.png")) as temporary:
                picture.save(temporary, format="PNG")
