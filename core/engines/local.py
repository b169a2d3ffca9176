"""The local engine: jobs one after another in this process, each recorded in the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..interrupt import as_interruption
from ..jobs import Job, job_output_name
from ..manifest import DONE, FAILED, INTERRUPTED, ManifestWriter, RunPlan, outputs_record
from ..runners import FileAnonymizer, RunResult
from ..runners.settings import Progress


#: The record of an input a run stopped before.
NOT_RUN = {
    "output": "",
    "output_sha256": "",
    "outputs": {},
    "status": FAILED,
    "error": "not processed: the run stopped at the first failure (use --continue-on-error)",
}


@dataclass
class JobOutcome:
    """One job's result: its manifest record and what the run result collects."""

    record: dict[str, Any]
    result: RunResult = field(default_factory=RunResult)


def run_job(
    runner: FileAnonymizer,
    job: Job,
    facts: dict[str, Any],
    continue_on_error: bool = True,
    frame_progress: Callable[[Job, int | None], Progress] | None = None,
) -> JobOutcome:
    """Run one job and describe it for the manifest (``facts``: :func:`input_facts`)."""
    result = runner.run([job], continue_on_error, frame_progress=frame_progress)
    output = runner.output
    main = job_output_name(job, runner.settings.extension)
    written = list(result.written)
    visualizations = [p.with_name(p.stem + ".visualization.png") for p in written]
    outputs = outputs_record(output, [*written, *(p for p in visualizations if p.is_file())])
    errors = [f"{path}: {why}" if Path(path) != job.source else why for path, why in result.failed]
    record = {
        **facts,
        "output": main,
        "output_sha256": outputs.get(main, ""),
        "outputs": outputs,
        "status": FAILED if errors else DONE,
        "error": "; ".join(errors),
    }
    return JobOutcome(record, result)


def interrupted_record(facts: dict[str, Any], why: str) -> dict[str, Any]:
    """The record of an input a signal stopped, or that the interrupted run never reached."""
    return {**facts, "output": "", "output_sha256": "", "outputs": {}, "status": INTERRUPTED, "error": why}


def merge(into: RunResult, part: RunResult) -> None:
    into.written += part.written
    into.failed += part.failed
    into.notices += part.notices
    into.detections += part.detections
    into.timings += part.timings


def run_local(
    runner: FileAnonymizer,
    plan: RunPlan,
    continue_on_error: bool = False,
    on_job: Callable[[Job], None] | None = None,
    frame_progress: Callable[[Job, int | None], Progress] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
) -> RunResult:
    """Run ``plan.todo`` in order, writing the manifest; stops at the first failure unless
    ``continue_on_error`` (the inputs not run are then recorded as failed, so not run)."""
    result = RunResult(skipped=list(skipped or []))
    with ManifestWriter(runner.output, plan.carried) as manifest:
        for number, job in enumerate(plan.todo):
            try:
                outcome = run_job(runner, job, plan.facts[job.name], continue_on_error, frame_progress)
            except KeyboardInterrupt as error:  # SIGINT, SIGTERM: nothing was written for this input
                why = str(as_interruption(error))
                manifest.add(interrupted_record(plan.facts[job.name], f"{why} before it was finished"))
                for rest in plan.todo[number + 1 :]:
                    manifest.add(interrupted_record(plan.facts[rest.name], f"not processed: the run was {why}"))
                raise
            finally:
                if on_job is not None:
                    on_job(job)
            manifest.add(outcome.record)
            merge(result, outcome.result)
            if outcome.result.failed and not continue_on_error:
                for rest in plan.todo[number + 1 :]:
                    manifest.add({**plan.facts[rest.name], **NOT_RUN})
                break
    return result
