"""The ONLY place where ``sganon serve`` calls into the anonymization pipeline.

The web app runs exactly the code the ``sganon anonymize`` command runs (the same
generator choice, detectors, :class:`Anonymizer` and video runner); everything it needs
from the pipeline goes through the few functions below, so a change of the pipeline's
names means changing this file only.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sganon.core.anonymizer import Anonymizer
from sganon.core.assembly import PipelineParts, assemble_spec
from sganon.core.detections import Detections, write_detections
from sganon.core.errors import AnonymizationError, ConfigError, InputError
from sganon.core.jobs import Job
from sganon.core.images import image_extensions, read_image, write_image
from sganon.core.video import VIDEO_EXTENSIONS, probe_video
from sganon.core.presets import PIPELINE, all_presets
from sganon.core.runners import FileAnonymizer, RunSettings
from sganon.core.spec import OptionFlags, PartChoice, PipelineOptions, RunSpec, resolve_spec


@dataclass(frozen=True)
class RunOptions:
    """What the page lets the user choose (``None``: the CLI's default).

    Attributes:
        preset: Generator or pipeline preset name (``None``: realistic if imported, else baseline).
        generator: Generator component name (exclusive with ``preset``).
        truncation: Truncation in [0, 1] towards the average person.
        seed: Seed of the latents; "new person" draws another one.
        verify: Run the verification pass after anonymizing (when the pipeline has one).
    """

    preset: str | None = None
    generator: str | None = None
    truncation: float | None = None
    seed: int = 0
    verify: bool = True


@dataclass
class GeneratorInfo:
    """What the banner says about the generator in use (``notice``: one line, or "")."""

    label: str
    realistic: bool
    notice: str
    uses_latents: bool


@dataclass
class ImageResult:
    """One anonymized photo.

    Attributes:
        image: uint8 ``[H, W, 3]`` anonymized RGB.
        replaced: bool ``[H, W]``, the pixels that were (or may have been) changed.
        detections: What was anonymized, as in ``--export-detections`` (one image entry).
        surfaces: Per person ``(box (x0, y0, x1, y1), embedding float32 [E, h, w], valid bool [h, w])``.
        timings: Seconds per pipeline stage.
    """

    image: np.ndarray
    replaced: np.ndarray
    detections: dict[str, Any]
    surfaces: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]
    timings: dict[str, float]


def media_kind(suffix: str) -> str | None:
    """``"image"`` or ``"video"`` for a file extension the CLI reads (``".jpg"``), else ``None``."""
    suffix = suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in image_extensions():
        return "image"
    return None


def verification_support() -> tuple[bool, str]:
    """Whether the pipeline has a verification pass, and a note for the page when it has not."""
    if "verify" in PipelineOptions.__dataclass_fields__:
        return True, ""
    return False, "This version of the pipeline has no verification pass yet."


def generator_presets() -> list[dict[str, Any]]:
    """Generator and pipeline presets the page offers, with whether their weights are needed."""
    offered = []
    for preset in all_presets().values():
        if preset.kind in ("generator", PIPELINE):
            offered.append(
                {
                    "name": preset.name,
                    "kind": preset.kind,
                    "description": preset.description,
                    "needs_weights": preset.weights is not None or preset.kind == PIPELINE,
                }
            )
    return sorted(offered, key=lambda p: (p["needs_weights"], p["name"]))


class PipelineAdapter:
    """Assembles and caches the CLI's pipeline parts; runs photos and videos through them.

    Parts are assembled once per choice (as ``sganon anonymize`` does, with the overlay
    embedder of ``--visualize``) and kept; a fresh :class:`Anonymizer` (cheap) is made for
    each run, with that run's seed and truncation. Runs are serialised by a lock (the
    detectors are not thread-safe).

    Args:
        device: Torch device of every component.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.lock = threading.RLock()
        self.assembled: dict[tuple[str | None, str | None], PipelineParts] = {}

    # ------------------------------------------------------------------ building
    def spec(self, options: RunOptions) -> RunSpec:
        """The run's specification, as ``sganon anonymize --visualize`` makes it from the same
        names and flags (the page's fields count as given; truncation only when set)."""
        return resolve_spec(
            PartChoice(generator=options.generator, preset=options.preset),
            OptionFlags(truncation=options.truncation, seed=options.seed, verify=options.verify, device=self.device),
            visualize=True,
        )

    def parts(self, options: RunOptions) -> PipelineParts:
        key = (options.preset, options.generator)
        with self.lock:
            if key not in self.assembled:
                self.assembled[key] = assemble_spec(self.spec(options))
            return self.assembled[key]

    def generator_info(self, options: RunOptions) -> GeneratorInfo:
        parts = self.parts(options)
        fallback = self.spec(options).fallback
        # One line for the banner (the page links the weights guide); the CLI prints the long note.
        notice = f"Baseline in use, not the realistic generator {fallback.realistic}: {fallback.cause}." if fallback else ""
        return GeneratorInfo(
            label=parts.generator_label,
            realistic=parts.realistic,
            notice=notice,
            uses_latents=parts.generator_caps.latent_size > 0,
        )

    def detector_key(self, options: RunOptions) -> str:
        """Names the detectors ``options`` use: runs with the same key can share detections."""
        parts = self.parts(options)
        return f"{type(parts.detector).__name__}/{type(parts.face_detector).__name__}"

    def anonymizer(self, options: RunOptions, with_surfaces: bool) -> Anonymizer:
        """The CLI's :class:`Anonymizer` for ``options`` (``with_surfaces``: keep the overlay embedder)."""
        supported, note = verification_support()
        if options.verify and not supported:
            raise ConfigError(f"the verification pass was asked for, but: {note}")
        parts = self.parts(options)
        if not with_surfaces and parts.generator_caps.surface_channels == 0:
            parts = dataclasses.replace(parts, embedder=None, embedder_caps=None)
        return Anonymizer(parts, self.spec(options).options)

    # ------------------------------------------------------------------ photos
    def read_photo(self, path: Path) -> np.ndarray:
        """uint8 RGB ``[H, W, 3]`` of a photo, upright, as the pipeline sees it."""
        return read_image(path).rgb

    def detect(self, options: RunOptions, rgb: np.ndarray) -> Detections:
        """Persons and faces of a photo (kept by the app so "new person" does not detect again)."""
        with self.lock:
            return self.anonymizer(options, with_surfaces=False).detect(rgb)

    def anonymize_photo(
        self, options: RunOptions, source: Path, target: Path, name: str, detections: Detections | None = None
    ) -> ImageResult:
        """Anonymize the photo ``source`` and write it losslessly (PNG) to ``target``.

        Pixels outside the replaced region keep their exact values (as the CLI writes them).
        """
        loaded = read_image(source)
        with self.lock:
            result = self.anonymizer(options, with_surfaces=True).anonymize(loaded.rgb, detections)
        write_image(target, loaded, result.image, result.replaced, "png")
        height, width = loaded.rgb.shape[:2]
        entry = {"file": name, **result.detections.to_json(height, width)}
        surfaces = [(tuple(s.box.to_list()), s.embedding, s.valid) for s in result.surfaces]
        return ImageResult(result.image, result.replaced, entry, surfaces, dict(result.timings))

    # ------------------------------------------------------------------ videos
    def count_frames(self, path: Path) -> tuple[int, int, int, float | None]:
        """``(frames, width, height, seconds)`` of a video (decodes it once)."""
        info = probe_video(path)
        return info.frames, info.width, info.height, info.duration

    def anonymize_video(
        self,
        options: RunOptions,
        source: Path,
        output_folder: Path,
        output_name: str,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[Path, list[dict[str, Any]]]:
        """Anonymize a video as ``sganon anonymize`` does (tracking, audio kept).

        Returns the written file (``output_folder / output_name``, H.264) and its per-frame
        detections (``--export-detections`` entries). ``progress(n)`` is called as frames are done.
        """
        with self.lock:
            runner = FileAnonymizer(
                self.anonymizer(options, with_surfaces=False), output_folder, RunSettings(export=True)
            )
            result = runner.run(
                [Job("video", source, output_name)], frame_progress=(lambda job, total: progress) if progress else None
            )
        if result.failed:
            raise AnonymizationError(result.failed[0][1])
        if not result.written:
            raise InputError("the video produced no output")
        return result.written[0], [entry.to_json() for entry in result.detections]


def write_detections_file(path: Path, entries: list[dict[str, Any]]) -> None:
    """The detections JSON in the CLI's ``--export-detections`` format."""
    write_detections(path, entries)
