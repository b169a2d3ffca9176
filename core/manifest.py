"""The run manifest: ``manifest.jsonl`` in the output folder, one JSON line per input.

Each line records what one input became::

    {"input": "in/a.jpg", "name": "a.jpg", "size": 1234, "sha256": HEX, "settings": HEX,
     "output": "a.jpg", "output_sha256": HEX, "outputs": {"a.jpg": HEX, ...},
     "status": "done" | "failed" | "interrupted", "error": "" | WHY}

``settings`` fingerprints what decides the outputs (pipeline, options, output settings);
``output`` is the input's main output (relative to the output folder), ``outputs`` every
file written for it (COCO images, visualizations). A run lists every input exactly once;
``interrupted`` marks the input a signal stopped (nothing was written for it) and those
after it (:mod:`sganon.core.interrupt`).

Before any work (:func:`plan_run`): temporary files a killed run left are removed;
with ``resume``, inputs whose record says done, whose input is unchanged (size and sha256)
and whose outputs are all present with the recorded sha256 are skipped (their records are
carried over). Whether outputs that exist may be replaced is decided before that, with
every other path of the run, by :func:`sganon.core.output_plan.plan_outputs` (unless
``overwrite``, only outputs the old manifest records as that input's, with ``resume``: a
changed input or other settings then replace them).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .atomic import remove_temporaries
from .errors import InputError
from .jobs import Job, confined_name, job_output_name, output_name

MANIFEST_NAME = "manifest.jsonl"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputFacts:
    """The manifest fields of a job's input.

    Attributes:
        input: The input's path as given.
        name: Its name relative to its input root (unique in a run).
        size: Its size in bytes.
        sha256: Its content's sha256.
        settings: The fingerprint of the run's settings (an input done with other settings is
            not complete).
    """

    input: str
    name: str
    size: int
    sha256: str
    settings: str


@dataclass(frozen=True)
class ManifestRecord:
    """One line of ``manifest.jsonl`` (module docstring): an input and what it became.

    Attributes:
        facts: The input.
        status: ``"done"`` or ``"failed"``.
        output: The main output, relative to the output folder ("" when none).
        output_sha256: Its sha256 ("" when none).
        outputs: ``{path relative to the output folder: sha256}`` of every file written for it.
        error: Why it failed ("" when done).
    """

    facts: InputFacts
    status: str
    output: str = ""
    output_sha256: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.facts),
            "output": self.output,
            "output_sha256": self.output_sha256,
            "outputs": self.outputs,
            "status": self.status,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ManifestRecord":
        facts = InputFacts(*(data[name] for name in InputFacts.__dataclass_fields__))
        return cls(facts, data["status"], data["output"], data["output_sha256"], dict(data["outputs"]), data["error"])


def input_facts(job: Job, settings: str = "") -> InputFacts:
    """The facts of a job's input (see :class:`InputFacts`)."""
    return InputFacts(str(job.source), job.name, job.source.stat().st_size, file_sha256(job.source), settings)


def settings_fingerprint(description: dict[str, Any]) -> str:
    """sha256 of everything that decides a run's outputs (pipeline, options, output settings)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def outputs_record(output: Path, written: Iterable[Path]) -> dict[str, str]:
    """``{path relative to output: sha256}`` of the files written for one input."""
    return {Path(path).relative_to(output).as_posix(): file_sha256(Path(path)) for path in written}


def expected_outputs(job: Job, extension: str | None, visualize: bool) -> list[str]:
    """The files (relative to the output folder) a job will write, known before running it."""
    main = job_output_name(job, extension)
    names = [main]
    if job.kind == "coco":
        try:
            data = json.loads(job.source.read_text(encoding="utf-8"))
            entries = data.get("images") or [] if isinstance(data, dict) else []
        except (OSError, ValueError):
            entries = []  # the run itself reports the unreadable file
        for entry in entries:
            if isinstance(entry, dict) and entry.get("file_name"):
                try:
                    names.append("images/" + output_name(confined_name(entry["file_name"], "COCO file_name"), extension))
                except InputError:
                    pass  # refused by the run itself, before anything is written
    if visualize and job.kind != "video":
        for name in list(names if job.kind == "image" else names[1:]):
            stem = Path(name)
            names.append(stem.with_name(stem.stem + ".visualization.png").as_posix())
    return names


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The records of a manifest by input name (a later line for the same name wins)."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            # A run killed while appending leaves at most one broken last line: that input is redone.
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            records[record["name"]] = record
    return records


def is_complete(record: dict[str, Any] | None, facts: InputFacts, output: Path) -> bool:
    """Whether a recorded input (a line read back, unchecked) is done, unchanged, and its
    outputs are all there, unchanged."""
    if not record or record.get("status") != DONE:
        return False
    if any(record.get(key) != getattr(facts, key) for key in ("size", "sha256", "settings")):
        return False
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for name, digest in outputs.items():
        path = output / name
        if not path.is_file() or file_sha256(path) != digest:
            return False
    return True


@dataclass
class RunPlan:
    """What a run will do.

    Attributes:
        todo: Jobs to run (in the input order).
        facts: Input facts of every job to run, by job name.
        carried: Records of the inputs skipped as complete (``--resume``).
        removed: Temporary files of a killed run that were deleted.
    """

    todo: list[Job] = field(default_factory=list)
    facts: dict[str, InputFacts] = field(default_factory=dict)
    carried: list[ManifestRecord] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def plan_run(
    jobs: list[Job],
    output: Path,
    resume: bool,
    settings: str = "",
) -> RunPlan:
    """Decide, before any work, which jobs run (module docstring). Whether the run may write
    its outputs (existing files, ``--overwrite``) was decided before, by
    :func:`sganon.core.output_plan.plan_outputs`. ``settings``: :func:`settings_fingerprint`
    of the run (recorded; resumed inputs must match)."""
    output = Path(output)
    plan = RunPlan(removed=remove_temporaries(output))
    previous = read_manifest(output / MANIFEST_NAME) if resume else {}
    for job in jobs:
        facts = input_facts(job, settings)
        if resume and is_complete(previous.get(job.name), facts, output):
            done = previous[job.name]
            plan.carried.append(
                ManifestRecord(facts, DONE, str(done.get("output", "")), str(done.get("output_sha256", "")), done["outputs"])
            )
            continue
        plan.todo.append(job)
        plan.facts[job.name] = facts
    return plan


class ManifestWriter:
    """Writes ``manifest.jsonl`` anew: the carried records first, then one line per finished
    input, each flushed and fsynced (a killed run keeps every record it wrote)."""

    def __init__(self, output: Path, carried: Iterable[ManifestRecord] = ()) -> None:
        output.mkdir(parents=True, exist_ok=True)
        self.path = output / MANIFEST_NAME
        self.handle = open(self.path, "w", encoding="utf-8")
        self.names: set[str] = set()
        for record in carried:
            self.add(record)

    def add(self, record: ManifestRecord) -> None:
        name = record.facts.name
        if name in self.names:  # every input is listed once
            return
        self.names.add(name)
        self.handle.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
