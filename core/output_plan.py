"""Every path a run will write, checked before the first byte is written.

An anonymization run writes its outputs (images, videos, COCO images and annotations),
``--visualize`` drawings, the run manifest and the ``--export-detections`` file.
:func:`plan_outputs` is the one place that decides whether a run may write them, before
the pipeline is built and before any input is read:

* inputs and outputs stay apart (:func:`~sganon.core.jobs.check_paths`) and no two inputs
  share an output name (:func:`~sganon.core.jobs.check_output_names`);
* every output resolves inside ``-o`` (symbolic links too), and no folder on its way is a file;
* a file that already exists is replaced only with ``overwrite`` (with ``resume``: the
  outputs the previous manifest records as that input's are sganon's to replace) - the
  detections file too; a folder in the place of a file is always refused;
* the detections file is neither an output of the run, the manifest, nor the ``--detections``
  file; a ``manifest.jsonl`` that is not a sganon manifest is replaced only with ``overwrite``;
* each place the run writes can be written: a file is created and removed in the nearest
  existing folder (anonymous where the system allows it, so nothing shows).

Any refusal is an :class:`~sganon.core.errors.InputError` naming the path; nothing has been
written then.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import InputError
from .jobs import Job, check_output_names, check_paths, path_inside
from .manifest import MANIFEST_NAME, expected_outputs, read_manifest


def plan_outputs(
    jobs: list[Job],
    output: Path,
    inputs: Iterable[Path],
    extension: str | None = None,
    visualize: bool = False,
    export: Path | None = None,
    reused: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Check every path the run of ``jobs`` will write (module docstring); returns them.

    Args:
        jobs: The run's jobs.
        output: The output folder (``-o``).
        inputs: The inputs as given (files and folders, ``--coco-images``).
        extension: Image output format (``None``: the input's).
        visualize: ``--visualize`` drawings are written too.
        export: The ``--export-detections`` file, if any.
        reused: The ``--detections`` file, if any (read, never written).
        resume: ``--resume``: outputs the manifest records as an input's may be replaced.
        overwrite: Existing files may be replaced.
    """
    output = Path(output)
    check_output_names(jobs, extension)
    check_paths(jobs, output, inputs, export)
    previous = read_manifest(output / MANIFEST_NAME) if resume else {}
    existing: list[str] = []
    planned: list[Path] = []
    for job in jobs:
        ours = set((previous.get(job.name) or {}).get("outputs") or {})
        for name in expected_outputs(job, extension, visualize):
            path = path_inside(output, name, "the output name")
            check_folders_on_the_way(path, output)
            if path.is_dir():
                raise InputError(f"the output {path} is a folder; move it or choose another -o")
            if path.exists() and name not in ours and not overwrite:
                existing.append(name)
            planned.append(path)
    if existing:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise InputError(
            f"{len(existing)} output(s) already exist in {output}: {shown}. Nothing was written. Use --resume to "
            "skip the inputs a previous run completed, or --overwrite to replace the outputs"
        )
    manifest = output / MANIFEST_NAME
    check_folders_on_the_way(manifest, output)
    if manifest.is_dir():
        raise InputError(f"{manifest} is a folder; sganon writes its run manifest there: move it or choose another -o")
    if manifest.exists() and not overwrite and not is_sganon_manifest(manifest):
        raise InputError(
            f"{manifest} exists and is not a sganon run manifest; nothing was written. Move it, choose another -o, "
            "or use --overwrite to replace it"
        )
    check_can_write(output, f"the output folder {output}")
    if export is not None:
        check_export(Path(export), reused, [*planned, manifest], overwrite)
    return [*planned, manifest, *([Path(export)] if export is not None else [])]


def check_export(export: Path, reused: Path | None, written: list[Path], overwrite: bool) -> None:
    """The ``--export-detections`` file: not a file the run writes otherwise, not the
    ``--detections`` file, not a folder, replaced only with ``overwrite``, writable."""
    target = export.resolve()
    if reused is not None and target == Path(reused).resolve():
        raise InputError("--export-detections would overwrite the --detections file; choose another file")
    if any(target == path.resolve() for path in written):
        raise InputError(f"--export-detections {export} is a file this run writes (an output or the manifest)")
    if export.is_dir():
        raise InputError(f"--export-detections {export} is a folder; give a file name")
    if export.exists() and not overwrite:
        raise InputError(
            f"--export-detections {export} already exists; nothing was written. Use --overwrite to replace it, "
            "or choose another file"
        )
    check_can_write(export.parent, f"--export-detections {export}")


def check_folders_on_the_way(path: Path, output: Path) -> None:
    """Refuse ``path`` when a folder between ``output`` and it exists as a file (it could not be created)."""
    for folder in reversed(path.relative_to(output).parents):  # ".", "a", "a/b" for "a/b/c.jpg"
        place = output / folder
        if place.exists() and not place.is_dir():
            raise InputError(f"cannot write {path}: {place} is a file, not a folder")


def check_can_write(folder: Path, what: str) -> None:
    """Raise :class:`InputError` (naming ``what``) unless files can be created in ``folder``
    (created as needed): a file is created and removed in its nearest existing ancestor. As
    root, permission bits do not tell (``os.access`` says yes), nor do read-only file systems."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{what}: cannot be written, {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):  # O_TMPFILE where supported: no name ever appears
            pass
    except OSError as error:
        raise InputError(f"{what}: cannot write in {existing}: {error.strerror or error}") from error


def is_sganon_manifest(path: Path) -> bool:
    """Whether ``path`` looks like a run manifest sganon wrote (each line a record with a name
    and a status; empty or only a broken last line - a run killed while appending - count too)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) - 1 and line.startswith("{"):  # a record cut short
                continue
            return False
        if not (isinstance(record, dict) and isinstance(record.get("name"), str) and "status" in record):
            return False
    return True
