"""Assemble a complete, resolved mmengine config from chosen plugins (``sganon build``).

The config holds an ``anonymizer`` section (detector, embedder, generator and the weights
preset, if any) for inference and, for trainable generators, the training sections
(``model``, ``train_dataloader``, ``optim_wrapper``, ``train_cfg``, hooks) produced by
:func:`sganon.core.training.config.training_sections`.

>>> from sganon.core.build import build_config
>>> result = build_config(generator=GENERATOR, embedder=EMBEDDER)  # names from `sganon plugins list`  # doctest: +SKIP
>>> result.config.anonymizer.generator.type  # the registered class  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_output
from .components import available, component_class
from .errors import ComponentNotFoundError, ConfigError, PresetError
from .capabilities import PROFILES, EmbedderCapabilities, GeneratorCapabilities
from .presets import Preset, all_presets, get_preset, registry_defaults


@dataclass
class BuildResult:
    """A resolved config plus the lines ``sganon build`` shows about it."""

    config: Any  # mmengine.Config
    summary: list[str] = field(default_factory=list)


def parse_cfg_options(options: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]", "d=text"]`` -> ``{"a.b": 1, "c": [1, 2], "d": "text"}``.

    Values are Python literals where they parse as one, strings otherwise.
    """
    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cfg-options takes KEY=VALUE, got {option!r}")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        parsed[key.strip()] = value
    return parsed


def resolve_generator(name: str, profile: str) -> tuple[type, dict[str, Any], Preset | None]:
    """A generator by component name, or by generator preset name (registry.yaml)."""
    try:
        cls = component_class("generator", name)
        return cls, dict(cls.default_args(profile)), None
    except ComponentNotFoundError as not_a_component:
        presets = {n: p for n, p in all_presets().items() if p.kind == "generator"}
        if name not in presets:
            raise ComponentNotFoundError(
                f"{not_a_component} Generator presets: {', '.join(sorted(presets)) or 'none'}"
            ) from None
        preset = presets[name]
        cls = component_class("generator", preset.component)
        return cls, {**cls.default_args(profile), **preset.args}, preset


def pick_default(kind: str, preferred: list[str]) -> str:
    names = available(kind)
    for name in preferred:
        if name in names:
            return name
    if not names:
        raise ComponentNotFoundError(f"no {kind} is available; is a plugin missing? (`sganon plugins list`)")
    return names[0]


def check_fit(
    generator_name: str,
    generator: GeneratorCapabilities,
    embedder_name: str | None,
    embedder: EmbedderCapabilities | None,
    preset: Preset | None,
) -> None:
    """Raise :class:`ConfigError` when the embedder cannot feed the generator (the one fit
    check of ``sganon build``, ``sganon anonymize --config`` and the pipeline assembly)."""
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


def build_config(
    generator: str,
    embedder: str,
    detector: str | None = None,
    discriminator: str | None = None,
    dataset: str | None = None,
    profile: str = "paper",
    cfg_options: list[str] | tuple[str, ...] = (),
) -> BuildResult:
    """Resolve the named parts into one mmengine config; see the module docstring."""
    from mmengine.config import Config

    from .assembly import PipelineOptions

    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    generator_cls, generator_args, preset = resolve_generator(generator, profile)
    generator_name = generator_cls.name
    embedder_cls = component_class("embedder", embedder)
    embedder_args = dict(embedder_cls.default_args(profile))
    defaults = registry_defaults()
    # A detector of the embedder's name is the same model (one pass serves both roles).
    detector_cls = component_class("detector", detector or pick_default("detector", [embedder_cls.name, defaults.detector]))
    detector_args = dict(detector_cls.default_args(profile))
    face_cls = component_class("detector", defaults.face_detector)
    region = get_preset(defaults.region_generator)
    region_cls = component_class("generator", region.component)

    generator_caps = generator_cls.capabilities(generator_args)
    embedder_caps = embedder_cls.capabilities(embedder_args)
    check_fit(generator_name, generator_caps, embedder_cls.name, embedder_caps, preset)

    cfg: dict[str, Any] = {
        "default_scope": "sganon",
        "profile": profile,
        "parts": {
            "generator": generator_name,
            "embedder": embedder_cls.name,
            "detector": detector_cls.name,
            "preset": preset.name if preset else None,
        },
        "anonymizer": {
            "detector": {"type": detector_cls.__name__, **detector_args},
            "embedder": {"type": embedder_cls.__name__, **embedder_args},
            "generator": {"type": generator_cls.__name__, **generator_args},
            "weights": preset.name if preset and preset.weights else None,
            "resolution": None if generator_caps.resolution is None else list(generator_caps.resolution),
            "face_detector": {"type": face_cls.__name__, **face_cls.default_args(profile)},
            "region_generator": {"type": region_cls.__name__, **region_cls.default_args(profile), **region.args},
            "options": asdict(PipelineOptions()),
        },
    }
    summary = [
        f"profile:       {profile}",
        f"detector:      {detector_cls.name} ({detector_cls.__name__})",
        f"embedder:      {embedder_cls.name} ({embedder_cls.__name__}), "
        f"{embedder_caps.surface_channels} surface channels",
        f"generator:     {generator_name} ({generator_cls.__name__})"
        + (f", preset {preset.name}" if preset else "")
        + ("" if generator_caps.realistic else " [baseline, not a realistic generator]"),
        f"crop size:     {list(generator_caps.resolution) if generator_caps.resolution else 'native (no resize)'}",
    ]
    if preset and preset.weights:
        summary.append(f"weights:       {preset.name} ({preset.weights.licence[:60]}...)")

    if generator_caps.trainable:
        from .training.config import training_sections

        discriminator_cls = component_class(
            "discriminator", discriminator or pick_default("discriminator", [generator_name])
        )
        training, training_summary = training_sections(
            generator={"type": generator_cls.__name__, **generator_args},
            discriminator={"type": discriminator_cls.__name__, **discriminator_cls.default_args(profile)},
            dataset=dataset,
            profile=profile,
            generator_caps=generator_caps,
        )
        cfg.update(training)
        cfg["parts"]["discriminator"] = discriminator_cls.name
        cfg["parts"]["dataset"] = dataset
        summary.append(f"discriminator: {discriminator_cls.name} ({discriminator_cls.__name__})")
        summary.extend(training_summary)
    else:
        if discriminator or dataset:
            raise ConfigError(
                f"generator {generator_name!r} is not trainable, so --discriminator/--dataset do not apply"
            )
        summary.append("training:      not applicable (generator is not trainable)")

    config = Config(cfg)
    options = parse_cfg_options(cfg_options)
    if options:
        config.merge_from_dict(options)
        summary.append(f"overrides:     {', '.join(f'{k}={v!r}' for k, v in options.items())}")
    return BuildResult(config, summary)


def load_config(path: str | os.PathLike[str]) -> Any:
    """Read a config written by :func:`write_config` (or by hand); :class:`ConfigError` if unusable."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist; write one with `sganon build ... -o {path.name}`")
    try:
        return Config.fromfile(str(path))
    except Exception as error:  # mmengine raises OSError, SyntaxError, KeyError... for bad files
        raise ConfigError(f"cannot read {path} as an mmengine config (.py/.json/.yaml): {error}") from error


def write_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as an mmengine Python config, atomically; returns the path."""
    path = Path(path)
    if path.suffix != ".py":
        raise ConfigError(f"configs are written as Python files; use a .py name, not {path.name!r}")
    with atomic_output(path) as temporary:
        config.dump(str(temporary))
    return path


__all__ = ["BuildResult", "build_config", "load_config", "parse_cfg_options", "write_config", "PresetError"]
