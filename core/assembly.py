"""Assemble a pipeline from names: which detector, face detector, embedder, generator and
region generator one run uses, checked to fit, moved to the requested device.

Names come from the command line, a config written by ``sganon build``, or the
``defaults`` of registry.yaml; nothing here names a plugin. The result is immutable:
:class:`PipelineParts` (the components) and :class:`PipelineOptions` (how to run them).

>>> from sganon.core.assembly import assemble
>>> parts = assemble(detector="none", face_detector="none")  # registry.yaml defaults  # doctest: +SKIP
>>> parts.notice  # why the realistic generator is not used, if it is not  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .build import check_fit
from .capabilities import GeneratorCapabilities
from .components import available, build_component, component_class
from .errors import ComponentNotFoundError, ConfigError, PresetError, SganonError, WeightsError
from .interfaces import Detector, Generator, SurfaceEmbedder
from .precision import PRECISIONS
from .presets import PIPELINE, Defaults, Preset, all_presets, get_preset, registry_defaults

#: A detector or face detector given as this name is not used.
NONE = "none"


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs (every field has the CLI's default).

    Attributes:
        batch_size: Crops per generator call.
        truncation: Truncation ``t`` in [0, 1] passed to the generator (``None``: its default).
        seed: Seed of latents and random fills (same seed, same output).
        feather: Soft-edge width in pixels at paste-back (0: hard edge).
        detect_max_side: Images larger than this are detected on a downscaled copy.
        face_margin: Face regions are the face box grown by this fraction on each side.
        device: Torch device of every component (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        paste_order: ``"area"`` (largest person first, so the nearer person stays whole) or
            ``"detection"`` (the detector's order, as the paper's anonymizer).
        verify: Run the face detector on the output; faces found where nothing was replaced
            go through the region path, until none is found (at most ``VERIFY_ROUNDS``).
        precision: Arithmetic of the model forwards (detector, embedder, generators), one of
            :data:`PRECISIONS`: ``"fp32"`` (TF32 off on CUDA, so results match the
            references), ``"tf32"`` (TF32 matmuls and convolutions on CUDA), ``"bf16"`` /
            ``"fp16"`` (autocast); see :mod:`sganon.core.precision`.
    """

    batch_size: int = 8
    truncation: float | None = None
    seed: int = 0
    feather: int = 0
    detect_max_side: int = 1920
    face_margin: float = 0.2
    device: str = "cpu"
    paste_order: str = "area"
    verify: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        # Options also come from configs and presets (data): check their types, not only ranges.
        expected = {
            "batch_size": int, "seed": int, "feather": int, "detect_max_side": int,
            "face_margin": (int, float), "device": str, "paste_order": str, "verify": bool, "precision": str,
        }
        for name, kind in expected.items():
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"pipeline option {name} has the wrong type: {value!r}")
        truncation = self.truncation
        if truncation is not None and (isinstance(truncation, bool) or not isinstance(truncation, (int, float))):
            raise ConfigError(f"pipeline option truncation must be a number or None, got {self.truncation!r}")
        if self.paste_order not in ("area", "detection"):
            raise ConfigError(f"paste order must be 'area' or 'detection', got {self.paste_order!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.truncation is not None and not 0.0 <= self.truncation <= 1.0:
            raise ConfigError(f"truncation must be in [0, 1], got {self.truncation}")


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
        notice: What the user must be told about the choice ("" when nothing).
        options: :class:`PipelineOptions` fields a pipeline preset sets (command-line flags win).
    """

    generator: Generator
    generator_label: str
    generator_caps: GeneratorCapabilities
    region_generator: Generator
    detector: Detector | None = None
    face_detector: Detector | None = None
    embedder: SurfaceEmbedder | None = None
    notice: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def realistic(self) -> bool:
        return self.generator_caps.realistic


def load_weighted(preset: Preset) -> tuple[Any, dict[str, Any]]:
    """A preset's component with its imported weights, and its constructor arguments."""
    from .weight_cache import load_preset

    return load_preset(preset.name)


def default_named(role: str, kind: str, name: str) -> type:
    """The class of a registry default; a clear error when its plugin is blocked or missing."""
    try:
        return component_class(kind, name)
    except ComponentNotFoundError as error:
        raise ConfigError(
            f"the default {role} {name!r} (registry.yaml `defaults`) is not available: {error}. Is its plugin "
            "blocked (--plugin no:NAME, SGANON_BLOCK_PLUGINS) or not installed? See `sganon plugins list`, "
            f"or name another {kind}"
        ) from None


def build_preset(preset: Preset) -> tuple[Any, dict[str, Any]]:
    """A detector, embedder or generator preset built (with its weights when it has some) and
    its constructor arguments."""
    if preset.weights is not None:
        return load_weighted(preset)
    cls = component_class(preset.kind, preset.component)
    args = {**cls.default_args("paper"), **preset.args}
    return build_component(preset.kind, preset.component, **preset.args), args


def build_generator(preset: Preset) -> tuple[Generator, dict[str, Any]]:
    """A generator preset built (with its weights when it has some) and its constructor arguments."""
    return build_preset(preset)


def build_embedder(name: str, preset: Preset | None = None) -> tuple[SurfaceEmbedder, dict[str, Any]]:
    """The embedder ``name`` (or ``preset``), with weights when a preset of it has them."""
    if preset is None:
        weighted = [
            p for p in all_presets().values() if p.kind == "embedder" and p.component == name and p.weights is not None
        ]
        preset = weighted[0] if weighted else None
    if preset is not None:
        return build_preset(preset)
    cls = component_class("embedder", name)
    return build_component("embedder", name), dict(cls.default_args("paper"))


def generator_preset(generator: str | None, preset: str | None, defaults: Defaults) -> tuple[Preset, Preset | None]:
    """``(generator preset, pipeline preset or None)`` for ``--generator``/``--preset``."""
    if preset:
        chosen = get_preset(preset)
        if chosen.kind == PIPELINE:
            return get_preset(chosen.parts["generator"]), chosen
        if chosen.kind != "generator":
            raise PresetError(f"preset {preset!r} is a {chosen.kind}, not a generator or a pipeline")
        return chosen, None
    cls = component_class("generator", generator or "")
    if cls.capabilities(cls.default_args("paper")).trainable:
        presets = all_presets().values()
        weighted = [p for p in presets if p.kind == "generator" and p.component == cls.name and p.weights]
        if not weighted:
            raise WeightsError(f"generator {generator!r} needs trained weights and no preset provides them")
        return weighted[0], None
    return Preset(name=cls.name, kind="generator", component=cls.name, origin="command line"), None


def embedder_for(
    preset: Preset,
    caps: GeneratorCapabilities,
    embedder: str | None,
    embedder_preset: Preset | None,
    detector: Detector | None,
) -> SurfaceEmbedder | None:
    """The embedder that feeds ``preset``'s generator, checked to fit (``None`` when none is needed).

    When the person detector's model also is that embedder (``serves_embedder``), the
    detector's own ``as_embedder()`` is used: one model, one copy of the weights.
    """
    if caps.surface_channels == 0 and not embedder:
        return None
    name = embedder_preset.component if embedder_preset else embedder or preset.expects_embedder
    if not name:
        raise ConfigError(f"generator {preset.name!r} uses a surface map; choose an embedder with --embedder")
    cls = component_class("embedder", name)
    served = type(detector).capabilities({}).serves_embedder if detector is not None else None
    if served == name:
        surface = detector.as_embedder()  # type: ignore[union-attr]
        surface_args: dict[str, Any] = dict(cls.default_args("paper"))
    else:
        surface, surface_args = build_embedder(name, embedder_preset)
    if caps.surface_channels > 0:
        check_fit(preset.name, caps, name, type(surface).capabilities(surface_args), preset)
    return surface


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
    """Resolve names to a ready pipeline.

    Args:
        generator: ``--generator NAME`` (a component), or ``None``.
        preset: ``--preset NAME`` (a generator or pipeline preset), or ``None``. With neither,
            the registry's ``realistic`` preset when its weights and its embedder's are
            imported, else its ``baseline`` preset, with a notice saying so. An explicit
            choice that cannot be loaded is an error (never a silent downgrade).
        embedder: ``--embedder NAME``; default: the one the generator's weights expect.
        detector: Person detector; ``None``: the pipeline preset's, else the registry
            default; ``"none"``: no detector.
        face_detector: Face detector; ``None``: the registry default; ``"none"``: none.
        detections_given: Detections come from a file: no detector is built.
        visualize: Also build an embedder (the registry's visualization embedder) when the
            generator uses none, so the surface map can be drawn.
        device: Every component is moved here.
    """
    if generator and preset:
        raise ConfigError("give either --generator or --preset, not both")
    defaults = registry_defaults()
    notice = ""
    pipeline_preset: Preset | None = None
    if generator or preset:
        chosen, pipeline_preset = generator_preset(generator, preset, defaults)
        if pipeline_preset is not None and embedder:
            raise ConfigError(f"pipeline preset {preset!r} brings its own embedder; drop --embedder")
    else:
        chosen = get_preset(defaults.realistic)
    embedder_preset = get_preset(pipeline_preset.parts["embedder"]) if pipeline_preset else None

    person_detector: Detector | None = None
    faces: Detector | None = None
    if not detections_given:
        if detector is None and pipeline_preset is not None:
            person_detector = build_preset(get_preset(pipeline_preset.parts["detector"]))[0]
        elif detector != NONE:
            name = detector or defaults.detector
            if detector is None:
                default_named("person detector", "detector", name)
            person_detector = build_component("detector", name)
        if face_detector != NONE:
            name = face_detector or defaults.face_detector
            if face_detector is None:
                default_named("face detector", "detector", name)
            faces = build_component("detector", name)

    def with_embedder(preset: Preset) -> tuple[Generator, GeneratorCapabilities, SurfaceEmbedder | None]:
        model, args = build_generator(preset)
        caps = type(model).capabilities(args)
        model.eval()
        return model, caps, embedder_for(preset, caps, embedder, embedder_preset, person_detector)

    if generator or preset:
        generator_model, caps, surface = with_embedder(chosen)
    else:
        try:
            generator_model, caps, surface = with_embedder(chosen)
        except (SganonError, ImportError) as error:
            notice = (
                f"Using the baseline generator {defaults.baseline!r}, NOT the realistic generator "
                f"{defaults.realistic!r}: {error}. To anonymize with realistic people, import the weights of "
                f"{defaults.realistic!r} and of its surface embedder with `sganon weights import` "
                "(see docs/weights.md)."
            )
            chosen = get_preset(defaults.baseline)
            default_named("baseline generator", "generator", chosen.component)
            generator_model, caps, surface = with_embedder(chosen)
    if visualize and surface is None:
        default_named("visualization embedder", "embedder", defaults.visualization_embedder)
        surface = build_embedder(defaults.visualization_embedder)[0]

    region = get_preset(defaults.region_generator)
    default_named("region generator", "generator", region.component)
    region_generator = build_generator(region)[0]

    label = f"{chosen.name} ({chosen.component})" if chosen.name != chosen.component else chosen.name
    parts = PipelineParts(
        generator=generator_model,
        generator_label=label,
        generator_caps=caps,
        region_generator=region_generator,
        detector=person_detector,
        face_detector=faces,
        embedder=surface,
        notice=notice,
        options=dict(pipeline_preset.options) if pipeline_preset else {},
    )
    return to_device(parts, device)


def to_device(parts: PipelineParts, device: str) -> PipelineParts:
    """Move every component of ``parts`` to ``device`` (the parts object itself is unchanged)."""
    for component in (parts.generator, parts.region_generator, parts.detector, parts.face_detector, parts.embedder):
        if component is not None:
            component.to(device)
    return parts


def assemble_from_config(
    path: Any, detections_given: bool = False, visualize: bool = False, device: str | None = None
) -> tuple[PipelineParts, dict[str, Any]]:
    """The pipeline a ``sganon build`` config names, and the pipeline options it sets.

    Builds exactly the config's ``anonymizer`` section: ``detector``, ``face_detector``,
    ``embedder`` and ``generator`` (with the weights of ``weights`` when it names a preset),
    ``region_generator``; ``options`` holds :class:`PipelineOptions` fields. Parts that do
    not fit fail with the same error as ``sganon build``.

    Args:
        path: The config file.
        detections_given: Detections come from a file: no detector is built.
        visualize: Build the visualization embedder when the config names no embedder.
        device: Overrides the config's ``options.device``.
    """
    from .build import load_config
    from .registry import MODELS

    config = load_config(path)
    section = config.get("anonymizer")
    if not section or not section.get("generator"):
        raise ConfigError(f"{path} has no `anonymizer` section with a generator; write one with `sganon build`")
    section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    options = dict(section.get("options") or {})
    unknown = set(options) - set(PipelineOptions.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{path}: unknown pipeline options {sorted(unknown)}")
    if device is not None:
        options["device"] = device

    def config_class(role: str, kind: str, cfg: dict[str, Any]) -> tuple[type, dict[str, Any]]:
        cls = MODELS.get(cfg.get("type", "")) if isinstance(cfg, dict) else None
        if cls is None:
            names = ", ".join(available(kind))
            raise ConfigError(
                f"{path}: the {role} {cfg.get('type') if isinstance(cfg, dict) else cfg!r} is not registered "
                f"(is its plugin installed and not blocked? `sganon plugins list`); available {kind}s: {names}"
            )
        return cls, {key: value for key, value in cfg.items() if key != "type"}

    def build(role: str, kind: str, cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        cls, args = config_class(role, kind, cfg)
        return MODELS.build({"type": cls.__name__, **args}), {**cls.default_args("paper"), **args}

    weights = section.get("weights")
    generator_cls, generator_args = config_class("generator", "generator", section["generator"])
    preset = get_preset(weights) if weights else None
    embedder_cfg = section.get("embedder")
    embedder_cls, embedder_args = config_class("embedder", "embedder", embedder_cfg) if embedder_cfg else (None, {})
    caps = generator_cls.capabilities(generator_args)
    embedder_caps = embedder_cls.capabilities(embedder_args) if embedder_cls else None
    check_fit(generator_cls.name, caps, embedder_cls.name if embedder_cls else None, embedder_caps, preset)

    generator = load_weighted(preset)[0] if preset else build("generator", "generator", section["generator"])[0]
    generator.eval()
    embedder = None
    if embedder_cls is not None:
        # The config names the architecture; its weights come from a preset of the same arguments.
        weighted = [
            p
            for p in all_presets().values()
            if p.kind == "embedder" and p.component == embedder_cls.name and p.weights is not None
            and p.args.items() <= embedder_args.items()
        ]
        embedder = load_weighted(weighted[0])[0] if weighted else build("embedder", "embedder", embedder_cfg)[0]
    elif visualize:
        embedder = build_embedder(registry_defaults().visualization_embedder)[0]
    person_detector = face_detector = None
    if not detections_given:
        if section.get("detector"):
            person_detector = build("detector", "detector", section["detector"])[0]
        if section.get("face_detector"):
            face_detector = build("face detector", "detector", section["face_detector"])[0]
    region_cfg = section.get("region_generator")
    if region_cfg:
        region_generator = build("region generator", "generator", region_cfg)[0]
    else:
        region_generator = build_generator(get_preset(registry_defaults().region_generator))[0]
    named_preset = (config.get("parts") or {}).get("preset")
    name = preset.name if preset else named_preset or generator_cls.name
    parts = PipelineParts(
        generator=generator,
        generator_label=f"{name} ({generator_cls.name})" if name != generator_cls.name else name,
        generator_caps=caps,
        region_generator=region_generator,
        detector=person_detector,
        face_detector=face_detector,
        embedder=embedder,
    )
    return to_device(parts, options.get("device", "cpu")), options
