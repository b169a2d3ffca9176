"""The local engine: jobs one after another in this process (the one loop,
:func:`~sganon.core.runners.run_jobs`), each recorded in the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..interrupt import as_interruption
from ..jobs import Job, job_output_name
from ..manifest import DONE, FAILED, INTERRUPTED, InputFacts, ManifestRecord, ManifestWriter, RunPlan, outputs_record
from ..runners import FileAnonymizer, RunResult, run_jobs
from ..runners.settings import Progress


#: Why an input a run stopped before has no output.
NOT_RUN = "not processed: the run stopped at the first failure (use --continue-on-error)"


def job_record(runner: FileAnonymizer, job: Job, facts: InputFacts, result: RunResult) -> ManifestRecord:
    """The manifest record of one job's result (``facts``: :func:`~sganon.core.manifest.input_facts`);
    the local and the Ray engine record alike."""
    output = runner.output
    main = job_output_name(job, runner.settings.extension)
    written = list(result.written)
    visualizations = [p.with_name(p.stem + ".visualization.png") for p in written]
    outputs = outputs_record(output, [*written, *(p for p in visualizations if p.is_file())])
    errors = [f"{path}: {why}" if Path(path) != job.source else why for path, why in result.failed]
    return ManifestRecord(facts, FAILED if errors else DONE, main, outputs.get(main, ""), outputs, "; ".join(errors))


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
    with ManifestWriter(runner.output, plan.carried) as manifest:
        recorded: set[str] = set()

        def record(job: Job, result: RunResult) -> None:
            manifest.add(job_record(runner, job, plan.facts[job.name], result))
            recorded.add(job.name)

        try:
            result = run_jobs(runner, plan.todo, continue_on_error, on_job, frame_progress, skipped, on_result=record)
        except KeyboardInterrupt as error:  # SIGINT, SIGTERM: nothing was written for the current input
            why = str(as_interruption(error))
            left = [job for job in plan.todo if job.name not in recorded]
            for number, job in enumerate(left):
                reason = f"{why} before it was finished" if number == 0 else f"not processed: the run was {why}"
                manifest.add(ManifestRecord(plan.facts[job.name], INTERRUPTED, error=reason))
            raise
        for rest in plan.todo:
            if rest.name not in recorded:
                manifest.add(ManifestRecord(plan.facts[rest.name], FAILED, error=NOT_RUN))
    return result
