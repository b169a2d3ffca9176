"""Turn a :class:`~sganon.core.spec.RunSpec` into a running pipeline: each part built (with its
weights when it names some), the generator in eval mode, everything on the spec's device.

This module chooses nothing: :func:`sganon.core.spec.resolve_spec` does. :func:`assemble`
is the short way from names to parts (tests, benchmarks, notebooks).

>>> from sganon.core.assembly import assemble
>>> parts = assemble(detector="none", face_detector="none")  # registry.yaml defaults  # doctest: +SKIP
>>> parts.generator_label  # doctest: +SKIP
'baseline.pixelate-16 (pixelate)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .capabilities import EmbedderCapabilities, GeneratorCapabilities
from .components import component_class
from .interfaces import Detector, Generator, SurfaceEmbedder
from .registry import MODELS
from .spec import NONE, OptionFlags, PartChoice, PartSpec, PipelineOptions, RunSpec, resolve_spec

__all__ = ["NONE", "PipelineOptions", "PipelineParts", "assemble", "assemble_spec", "build_part", "to_device"]


@dataclass(frozen=True)
class PipelineParts:
    """The components of one pipeline, built, fitted and on their device.

    Attributes:
        generator: Anonymizes person crops.
        generator_label: How the output names the generator (preset and component).
        generator_caps: What the generator needs (resolution, surface channels, latent size).
        region_generator: Anonymizes faces without a body and persons too small for ``generator``.
        detector: Person detector (may also report faces), or ``None`` (detections given).
        face_detector: Face detector, or ``None``.
        embedder: Surface embedder, or ``None`` when no surface map is needed.
        embedder_caps: What the embedder offers (``crop_surface``: it recomputes surfaces at
            the crop's resolution), or ``None`` without an embedder.
        notice: What the user must be told about the choice ("" when nothing).
    """

    generator: Generator
    generator_label: str
    generator_caps: GeneratorCapabilities
    region_generator: Generator
    detector: Detector | None = None
    face_detector: Detector | None = None
    embedder: SurfaceEmbedder | None = None
    embedder_caps: EmbedderCapabilities | None = None
    notice: str = ""

    @property
    def realistic(self) -> bool:
        return self.generator_caps.realistic


def build_part(part: PartSpec) -> tuple[Any, dict[str, Any]]:
    """A part built, and its constructor arguments: from its preset's cached weights (the
    checkpoint says its arguments) or from ``part.args``."""
    if part.weights is not None:
        from .weight_cache import load_preset

        return load_preset(part.weights)
    cls = component_class(part.kind, part.component)
    return MODELS.build({"type": cls.__name__, **part.args}), dict(part.args)


def assemble_spec(spec: RunSpec) -> PipelineParts:
    """The running pipeline of ``spec`` (its options are ``spec.options``)."""
    detector = None if spec.detector is None else build_part(spec.detector)[0]
    face_detector = None if spec.face_detector is None else build_part(spec.face_detector)[0]
    generator, generator_args = build_part(spec.generator)
    generator.eval()
    embedder = embedder_caps = None
    if spec.embedder is not None:
        if spec.embedder_from_detector:
            embedder, embedder_args = detector.as_embedder(), dict(spec.embedder.args)  # type: ignore[union-attr]
        else:
            embedder, embedder_args = build_part(spec.embedder)
        embedder_caps = type(embedder).capabilities(embedder_args)
    parts = PipelineParts(
        generator=generator,
        generator_label=spec.generator_label,
        generator_caps=type(generator).capabilities(generator_args),
        region_generator=build_part(spec.region_generator)[0],
        detector=detector,
        face_detector=face_detector,
        embedder=embedder,
        embedder_caps=embedder_caps,
        notice=spec.notice,
    )
    return to_device(parts, spec.options.device)


def to_device(parts: PipelineParts, device: str) -> PipelineParts:
    """Move every component of ``parts`` to ``device`` (the parts object itself is unchanged)."""
    for component in (parts.generator, parts.region_generator, parts.detector, parts.face_detector, parts.embedder):
        if component is not None:
            component.to(device)
    return parts


def assemble(
    generator: str | None = None,
    preset: str | None = None,
    embedder: str | None = None,
    detector: str | None = None,
    face_detector: str | None = None,
    detections_given: bool = False,
    visualize: bool = False,
    device: str = "cpu",
) -> PipelineParts:
    """Names to a ready pipeline: ``assemble_spec(resolve_spec(...))``; see :func:`~sganon.core.spec.resolve_spec`."""
    choice = PartChoice(generator, preset, embedder, detector, face_detector)
    return assemble_spec(resolve_spec(choice, OptionFlags(device=device), None, detections_given, visualize))
