"""Photos: read, anonymize, write (same format, EXIF and mode kept), optional visualization."""

from __future__ import annotations

from pathlib import Path

from ..anonymizer import AnonymizedImage, Anonymizer
from ..detections import Detections
from ..jobs import Job, output_name
from ..media import LoadedImage, atomic_output, read_image, write_image
from ..structures import Detection
from .settings import RunResult, RunSettings


class ImageRunner:
    """Anonymizes image jobs into ``output``."""

    def __init__(self, anonymizer: Anonymizer, output: Path, settings: RunSettings) -> None:
        self.anonymizer = anonymizer
        self.output = output
        self.settings = settings

    def anonymize_loaded(
        self, loaded: LoadedImage, name: str, extra_persons: list[Detection] | None = None
    ) -> AnonymizedImage:
        """Anonymize a read image (re-used detections when given, plus ``extra_persons``)."""
        height, width = loaded.rgb.shape[:2]
        reuse = self.settings.reuse
        detections = reuse.lookup(name, None, height, width) if reuse else None
        if extra_persons:
            detections = detections or self.anonymizer.detect(loaded.rgb)
            detections = Detections(detections.persons + extra_persons, detections.faces)
        return self.anonymizer.anonymize(loaded.rgb, detections)

    def run(
        self, job: Job, result: RunResult, name: str | None = None, extra_persons: list[Detection] | None = None
    ) -> None:
        """Anonymize ``job`` and write it as ``name`` (default: the job's name) under the output."""
        name = name or job.name
        extension = self.settings.extension
        loaded = read_image(job.source)
        anonymized = self.anonymize_loaded(loaded, name, extra_persons)
        target = self.output / output_name(name, extension)
        write_image(target, loaded, anonymized.image, anonymized.replaced, extension)
        result.written.append(target)
        result.timings.append(anonymized.timings)
        if self.settings.export:
            height, width = loaded.rgb.shape[:2]
            result.detections.append({"file": output_name(name, extension), **anonymized.detections.to_json(height, width)})
        if self.settings.visualize:
            from PIL import Image

            from ..visualize import draw_detections

            picture = Image.fromarray(draw_detections(anonymized))
            with atomic_output(target.with_name(target.stem + ".visualization.png")) as temporary:
                picture.save(temporary, format="PNG")
