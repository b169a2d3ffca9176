"""Videos: decode, track persons across frames, anonymize, encode (audio, fps, rotation kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..anonymizer import Anonymizer
from ..detections import Detections
from ..jobs import Job, output_name
from ..media import VideoTranscoder, atomic_output
from ..tracking import FrameWindow, PersonTracker
from .settings import Progress, RunResult, RunSettings


class VideoRunner:
    """Anonymizes video jobs into ``output``."""

    def __init__(self, anonymizer: Anonymizer, output: Path, settings: RunSettings) -> None:
        self.anonymizer = anonymizer
        self.output = output
        self.settings = settings

    def run(self, job: Job, result: RunResult, progress: Progress | None) -> None:
        settings = self.settings
        target = self.output / output_name(job.name, None)
        tracker = PersonTracker(max_gap=settings.max_gap)
        window = FrameWindow(settings.lookback, face_carry=max(2, settings.detect_every))
        with atomic_output(target) as temporary, VideoTranscoder(
            job.source, temporary, settings.start, settings.end
        ) as video:

            def emit(frames: list[Any]) -> None:
                for frame in frames:
                    index, rgb = frame.payload
                    anonymized = self.anonymizer.anonymize(rgb, Detections(frame.persons, frame.faces), frame.track_ids)
                    video.write(anonymized.image)
                    result.timings.append(anonymized.timings)
                    if settings.export:
                        height, width = rgb.shape[:2]
                        result.detections.append(
                            {"file": job.name, "frame": index, **anonymized.detections.to_json(height, width)}
                        )
                    if progress is not None:
                        progress(1)

            for index, rgb in video.frames():
                height, width = rgb.shape[:2]
                if settings.reuse is not None:
                    found: Detections | None = settings.reuse.lookup(job.name, index, height, width)
                elif index % settings.detect_every == 0:
                    found = self.anonymizer.detect(rgb)
                else:
                    found = None
                tracked = tracker.update(None if found is None else found.persons)
                emit(window.push((index, rgb), tracked, tracker.born, [] if found is None else found.faces))
            emit(window.drain())
        result.written.append(target)
