"""How a run's jobs are executed: in this process (:mod:`.local`, the default) or on a Ray
cluster (:mod:`.ray_engine`). Both build the pipeline from the same
:class:`~sganon.core.spec.RunSpec` (with :func:`~sganon.core.assembly.assemble_spec`), write
the same output tree, detections file and ``manifest.jsonl``, and give the same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..manifest import file_sha256
from ..runners.settings import RunSettings
from ..spec import RunSpec


def describe_run(spec: RunSpec, settings: RunSettings, detections: Path | None) -> dict[str, Any]:
    """Everything that decides a run's outputs, as plain data (for the manifest's fingerprint):
    the spec, the output settings, and the content of the detections file re-used."""
    described = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in ("reuse", "export")}
    return {
        "spec": asdict(spec),
        "settings": described,
        "detections": None if detections is None else file_sha256(detections),
    }
