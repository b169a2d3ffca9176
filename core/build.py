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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_output
from .errors import ConfigError, PresetError
from .presets import all_presets
from .spec import load_config


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


def build_config(
    generator: str,
    embedder: str,
    detector: str | None = None,
    discriminator: str | None = None,
    dataset: str | None = None,
    profile: str = "paper",
    cfg_options: list[str] | tuple[str, ...] = (),
) -> BuildResult:
    """Resolve the named parts into one mmengine config; see the module docstring.

    The parts are chosen by :func:`~sganon.core.spec.resolve_spec` (as for ``sganon
    anonymize``); its ``anonymizer`` section is :func:`~sganon.core.spec.spec_to_config`.
    """
    from mmengine.config import Config

    from .spec import PartChoice, discriminator_for, part_capabilities, resolve_spec, spec_to_config

    spec = resolve_spec(PartChoice(generator=generator, embedder=embedder, detector=detector), profile=profile,
                        for_build=True)
    chosen_generator, chosen_embedder, chosen_detector = spec.generator, spec.embedder, spec.detector
    assert chosen_embedder is not None and chosen_detector is not None  # named, and detections are not given
    generator_caps = part_capabilities(chosen_generator)
    embedder_caps = part_capabilities(chosen_embedder)
    generator_name = chosen_generator.component
    preset = chosen_generator.preset
    cfg: dict[str, Any] = {
        "default_scope": "sganon",
        "profile": profile,
        "parts": {
            "generator": generator_name,
            "embedder": chosen_embedder.component,
            "detector": chosen_detector.component,
            "preset": preset,
        },
        "anonymizer": spec_to_config(spec),
    }
    summary = [
        f"profile:       {profile}",
        f"detector:      {chosen_detector.component} ({chosen_detector.type_name()})",
        f"embedder:      {chosen_embedder.component} ({chosen_embedder.type_name()}), "
        f"{embedder_caps.surface_channels} surface channels",
        f"generator:     {generator_name} ({chosen_generator.type_name()})"
        + (f", preset {preset}" if preset else "")
        + ("" if generator_caps.realistic else " [baseline, not a realistic generator]"),
        f"crop size:     {list(generator_caps.resolution) if generator_caps.resolution else 'native (no resize)'}",
    ]
    if chosen_generator.weights:
        licence = all_presets()[chosen_generator.weights].weights.licence  # type: ignore[union-attr]
        summary.append(f"weights:       {chosen_generator.weights} ({licence[:60]}...)")

    if generator_caps.trainable:
        from .training.config import training_sections

        chosen_discriminator = discriminator_for(chosen_generator, discriminator, profile)
        training, training_summary = training_sections(
            generator={"type": chosen_generator.type_name(), **chosen_generator.args},
            discriminator={"type": chosen_discriminator.type_name(), **chosen_discriminator.args},
            dataset=dataset,
            profile=profile,
            generator_caps=generator_caps,
        )
        cfg.update(training)
        cfg["parts"]["discriminator"] = chosen_discriminator.component
        cfg["parts"]["dataset"] = dataset
        summary.append(f"discriminator: {chosen_discriminator.component} ({chosen_discriminator.type_name()})")
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


def write_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as an mmengine Python config, atomically; returns the path."""
    path = Path(path)
    if path.suffix != ".py":
        raise ConfigError(f"configs are written as Python files; use a .py name, not {path.name!r}")
    with atomic_output(path) as temporary:
        config.dump(str(temporary))
    return path


__all__ = ["BuildResult", "build_config", "load_config", "parse_cfg_options", "write_config", "PresetError"]
