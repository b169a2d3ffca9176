"""Videos: decode, track persons across frames, anonymize, encode (audio, fps, rotation kept).

With ``RunSettings.overlap`` (the default) decoding and encoding run on threads of their
own (:mod:`.stages`), beside the detection and anonymization on the caller's thread; the
frames are the same, in the same order, as without (same output bytes).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, TypeVar

import numpy as np

from ..anonymizer import Anonymizer, FrameToAnonymize
from ..detections import Detections, ExportedDetections, unrotate_detection
from ..errors import InputError
from ..jobs import Job, output_name, path_inside
from ..motion import MovingPeople
from ..structures import Detection
from ..atomic import atomic_output
from ..video import MP4_INSTEAD, VideoTranscoder
from ..tracking import PendingFrame, Timeline
from .settings import Progress, RunResult, RunSettings
from .stages import Stopped, StageThreads


Item = TypeVar("Item")


class FramePayload(NamedTuple):
    """A decoded frame waiting in the tracking window."""

    index: int  #: absolute frame number in the source
    rgb: np.ndarray
    scanned: bool  #: the detectors ran on it (the verification pass may look near replaced pixels only)


def moving_people(motion: MovingPeople, rgb: np.ndarray, found: Detections | None, turns: int) -> list[Detection]:
    """The motion regions no person of ``found`` covers (:meth:`MovingPeople.uncovered`),
    looked for in the frame turned upright by ``turns`` quarter turns (its shape rules
    expect upright people), in the frame's pixels."""
    persons = None if found is None else found.persons
    if not turns % 4:
        return motion.uncovered(rgb, persons)
    height, width = rgb.shape[:2]
    upright = np.ascontiguousarray(np.rot90(rgb, turns))
    if persons is not None:  # into the upright frame: the frame is np.rot90(upright, -turns)
        persons = [unrotate_detection(person, -turns, *upright.shape[:2]) for person in persons]
    return [unrotate_detection(blob, turns, height, width) for blob in motion.uncovered(upright, persons)]


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class VideoRunner:
    """Anonymizes video jobs into ``output``."""

    def __init__(self, anonymizer: Anonymizer, output: Path, settings: RunSettings) -> None:
        self.anonymizer = anonymizer
        self.output = output
        self.settings = settings

    def run(self, job: Job, result: RunResult, progress: Progress | None) -> None:
        self.anonymizer.reseed(job.name)  # frames then draw in order, within this video only
        settings = self.settings
        name = job.name
        if job.source.suffix.lower() in MP4_INSTEAD:
            name = output_name(job.name, "mp4")
            result.notices.append(f"{job.source}: written as H.264 MP4 ({name}); {job.source.suffix} cannot hold H.264")
        target = path_inside(self.output, name, "the output name")
        reuse = settings.reuse
        if reuse is not None and not reuse.frames_of(job.name):
            raise InputError(f"the detections file has no frames of {job.name!r}; nothing was written for it")
        with atomic_output(target) as temporary, VideoTranscoder(
            job.source, temporary, settings.start, settings.end, max_pixels=settings.max_pixels
        ) as video:

            def upright() -> int:  # the video's rotation, known once a frame was decoded
                return video.upright_turns

            if not settings.overlap:
                self.anonymize_frames(job, video.frames(), video.write, result, progress, upright)
            else:
                stages = StageThreads()
                try:
                    frames = stages.produce(video.frames())  # decoder thread
                    write = stages.consume(video.write)  # encoder thread
                    self.anonymize_frames(job, frames, write, result, progress, upright)
                    stages.finish()
                except KeyboardInterrupt:  # SIGINT, SIGTERM: stop the stages, report the interruption
                    stages.abort(raise_error=False)
                    raise
                except BaseException as error:
                    stages.abort()  # raises the failing stage's error, if that caused the stop
                    if isinstance(error, Stopped):  # cannot happen without a stage error; never pass silently
                        raise InputError(f"{job.source}: the video stages stopped") from error
                    raise
            result.notices.extend(video.notices)
        result.written.append(target)

    def anonymize_frames(
        self,
        job: Job,
        frames: Iterable[tuple[int, np.ndarray]],
        write: Callable[[np.ndarray], None],
        result: RunResult,
        progress: Progress | None,
        upright_turns: Callable[[], int] = lambda: 0,
    ) -> None:
        """Detect (or look up), track and anonymize ``frames`` (``(absolute index, rgb)``),
        handing each anonymized frame to ``write`` in order. ``upright_turns``: the quarter
        turns that show a frame as the video is displayed (its rotation), asked once frames
        were decoded; the detectors see frames that way (people upright)."""
        settings = self.settings
        reuse = settings.reuse
        recorded = reuse.frames_of(job.name) if reuse is not None else []
        # Gaps are counted in frames: with --detect-every N a track spans N frames per detection.
        timeline = Timeline(settings.lookahead, max_gap=settings.max_gap * settings.detect_every)
        # Detected videos with a person detector only: recorded detections are replayed as they
        # were, and `--detector none` means no persons.
        detects_persons = reuse is None and self.anonymizer.parts.detector is not None
        motion = MovingPeople() if settings.motion and detects_persons else None
        ready: list[PendingFrame] = []  # tracked frames waiting for a full batch

        def emit(frames_ready: list[PendingFrame], final: bool = False) -> None:
            ready.extend(frames_ready)
            while len(ready) >= settings.frame_batch or (final and ready):
                batch = ready[: settings.frame_batch]
                del ready[: settings.frame_batch]
                items = [
                    FrameToAnonymize(frame.payload.rgb, Detections(frame.persons, frame.faces), frame.track_ids,
                                     faces_scanned=frame.payload.scanned)
                    for frame in batch
                ]
                for frame, anonymized in zip(batch, self.anonymizer.anonymize_many(items)):
                    index, rgb = frame.payload.index, frame.payload.rgb
                    write(anonymized.image)
                    result.timings.append(anonymized.timings)
                    result.refound += anonymized.refound
                    if settings.export:
                        height, width = rgb.shape[:2]
                        result.detections.append(
                            ExportedDetections.of(job.name, anonymized.detections, height, width, frame=index)
                        )
                    if progress is not None:
                        progress(1)

        last = -1
        count = 0
        for chunk in batched(frames, settings.frame_batch):
            # The detection frames of the chunk go through the detectors together.
            detect_at = [i for i in range(len(chunk)) if reuse is None and (count + i) % settings.detect_every == 0]
            detected = {}
            if detect_at:
                frames_to_detect = [chunk[i][1] for i in detect_at]
                detected = dict(zip(detect_at, self.anonymizer.detect_many(frames_to_detect, turns=upright_turns())))
            for i, (index, rgb) in enumerate(chunk):
                height, width = rgb.shape[:2]
                last = index
                if reuse is not None:  # every frame needs its entry (fails closed otherwise)
                    found: Detections | None = reuse.lookup(job.name, index, height, width)
                else:
                    found = detected.get(i)
                if motion is not None:  # every frame updates the background; detection frames get its blobs
                    moving = moving_people(motion, rgb, found, upright_turns())
                    if moving and found is not None:
                        found = Detections(persons=found.persons + moving, faces=found.faces)
                payload = FramePayload(index, rgb, scanned=reuse is None and found is not None)
                emit(timeline.push(payload, height, width, found))
            count += len(chunk)
        emit(timeline.drain(), final=True)
        if reuse is not None and settings.end is None and recorded[-1] > last:
            raise InputError(
                f"the detections file has frames of {job.name!r} up to {recorded[-1]}, but the video ends at "
                f"frame {last}: they were recorded for another video"
            )
