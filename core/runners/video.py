"""Videos: decode, track persons across frames, anonymize, encode (audio, fps, rotation kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..anonymizer import Anonymizer
from ..detections import Detections
from ..errors import InputError
from ..jobs import Job, output_name, path_inside
from ..media import MP4_INSTEAD, VideoTranscoder, atomic_output
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
        name = job.name
        if job.source.suffix.lower() in MP4_INSTEAD:
            name = output_name(job.name, "mp4")
            result.notices.append(f"{job.source}: written as H.264 MP4 ({name}); {job.source.suffix} cannot hold H.264")
        target = path_inside(self.output, name, "the output name")
        reuse = settings.reuse
        recorded = reuse.frames_of(job.name) if reuse is not None else []
        if reuse is not None and not recorded:
            raise InputError(f"the detections file has no frames of {job.name!r}; nothing was written for it")
        tracker = PersonTracker(max_gap=settings.max_gap)
        window = FrameWindow(settings.lookback, face_carry=max(2, settings.detect_every))
        with atomic_output(target) as temporary, VideoTranscoder(
            job.source, temporary, settings.start, settings.end, max_pixels=settings.max_pixels
        ) as video:

            def emit(frames: list[Any]) -> None:
                for frame in frames:
                    index, rgb = frame.payload
                    anonymized = self.anonymizer.anonymize(rgb, Detections(frame.persons, frame.faces), frame.track_ids)
                    video.write(anonymized.image)
                    result.timings.append(anonymized.timings)
                    result.refound += anonymized.refound
                    if settings.export:
                        height, width = rgb.shape[:2]
                        result.detections.append(
                            {
                                "file": job.name,
                                "frame": index,
                                "size": [height, width],
                                **anonymized.detections.to_json(height, width),
                            }
                        )
                    if progress is not None:
                        progress(1)

            last = -1
            for count, (index, rgb) in enumerate(video.frames()):
                height, width = rgb.shape[:2]
                last = index
                if reuse is not None:  # every frame needs its entry (fails closed otherwise)
                    found: Detections | None = reuse.lookup(job.name, index, height, width)
                elif count % settings.detect_every == 0:
                    found = self.anonymizer.detect(rgb)
                else:
                    found = None
                tracked = tracker.update(None if found is None else found.persons)
                emit(window.push((index, rgb), tracked, tracker.born, [] if found is None else found.faces))
            emit(window.drain())
            if reuse is not None and settings.end is None and recorded[-1] > last:
                raise InputError(
                    f"the detections file has frames of {job.name!r} up to {recorded[-1]}, but the video ends at "
                    f"frame {last}: they were recorded for another video"
                )
        result.written.append(target)
