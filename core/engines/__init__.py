"""How a run's jobs are executed: in this process (:mod:`.local`, the default) or on a Ray
cluster (:mod:`.ray_engine`). Both build the pipeline from the same :class:`PipelineRecipe`,
write the same output tree, detections file and ``manifest.jsonl``, and give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..anonymizer import Anonymizer
from ..assembly import PipelineOptions, PipelineParts


@dataclass(frozen=True)
class PipelineRecipe:
    """What a pipeline is built from, small enough to send to workers (each builds its own).

    Attributes:
        names: ``assemble`` arguments (``generator``, ``preset``, ``embedder``, ``detector``,
            ``face_detector``); ignored when ``config`` is given.
        config: A config written by ``sganon build``, or ``None``.
        options: :class:`PipelineOptions` fields.
        given: The option names given on the command line (they override the config's).
        detections_given: Detections come from a file: no detector is built.
        visualize: Build the visualization embedder too.
    """

    names: dict[str, Any] = field(default_factory=dict)
    config: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()
    detections_given: bool = False
    visualize: bool = False

    def parts(self) -> tuple[PipelineParts, PipelineOptions]:
        """The assembled parts and the options they run with."""
        from ..assembly import assemble, assemble_from_config

        options = dict(self.options)
        device = options.get("device", "cpu")
        if self.config is not None:
            parts, configured = assemble_from_config(
                self.config,
                detections_given=self.detections_given,
                visualize=self.visualize,
                device=device if "device" in self.given else None,
            )
            options.update({key: value for key, value in configured.items() if key not in self.given})
        else:
            parts = assemble(
                **self.names, detections_given=self.detections_given, visualize=self.visualize, device=device
            )
            # A pipeline preset's options (e.g. detection-order paste); flags given win.
            options.update({key: value for key, value in parts.options.items() if key not in self.given})
        return parts, PipelineOptions(**options)

    def build(self) -> tuple[PipelineParts, Anonymizer]:
        parts, options = self.parts()
        return parts, Anonymizer(parts, options)


def describe_run(recipe: PipelineRecipe, settings: Any, detections: Path | None) -> dict[str, Any]:
    """Everything that decides a run's outputs, as plain data (for the manifest's fingerprint):
    the recipe, the output settings, and the content of the detections file re-used."""
    from dataclasses import asdict, fields

    from ..manifest import file_sha256

    described = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in ("reuse", "export")}
    return {
        "recipe": asdict(recipe),
        "config": None if recipe.config is None else file_sha256(recipe.config),
        "settings": described,
        "detections": None if detections is None else file_sha256(detections),
    }
