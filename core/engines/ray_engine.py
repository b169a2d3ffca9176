"""The Ray engine: a dataset's jobs on Ray Data, on this machine or on a Ray cluster.

The driver (``sganon anonymize --engine ray``) turns the jobs into tasks (up to
``images_per_task`` images, or one video, or one COCO dataset) and maps them over a pool of
actors (:class:`AnonymizeWorker`). Each actor builds the pipeline once from the run's
:class:`~sganon.core.spec.RunSpec` (the one the driver resolved), anonymizes its tasks with the same runners
as the local engine and writes the outputs itself, atomically; it returns one manifest
record per input. The driver writes ``manifest.jsonl`` as records arrive and the
detections file at the end, in input order, so the output tree is the local engine's.

Every item draws its randomness from ``(seed, its relative name)`` only
(:meth:`~sganon.core.anonymizer.Anonymizer.reseed`): outputs are byte-identical to the
local engine's, whatever the number of workers or the order tasks run in.

A worker that dies (killed, out of memory, node lost) is restarted by Ray and its task
retried (``max_restarts``, ``max_task_retries``); a retried task rewrites the same bytes.
Temporary files a dead worker left are removed when the run ends. Inputs and the output
folder must be at the same path on every node (a shared file system) for a multi-node cluster.

Ray is an optional extra (``pip install 'sganon[ray]'``); it is imported only here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from ..atomic import remove_temporaries
from ..detections import ExportedDetections
from ..errors import ConfigError
from ..jobs import Job
from ..manifest import InputFacts, ManifestRecord, ManifestWriter, RunPlan
from ..runners import RunResult, RunSettings
from ..spec import RunSpec
from .local import job_record

#: Environment variables a worker takes from the driver (wherever the cluster started it).
FORWARDED_ENVIRONMENT = ("SGANON_HOME", "SGANON_BLOCK_PLUGINS")
#: How often Ray restarts a dead worker and retries its task before the run fails.
MAX_RESTARTS = 4
RAY_EXTRA_HINT = "the Ray engine needs the `ray` extra: pip install 'sganon[ray]' (ray[data] 2.58)"


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the extra brings ray[data], not only ray)
    except ImportError as error:
        raise ConfigError(f"{RAY_EXTRA_HINT} ({error})") from None
    return ray


def job_to_row(index: int, job: Job) -> dict[str, Any]:
    return {
        "index": index,
        "kind": job.kind,
        "source": str(job.source),
        "name": job.name,
        "images": None if job.images is None else str(job.images),
    }


def row_to_job(row: dict[str, Any]) -> Job:
    return Job(row["kind"], Path(row["source"]), row["name"], None if row["images"] is None else Path(row["images"]))


def make_tasks(jobs: list[Job], images_per_task: int) -> list[str]:
    """Tasks as JSON lists of jobs: up to ``images_per_task`` consecutive images, or one video
    or COCO dataset (long jobs alone, so the pool stays balanced)."""
    tasks: list[list[dict[str, Any]]] = []
    images: list[dict[str, Any]] = []
    for index, job in enumerate(jobs):
        if job.kind == "image":
            images.append(job_to_row(index, job))
            if len(images) == images_per_task:
                tasks.append(images)
                images = []
        else:
            tasks.append([job_to_row(index, job)])
    if images:
        tasks.append(images)
    return [json.dumps(task) for task in tasks]


class AnonymizeWorker:
    """A Ray Data actor: builds the pipeline once, then anonymizes tasks of jobs.

    Args:
        spec: The pipeline to build (resolved by the driver: workers choose nothing).
        settings: How files are written (as the local engine's).
        output: The output folder (the same path on every node).
        facts: Input facts (path, size, sha256) per job name, recorded in the manifest.
        environment: Variables of :data:`FORWARDED_ENVIRONMENT` from the driver.
        threads: Torch threads of this worker (its CPUs).
    """

    def __init__(
        self,
        spec: RunSpec,
        settings: RunSettings,
        output: str,
        facts: dict[str, InputFacts],
        environment: dict[str, str],
        threads: int,
    ) -> None:
        import torch

        from ..anonymizer import Anonymizer
        from ..assembly import assemble_spec
        from ..runners import FileAnonymizer

        os.environ.update(environment)
        torch.set_num_threads(max(1, threads))
        self.anonymizer = Anonymizer(assemble_spec(spec), spec.options)
        self.runner = FileAnonymizer(self.anonymizer, Path(output), settings)
        self.facts = facts

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        rows = []
        for task in batch["task"]:
            for entry in json.loads(str(task)):
                job = row_to_job(entry)
                result = self.runner.run_job(job, continue_on_error=True)
                rows.append(
                    json.dumps(
                        {
                            "index": entry["index"],
                            "record": job_record(self.runner, job, self.facts[job.name], result).to_json(),
                            "written": [str(p) for p in result.written],
                            "failed": [[str(p), why] for p, why in result.failed],
                            "notices": result.notices,
                            "detections": [entry.to_json() for entry in result.detections],
                            "timings": result.timings,
                        }
                    )
                )
        return {"outcome": np.array(rows, dtype=object)}


def run_ray(
    spec: RunSpec,
    settings: RunSettings,
    output: Path,
    plan: RunPlan,
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    images_per_task: int = 8,
    on_job: Callable[[Job], None] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
    progress: bool = True,
) -> RunResult:
    """Run ``plan.todo`` on Ray; every input is attempted (a failure does not stop the others).

    Args:
        address: A running cluster (``ray://HOST:10001`` or ``HOST:6379``, or ``"auto"``);
            ``None`` starts a local one for this run (or uses the one this process started).
        workers: Actors in the pool (each builds the pipeline once).
        gpus_per_worker: GPUs each actor reserves (0: CPU only); the spec's ``device``
            should then be ``cuda``.
        cpus_per_worker: CPUs each actor reserves (its torch threads).
        images_per_task: Images per task (a batch of the dataset).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    result = RunResult(skipped=list(skipped or []))
    jobs = plan.todo
    manifest = ManifestWriter(output, plan.carried)
    if not jobs:
        manifest.close()
        return result
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # One CPU beyond the workers' for Ray Data's own tasks (feeding the pool).
            cpus = max(os.cpu_count() or 1, math.ceil(workers * cpus_per_worker) + 1)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = True
    environment = {key: os.environ[key] for key in FORWARDED_ENVIRONMENT if key in os.environ}
    by_index: dict[int, dict[str, Any]] = {}
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        # Small runs get smaller tasks, so that every worker has some (about 4 tasks each).
        images = sum(job.kind == "image" for job in jobs)
        per_task = max(1, min(images_per_task, math.ceil(images / (4 * workers))))
        rows = [{"task": task} for task in make_tasks(jobs, per_task)]
        # One block per task: every actor takes the next task as soon as it is free.
        tasks = ray.data.from_items(rows, override_num_blocks=len(rows))
        outcomes = tasks.map_batches(
            AnonymizeWorker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={
                "spec": spec,
                "settings": settings,
                "output": str(output),
                "facts": plan.facts,
                "environment": environment,
                "threads": max(1, int(cpus_per_worker)),
            },
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
        )
        for row in outcomes.iter_rows():
            outcome = json.loads(str(row["outcome"]))
            if outcome["index"] in by_index:  # a retried task's duplicate
                continue
            by_index[outcome["index"]] = outcome
            manifest.add(ManifestRecord.from_json(outcome["record"]))
            if on_job is not None:
                on_job(jobs[outcome["index"]])
    finally:
        manifest.close()
        if started:
            ray.shutdown()
        remove_temporaries(output)  # left by workers that died mid-write
    for index in sorted(by_index):  # input order: the local engine's detections file and lists
        outcome = by_index[index]
        part = RunResult(
            written=[Path(p) for p in outcome["written"]],
            failed=[(Path(p), why) for p, why in outcome["failed"]],
            notices=outcome["notices"],
            detections=[ExportedDetections.from_json(entry) for entry in outcome["detections"]],
            timings=outcome["timings"],
        )
        result.add(part)
    return result


__all__ = ["AnonymizeWorker", "import_ray", "make_tasks", "run_ray"]
