"""Anonymize files: one runner per input kind, and the loop over jobs.

Each input is handled on its own and fails closed: if any stage fails, nothing is
written under its output name (outputs are written to a temporary file and renamed), the
failure is recorded, and the run goes on only when asked to (``continue_on_error``).

Detections can be exported (``{"images": [{"file", "persons", "faces"}]}``, video frames
with a ``"frame"`` index) and re-used instead of running the detectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..anonymizer import Anonymizer
from ..detections import DetectionFile
from ..errors import InputError, SganonError
from ..jobs import Job, job_output_name, path_inside
from .coco import CocoRunner
from .image import ImageRunner
from .settings import Progress, RunResult, RunSettings
from .video import VideoRunner


class FileAnonymizer:
    """Runs an :class:`Anonymizer` over jobs and writes the outputs.

    Args:
        anonymizer: The configured pipeline.
        output: Output folder.
        settings: Output format, detections reuse/export, visualization, video options.
    """

    def __init__(self, anonymizer: Anonymizer, output: Path, settings: RunSettings | None = None) -> None:
        self.settings = settings or RunSettings()
        self.output = Path(output)
        self.images = ImageRunner(anonymizer, self.output, self.settings)
        self.videos = VideoRunner(anonymizer, self.output, self.settings)
        self.coco = CocoRunner(self.images, self.output, self.settings)

    def run_job(
        self,
        job: Job,
        continue_on_error: bool = False,
        frame_progress: Callable[[Job, int | None], Progress] | None = None,
    ) -> RunResult:
        """Anonymize one job. It fails closed: any error is recorded in the result (nothing
        written under its output name) and not raised; ``continue_on_error`` goes on with
        the other images of a COCO dataset."""
        result = RunResult()
        try:
            self.check_not_overwriting(job)
            if job.kind == "image":
                self.images.run(job, result)
            elif job.kind == "video":
                self.videos.run(job, result, frame_progress(job, None) if frame_progress else None)
            else:
                self.coco.run(job, result, continue_on_error)
        except SganonError as error:
            result.failed.append((job.source, str(error)))
        except Exception as error:  # fail closed on anything unexpected, too
            result.failed.append((job.source, f"{type(error).__name__}: {error}"))
        return result

    def run(
        self,
        jobs: list[Job],
        continue_on_error: bool = False,
        on_job: Callable[[Job], None] | None = None,
        frame_progress: Callable[[Job, int | None], Progress] | None = None,
        skipped: list[tuple[Path, str]] | None = None,
    ) -> RunResult:
        """Process ``jobs`` in order (:func:`run_jobs`, without a manifest)."""
        return run_jobs(self, jobs, continue_on_error, on_job, frame_progress, skipped)

    def check_not_overwriting(self, job: Job) -> None:
        target = path_inside(self.output, job_output_name(job, self.settings.extension), "the output name").resolve()
        if target == job.source.resolve():
            raise InputError(f"{job.source}: the output would overwrite the input; choose another -o folder")


def run_jobs(
    runner: FileAnonymizer,
    jobs: list[Job],
    continue_on_error: bool = False,
    on_job: Callable[[Job], None] | None = None,
    frame_progress: Callable[[Job, int | None], Progress] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
    on_result: Callable[[Job, RunResult], None] | None = None,
) -> RunResult:
    """The one loop over jobs (of :meth:`FileAnonymizer.run` and the local engine): each job
    in order through :meth:`FileAnonymizer.run_job`; ``on_result(job, its result)`` (the local
    engine writes its manifest record there), ``on_job(job)`` when it is over (progress);
    stops after the first failure unless ``continue_on_error``. ``skipped`` (files of the
    input folders that are not read, with why) goes into the result."""
    result = RunResult(skipped=list(skipped or []))
    for job in jobs:
        try:
            part = runner.run_job(job, continue_on_error, frame_progress)
        finally:
            if on_job is not None:
                on_job(job)
        if on_result is not None:
            on_result(job, part)
        result.add(part)
        if part.failed and not continue_on_error:
            break
    return result


__all__ = ["DetectionFile", "FileAnonymizer", "RunResult", "RunSettings", "run_jobs"]
