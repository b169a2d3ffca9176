"""What every runner shares: the run's settings and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..detections import DetectionFile, ExportedDetections
from ..errors import InputError

#: ``progress(frames_done_since_last_call)``.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RunSettings:
    """How files are anonymized and written.

    Attributes:
        extension: ``"png"`` / ``"jpg"`` to force the image format (default: the input's).
        reuse: Detections to use instead of detecting.
        export: Collect detections for ``--export-detections``.
        visualize: Also write ``NAME.visualization.png`` (on the anonymized image).
        start: Videos: start of the span (seconds).
        end: Videos: end of the span (seconds) or ``None``.
        detect_every: Videos: run the detectors every N frames (tracks carry in between).
        frame_batch: Videos: frames that go through the detectors together, and whose crops
            go through the generator together (a GPU wants 8-16; 1 on CPUs).
        lookahead: Videos: frames held back before they are anonymized, so persons and faces
            found in later frames are applied to them too (core/tracking.py).
        max_gap: Videos: a track is applied up to this many detection frames away from
            where it was seen (interpolated between sightings, carried beyond them).
        motion: Videos: moving person-sized blobs that no detected person covers are
            anonymized as persons (a static camera's background model, core/motion.py).
        max_pixels: Largest image / video frame (width x height) read; larger ones fail.
        overlap: Videos: decode and encode on threads of their own, beside anonymization
            (same output; ``False`` runs every stage in turn on one thread).
    """

    extension: str | None = None
    reuse: DetectionFile | None = None
    export: bool = False
    visualize: bool = False
    start: float = 0.0
    end: float | None = None
    detect_every: int = 1
    frame_batch: int = 1
    lookahead: int = 5
    max_gap: int = 5
    motion: bool = True
    max_pixels: int = 100_000_000
    overlap: bool = True

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.frame_batch < 1:
            raise InputError(f"frame_batch must be >= 1, got {self.frame_batch}")


@dataclass
class RunResult:
    """What a run did: outputs written, inputs that failed or were skipped (with why),
    notices for the user (e.g. a format change), detections, timings."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    detections: list[ExportedDetections] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    #: Faces the verification pass found in outputs where nothing was replaced (and anonymized).
    refound: int = 0

    def add(self, part: "RunResult") -> None:
        """Append what another run (one job's) did."""
        self.written += part.written
        self.failed += part.failed
        self.skipped += part.skipped
        self.notices += part.notices
        self.detections += part.detections
        self.timings += part.timings
        self.refound += part.refound
