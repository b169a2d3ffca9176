"""The specification of one run: which parts, with which options, and where each came from.

::

    names (--generator, --preset, --embedder, --detector, --face-detector)  ─┐
    a `sganon build` config (--config)                                      ─┼─► resolve_spec ─► RunSpec
    options given (flags, the page's fields)                                ─┘                      │
                                                                       assembly.assemble_spec ◄─────┘
                                                                                  │
                                                                     PipelineParts + spec.options ─► Anonymizer

:func:`resolve_spec` is the one function that chooses parts and options: registry.yaml's
defaults, presets (and the weights that go with a component), the fit of embedder and
generator, the baseline fallback when the realistic generator's weights are missing, flag
conflicts, and the policy of options (a pipeline preset's own options, the face margin of
re-used detections). It builds and loads nothing, so a :class:`RunSpec` is cheap plain data:
the CLI fingerprints it in the manifest, the Ray engine sends it to its workers, ``sganon
build`` writes it as a config (:func:`spec_to_config`) that reads back to the same spec.

>>> spec = resolve_spec(PartChoice(preset="baseline.blur", detector="none", face_detector="none"))  # doctest: +SKIP
>>> spec.generator.component, spec.option_sources["seed"]  # doctest: +SKIP
('blur', 'default')
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from .capabilities import PROFILES, EmbedderCapabilities, GeneratorCapabilities
from .components import available, component_class
from .errors import ComponentNotFoundError, ConfigError, PresetError, SganonError, WeightsError
from .precision import PRECISIONS
from .presets import PIPELINE, Defaults, Preset, all_presets, get_preset, registry_defaults

#: A detector or face detector given as this name is not used.
NONE = "none"

# Where an option's value comes from, in rising priority: a later source overrides an earlier.
DEFAULT = "default"  # PipelineOptions' own default
PRESET = "preset"  # the options of a pipeline preset (registry.yaml)
CONFIG = "config file"  # the `options` of a `sganon build` config
POLICY = "policy"  # a rule of the pipeline (re-used face boxes are not grown again)
FLAG = "flag"  # given by the user: a command-line flag, a field of the web page
OPTION_SOURCES = (DEFAULT, PRESET, CONFIG, POLICY, FLAG)


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs (every field has the CLI's default).

    Attributes:
        batch_size: Crops per generator call.
        truncation: Truncation ``t`` in [0, 1] passed to the generator (``None``: its default).
        seed: Seed of latents and random fills (same seed, same output).
        feather: Soft-edge width in pixels at paste-back (0: hard edge).
        detect_max_side: Images larger than this are detected on a downscaled copy.
        face_margin: Face regions are the whole head: the face box grown by this fraction of its
            width on each side, 2.5x as much of its height upwards, half as much downwards
            (``boxes.head_box``; 0 keeps the boxes, e.g. regions re-used from a detections file).
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


OPTION_NAMES = tuple(f.name for f in fields(PipelineOptions))


@dataclass(frozen=True)
class PartChoice:
    """The parts a user named (``None``: not named, the defaults decide).

    Attributes:
        generator: A generator component, or a generator preset.
        preset: A generator or pipeline preset (exclusive with ``generator``).
        embedder: A surface embedder component.
        detector: A person detector component, or ``"none"``.
        face_detector: A face detector component, or ``"none"``.
    """

    generator: str | None = None
    preset: str | None = None
    embedder: str | None = None
    detector: str | None = None
    face_detector: str | None = None


@dataclass(frozen=True)
class OptionFlags:
    """The options a user gave (``None``: not given; a preset, a config or the default decides).

    A command-line flag counts as given when it is on the command line, even at its default
    value; the web page gives the fields it shows. Fields are those of :class:`PipelineOptions`
    that a front end offers.
    """

    batch_size: int | None = None
    truncation: float | None = None
    seed: int | None = None
    feather: int | None = None
    detect_max_side: int | None = None
    device: str | None = None
    precision: str | None = None
    verify: bool | None = None


@dataclass(frozen=True)
class PartSpec:
    """One component of a run, as data: what to build and why.

    Attributes:
        kind: ``"detector"``, ``"embedder"``, ``"generator"`` (or ``"discriminator"``, for ``sganon build``).
        component: Its short name (``sganon plugins list``).
        args: Constructor arguments (the profile's defaults with the preset's on top).
        weights: The preset whose cached weights are loaded (``None``: built from ``args``).
        preset: The preset it comes from, if any (with or without weights).
        source: Why this part: ``"flag"``, ``"preset"``, ``"config file"``, ``"registry default"``.
    """

    kind: str
    component: str
    args: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    preset: str | None = None
    source: str = "registry default"

    def type_name(self) -> str:
        """The registered class name (what configs write as ``type``)."""
        return component_class(self.kind, self.component).__name__


@dataclass(frozen=True)
class Fallback:
    """The realistic default could not run; the baseline runs instead.

    Attributes:
        realistic: The realistic generator preset wanted (registry.yaml ``defaults.realistic``).
        baseline: The generator preset used (``defaults.baseline``).
        reason: Why the realistic one cannot run, in full (the error met, with what to do).
        cause: The same in a few words (for a one-line notice).
    """

    realistic: str
    baseline: str
    reason: str
    cause: str

    def message(self) -> str:
        """The full explanation (the CLI's note): why, and how to get the realistic generator."""
        return (
            f"Using the baseline generator {self.baseline!r}, NOT the realistic generator {self.realistic!r}: "
            f"{self.reason}. To anonymize with realistic people, import the weights of {self.realistic!r} and of "
            "its surface embedder with `sganon weights import` (see docs/weights.md)."
        )


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides one run's pipeline: parts, options, and where each came from.

    Attributes:
        generator: Anonymizes person crops.
        region_generator: Anonymizes faces without a body and persons too small for ``generator``.
        detector: Person detector, or ``None`` (none, or detections given).
        face_detector: Face detector, or ``None``.
        embedder: Surface embedder, or ``None`` (the generator reads no surface map).
        embedder_from_detector: The detector's model also is the embedder (one model, one
            copy of the weights: the assembler takes ``detector.as_embedder()`` and loads no
            weights of ``embedder``).
        generator_label: How outputs name the generator (``preset (component)``).
        options: The options the pipeline runs with.
        option_sources: Per option name, where its value came from (:data:`OPTION_SOURCES`).
        fallback: Set when the realistic default was wanted and the baseline runs instead.
        profile: The build profile of default arguments (``paper`` or ``tiny``).
    """

    generator: PartSpec
    region_generator: PartSpec
    detector: PartSpec | None
    face_detector: PartSpec | None
    embedder: PartSpec | None
    embedder_from_detector: bool
    generator_label: str
    options: PipelineOptions
    option_sources: Mapping[str, str]
    fallback: Fallback | None = None
    profile: str = "paper"

    @property
    def notice(self) -> str:
        """What the user must be told about the choice ("" when nothing)."""
        return self.fallback.message() if self.fallback else ""

    def parts(self) -> dict[str, PartSpec | None]:
        """The parts by role (``detector``, ``face_detector``, ``embedder``, ``generator``, ``region_generator``)."""
        return {role: getattr(self, role) for role in ROLES}


ROLES = ("detector", "face_detector", "embedder", "generator", "region_generator")


# ---------------------------------------------------------------------------------------- lookups
def class_of(role: str, kind: str, name: str, default: bool) -> type:
    """The class of a component; for a registry default, an error that says where it comes from."""
    try:
        return component_class(kind, name)
    except ComponentNotFoundError as error:
        if not default:
            raise
        raise ConfigError(
            f"the default {role} {name!r} (registry.yaml `defaults`) is not available: {error}. Is its plugin "
            "blocked (--plugin no:NAME, SGANON_BLOCK_PLUGINS) or not installed? See `sganon plugins list`, "
            f"or name another {kind}"
        ) from None


def weights_for(kind: str, component: str, args: Mapping[str, Any]) -> Preset | None:
    """The first preset with weights for exactly this component and these arguments (the one
    place that pairs an architecture with published weights), or ``None``."""
    cls = component_class(kind, component)
    for preset in all_presets().values():
        if preset.kind == kind and preset.component == cls.name and preset.weights is not None:
            if {**cls.default_args("paper"), **preset.args} == dict(args):
                return preset
    return None


def part_from_preset(preset: Preset, profile: str, source: str) -> PartSpec:
    """A detector, embedder or generator preset as a part (with its weights when it has some)."""
    cls = component_class(preset.kind, preset.component)
    return PartSpec(
        kind=preset.kind,
        component=cls.name,
        args={**cls.default_args(profile), **preset.args},
        weights=preset.name if preset.weights is not None else None,
        preset=preset.name,
        source=source,
    )


def part_from_name(kind: str, name: str, profile: str, source: str, role: str = "") -> PartSpec:
    """A component by name with the profile's defaults, and the weights published for them."""
    cls = class_of(role or kind, kind, name, default=source == "registry default")
    args = dict(cls.default_args(profile))
    weighted = weights_for(kind, cls.name, args)
    return PartSpec(kind, cls.name, args, weighted.name if weighted else None, weighted.name if weighted else None, source)


def default_component(kind: str, preferred: list[str]) -> str:
    """The first of ``preferred`` that is available, else the first available ``kind`` component."""
    names = available(kind)
    for name in preferred:
        if name in names:
            return name
    if not names:
        raise ComponentNotFoundError(f"no {kind} is available; is a plugin missing? (`sganon plugins list`)")
    return names[0]


def discriminator_for(generator: PartSpec, named: str | None, profile: str) -> PartSpec:
    """The discriminator that trains ``generator`` (``sganon build``): the one named, else the
    one of the generator's name, else the first available."""
    name = named or default_component("discriminator", [generator.component])
    cls = component_class("discriminator", name)
    return PartSpec("discriminator", cls.name, dict(cls.default_args(profile)), source=FLAG if named else "default")


def part_capabilities(part: PartSpec) -> Any:
    return component_class(part.kind, part.component).capabilities(dict(part.args))


def check_fit(
    generator_name: str,
    generator: GeneratorCapabilities,
    embedder_name: str | None,
    embedder: EmbedderCapabilities | None,
    preset: Preset | None,
) -> None:
    """Raise :class:`ConfigError` when the embedder cannot feed the generator (the one fit check)."""
    problem = generator.fits(embedder)
    if problem:
        wanted = f"an embedder with {generator.surface_channels} channels" + (
            " and mesh-vertex ids" if generator.vertices else ""
        )
        raise ConfigError(
            f"embedder {embedder_name!r} cannot feed generator {generator_name!r}: {problem}; choose {wanted} "
            f"(available embedders: {', '.join(available('embedder'))})"
        )
    if preset is not None and preset.expects_embedder and preset.expects_embedder != embedder_name:
        raise ConfigError(
            f"the weights of {preset.name!r} were trained with the {preset.expects_embedder!r} embedder, "
            f"not {embedder_name!r}; use --embedder {preset.expects_embedder}"
        )


def shares_model(detector: PartSpec | None, embedder: PartSpec) -> bool:
    """Whether the detector's model also is this embedder: it says so (``serves_embedder``)
    and both load the same published file (or both none)."""
    if detector is None or part_capabilities(detector).serves_embedder != embedder.component:
        return False
    presets = all_presets()
    source = [presets[p.weights].weights.url if p.weights else None for p in (detector, embedder)]  # type: ignore[union-attr]
    return source[0] == source[1]


def require_weights(part: PartSpec | None) -> None:
    """:class:`WeightsError` (saying how to get them) when ``part``'s weights are not in the cache."""
    if part is not None and part.weights is not None:
        from .weight_cache import check_installed

        check_installed(part.weights)


# ---------------------------------------------------------------------------------------- choosing
def choose_generator(choice: PartChoice, profile: str, for_build: bool) -> tuple[Preset, Preset | None, str]:
    """``(generator preset, pipeline preset or None, source)`` for ``--generator``/``--preset``."""
    if choice.preset:
        chosen = get_preset(choice.preset)
        if chosen.kind == PIPELINE:
            return get_preset(chosen.parts["generator"]), chosen, PRESET
        if chosen.kind != "generator":
            raise PresetError(f"preset {choice.preset!r} is a {chosen.kind}, not a generator or a pipeline")
        return chosen, None, FLAG
    name = choice.generator or ""
    try:
        cls = component_class("generator", name)
    except ComponentNotFoundError as not_a_component:
        presets = {n: p for n, p in all_presets().items() if p.kind == "generator"}
        if name not in presets:
            raise ComponentNotFoundError(
                f"{not_a_component} Generator presets: {', '.join(sorted(presets)) or 'none'}"
            ) from None
        return presets[name], None, FLAG
    # A trainable generator runs with its published weights; `sganon build` may start it untrained.
    if not for_build and cls.capabilities(cls.default_args(profile)).trainable:
        weighted = weights_for("generator", cls.name, cls.default_args("paper"))
        if weighted is None:
            raise WeightsError(f"generator {name!r} needs trained weights and no preset provides them")
        return weighted, None, FLAG
    return Preset(name=cls.name, kind="generator", component=cls.name, origin="command line"), None, FLAG


def detector_part(
    role: str, named: str | None, preset_part: str | None, default: str, profile: str
) -> PartSpec | None:
    """A person or face detector: ``"none"``, named, a pipeline preset's, or the registry default."""
    if named == NONE:
        return None
    if named is None and preset_part is not None:
        return part_from_preset(get_preset(preset_part), profile, PRESET)
    return part_from_name("detector", named or default, profile, FLAG if named else "registry default", role)


@dataclass(frozen=True)
class Chosen:
    """The parts of a run as named, read from a config or defaulted; and the options that came
    with them (a pipeline preset's or the config's), before flags and policy."""

    generator: PartSpec
    region_generator: PartSpec
    detector: PartSpec | None
    face_detector: PartSpec | None
    embedder: PartSpec | None
    embedder_from_detector: bool
    generator_label: str
    options: Mapping[str, Any]
    options_source: str
    profile: str
    fallback: Fallback | None = None


def named_parts(
    choice: PartChoice,
    generator: Preset,
    pipeline: Preset | None,
    source: str,
    defaults: Defaults,
    detections_given: bool,
    visualize: bool,
    profile: str,
    for_build: bool,
) -> Chosen:
    """The parts around the generator ``generator`` (of the pipeline preset ``pipeline``, if any)."""
    generator_part = part_from_preset(generator, profile, source)
    if generator.name == generator.component and generator.weights is None:
        generator_part = replace(generator_part, preset=None)  # a component named, not a preset
    detector = face_detector = None
    if not detections_given:
        own = None
        if for_build and choice.detector is None and choice.embedder:
            # `sganon build`: a detector of the embedder's name is the same model (one pass serves both).
            own = default_component("detector", [choice.embedder, defaults.detector])
        detector = detector_part(
            "person detector", choice.detector or own, pipeline.parts["detector"] if pipeline else None,
            defaults.detector, profile,
        )
        face_detector = detector_part("face detector", choice.face_detector, None, defaults.face_detector, profile)
    caps = part_capabilities(generator_part)
    embedder: PartSpec | None = None
    if caps.surface_channels > 0 or choice.embedder:
        if pipeline is not None:
            embedder = part_from_preset(get_preset(pipeline.parts["embedder"]), profile, PRESET)
        else:
            name = choice.embedder or generator.expects_embedder
            if not name:
                raise ConfigError(
                    f"generator {generator.name!r} uses a surface map; choose an embedder with --embedder"
                )
            embedder = part_from_name("embedder", name, profile, FLAG if choice.embedder else PRESET)
        check_fit(generator.name, caps, embedder.component, part_capabilities(embedder), generator)
    from_detector = embedder is not None and shares_model(detector, embedder)
    if visualize and embedder is None:
        embedder = part_from_name("embedder", defaults.visualization_embedder, profile, "registry default",
                                  "visualization embedder")
    region = get_preset(defaults.region_generator)
    class_of("region generator", "generator", region.component, default=True)
    return Chosen(
        generator=generator_part,
        region_generator=part_from_preset(region, profile, "registry default"),
        detector=detector,
        face_detector=face_detector,
        embedder=embedder,
        embedder_from_detector=from_detector,
        generator_label=f"{generator.name} ({generator.component})" if generator.name != generator.component
        else generator.name,
        options=pipeline.options if pipeline else {},
        options_source=PRESET,
        profile=profile,
    )


def parts_from_names(
    choice: PartChoice, defaults: Defaults, detections_given: bool, visualize: bool, profile: str, for_build: bool
) -> Chosen:
    """The parts named (or, with no generator and no preset, the realistic default when its
    weights are imported, else the baseline with a :class:`Fallback`)."""
    def around(generator: Preset, pipeline: Preset | None, source: str) -> Chosen:
        return named_parts(choice, generator, pipeline, source, defaults, detections_given, visualize, profile,
                           for_build)

    if choice.generator or choice.preset:
        generator, pipeline, source = choose_generator(choice, profile, for_build)
        if pipeline is not None and choice.embedder:
            raise ConfigError(f"pipeline preset {choice.preset!r} brings its own embedder; drop --embedder")
        return around(generator, pipeline, source)
    try:
        chosen = around(get_preset(defaults.realistic), None, "registry default")
        for part in (chosen.generator, chosen.embedder):
            require_weights(part)
        return chosen
    except (SganonError, ImportError) as error:
        cause = "its weights are not imported" if isinstance(error, WeightsError) else "it is not available"
        baseline = get_preset(defaults.baseline)
        class_of("baseline generator", "generator", baseline.component, default=True)
        chosen = around(baseline, None, "registry default")
        return replace(chosen, fallback=Fallback(defaults.realistic, defaults.baseline, str(error), cause))


def load_config(path: str | os.PathLike[str]) -> Any:
    """Read a config written by :func:`sganon.core.build.write_config` (or by hand); :class:`ConfigError` if unusable."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist; write one with `sganon build ... -o {path.name}`")
    try:
        return Config.fromfile(str(path))
    except Exception as error:  # mmengine raises OSError, SyntaxError, KeyError... for bad files
        raise ConfigError(f"cannot read {path} as an mmengine config (.py/.json/.yaml): {error}") from error


def parts_from_config(
    path: str | os.PathLike[str], defaults: Defaults, detections_given: bool, visualize: bool
) -> Chosen:
    """The parts and options of a config written by ``sganon build`` (:func:`spec_to_config`)."""
    config = load_config(path)
    section = config.get("anonymizer")
    if not section or not section.get("generator"):
        raise ConfigError(f"{path} has no `anonymizer` section with a generator; write one with `sganon build`")
    section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    profile = str(config.get("profile") or "paper")
    options = dict(section.get("options") or {})
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise ConfigError(f"{path}: unknown pipeline options {sorted(unknown)}")
    weights = section.get("weights")
    per_part = isinstance(weights, dict)  # configs before per-part weights name the generator's only
    presets = dict(section.get("presets") or {})
    presets.setdefault("generator", (config.get("parts") or {}).get("preset"))

    def part(role: str, kind: str) -> PartSpec | None:
        cfg = section.get(role)
        if not cfg:
            return None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
            raise ConfigError(f"{path}: the {role} must be a mapping with a `type`, got {cfg!r}")
        try:
            cls = component_class(kind, cfg["type"])
        except ComponentNotFoundError:
            raise ConfigError(
                f"{path}: the {role} {cfg['type']!r} is not registered (is its plugin installed and not "
                f"blocked? `sganon plugins list`); available {kind}s: {', '.join(available(kind))}"
            ) from None
        args = {**cls.default_args(profile), **{k: v for k, v in cfg.items() if k != "type"}}
        if per_part:
            named = weights.get(role)
        elif role == "generator":
            named = weights
        else:
            found = weights_for(kind, cls.name, args)
            named = found.name if found else None
        if named is not None:
            preset = get_preset(named)
            if preset.weights is None or preset.component != cls.name:
                raise ConfigError(f"{path}: {named!r} is no preset with weights of the {role} {cls.name!r}")
        return PartSpec(kind, cls.name, args, named, presets.get(role) or named, CONFIG)

    generator = part("generator", "generator")
    assert generator is not None  # checked above
    embedder = part("embedder", "embedder")
    detector = None if detections_given else part("detector", "detector")
    trained = get_preset(generator.weights) if generator.weights else None
    check_fit(generator.component, part_capabilities(generator), embedder.component if embedder else None,
              part_capabilities(embedder) if embedder else None, trained)
    from_detector = embedder is not None and shares_model(detector, embedder)
    if embedder is None and visualize:
        embedder = part_from_name(
            "embedder", defaults.visualization_embedder, profile, "registry default", "visualization embedder"
        )
    name = generator.preset or generator.component
    return Chosen(
        generator=generator,
        region_generator=part("region_generator", "generator")
        or part_from_preset(get_preset(defaults.region_generator), profile, "registry default"),
        detector=detector,
        face_detector=None if detections_given else part("face_detector", "detector"),
        embedder=embedder,
        embedder_from_detector=from_detector,
        generator_label=f"{name} ({generator.component})" if name != generator.component else name,
        options=options,
        options_source=CONFIG,
        profile=profile,
    )


def layer_options(
    layers: list[tuple[str, Mapping[str, Any]]],
) -> tuple[PipelineOptions, dict[str, str]]:
    """Options from ``(source, values)`` layers, later layers winning; and each value's source."""
    values: dict[str, Any] = asdict(PipelineOptions())
    sources = dict.fromkeys(values, DEFAULT)
    for source, layer in layers:
        for name, value in layer.items():
            if name not in values:
                raise ConfigError(f"unknown pipeline option {name!r} (from the {source}); options: {', '.join(OPTION_NAMES)}")
            values[name] = value
            sources[name] = source
    return PipelineOptions(**values), sources


def resolve_spec(
    choice: PartChoice = PartChoice(),
    flags: OptionFlags = OptionFlags(),
    config: str | os.PathLike[str] | None = None,
    detections_given: bool = False,
    visualize: bool = False,
    profile: str = "paper",
    for_build: bool = False,
) -> RunSpec:
    """The one place that decides a run's parts and options (see the module docstring).

    Args:
        choice: The parts named (``--generator`` or ``--preset``, ``--embedder``, ``--detector``,
            ``--face-detector``). With no generator and no preset, the registry's ``realistic``
            preset when its weights and its embedder's are imported, else its ``baseline``
            preset, with a :class:`Fallback` saying why. An explicit choice that cannot run is
            an error (never a silent downgrade).
        flags: The options given; they win over a config's and a preset's.
        config: A config written by ``sganon build``: its parts and options (exclusive with ``choice``).
        detections_given: Detections come from a file: no detector, and the face boxes (already
            the replaced regions) are not grown again (``face_margin`` 0).
        visualize: Also an embedder (the registry's visualization embedder) when the generator
            uses none, so the surface map can be drawn.
        profile: Build profile of the default arguments (``paper``, ``tiny``).
        for_build: For ``sganon build``: a trainable generator named as a component may have
            no weights (training starts from it), and the detector defaults to the embedder's
            own model when one of its name exists.
    """
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if choice.generator and choice.preset:
        raise ConfigError("give either --generator or --preset, not both")
    defaults = registry_defaults()
    if config is not None:
        named = [flag for flag, value in (("--generator", choice.generator), ("--preset", choice.preset),
                 ("--embedder", choice.embedder), ("--detector", choice.detector),
                 ("--face-detector", choice.face_detector)) if value]
        if named:
            raise ConfigError(f"--config names the pipeline's parts; drop {', '.join(named)}")
        chosen = parts_from_config(config, defaults, detections_given, visualize)
    else:
        chosen = parts_from_names(choice, defaults, detections_given, visualize, profile, for_build)
    given = {f.name: getattr(flags, f.name) for f in fields(OptionFlags) if getattr(flags, f.name) is not None}
    options, sources = layer_options([
        (chosen.options_source, chosen.options),  # a pipeline preset's, or the config's
        # Exported face boxes are the replaced regions already: re-used ones are not grown again.
        (POLICY, {"face_margin": 0.0} if detections_given else {}),
        (FLAG, given),
    ])
    return RunSpec(
        generator=chosen.generator,
        region_generator=chosen.region_generator,
        detector=chosen.detector,
        face_detector=chosen.face_detector,
        embedder=chosen.embedder,
        embedder_from_detector=chosen.embedder_from_detector,
        generator_label=chosen.generator_label,
        options=options,
        option_sources=sources,
        fallback=chosen.fallback,
        profile=chosen.profile,
    )


# ---------------------------------------------------------------------------------------- configs
def part_config(part: PartSpec | None) -> dict[str, Any] | None:
    """``{"type": ClassName, **args}`` of a part (an mmengine config entry), or ``None``."""
    return None if part is None else {"type": part.type_name(), **part.args}


def spec_to_config(spec: RunSpec) -> dict[str, Any]:
    """The ``anonymizer`` section of a ``sganon build`` config; :func:`resolve_spec` with
    ``config=`` reads it back to the same parts and options."""
    caps = part_capabilities(spec.generator)
    parts = spec.parts()
    return {
        **{role: part_config(part) for role, part in parts.items()},
        "weights": {role: part.weights for role, part in parts.items() if part is not None and part.weights},
        "presets": {role: part.preset for role, part in parts.items() if part is not None and part.preset},
        "resolution": None if caps.resolution is None else list(caps.resolution),
        "options": asdict(spec.options),
    }


__all__ = [
    "Fallback",
    "OptionFlags",
    "PartChoice",
    "PartSpec",
    "PipelineOptions",
    "RunSpec",
    "check_fit",
    "load_config",
    "resolve_spec",
    "spec_to_config",
    "weights_for",
]
