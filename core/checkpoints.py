"""The sganon checkpoint format and the strict state-dict check every loader uses.

A sganon checkpoint is a safetensors file holding a component's state dict, with the
resolved component config (``{"type": ClassName, **args}``, JSON) in its metadata under
``sganon_config`` and in a ``.json`` file beside it, plus where the weights came from
(``sganon_source``). Every weights file of the project (V-SAM generators, DensePose-CSE
models) uses this one layout. Nothing here unpickles code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_output
from .errors import WeightsError
from .registry import MODELS

CONFIG_KEY = "sganon_config"
SOURCE_KEY = "sganon_source"


def save_checkpoint(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` + ``config`` (+ ``source`` facts) as a sganon checkpoint, atomically.

    Args:
        path: the ``.safetensors`` file; ``<path>.json`` beside it gets the config too.
        state_dict: ``{name: tensor}``; tensors are stored contiguous on the CPU.
        config: the component config ``{"type": ClassName, **args}`` (JSON-serializable).
        source: where the weights came from (url, sha256, ...), JSON-serializable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    try:
        config_text = json.dumps(dict(config), sort_keys=True)
        source_text = json.dumps(dict(source or {}), sort_keys=True)
    except TypeError as error:
        raise WeightsError(f"the component config must be JSON-serializable: {error}") from error
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state_dict.items()}
    metadata = {CONFIG_KEY: config_text, SOURCE_KEY: source_text}
    with atomic_output(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    side = {"config": json.loads(config_text), "source": json.loads(source_text)}
    with atomic_output(path.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(side, indent=2) + "\n")
    return path


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; :class:`WeightsError` if it cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"cannot read the safetensors file {path}: {error}") from error
    return tensors, metadata


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(state_dict, config, source)`` of a sganon checkpoint.

    Raises:
        WeightsError: the file is missing, not safetensors, or has no stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    tensors, metadata = read_safetensors(path)
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path} has no stored component config ({CONFIG_KEY}); it was not written by sganon")
    try:
        config = json.loads(metadata[CONFIG_KEY])
        source = json.loads(metadata.get(SOURCE_KEY, "{}"))
    except ValueError as error:
        raise WeightsError(f"{path} has a corrupt stored config: {error}") from error
    if not isinstance(config, dict) or "type" not in config:
        raise WeightsError(f"{path}: the stored config must be a dict with a 'type'")
    return tensors, config, source


def check_state_dict(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str, hint: str = "") -> None:
    """Raise :class:`WeightsError` unless ``tensors`` has exactly ``module``'s keys and shapes.

    The message names the missing, unexpected and mis-shaped tensors (the first few of each).
    """
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    wrong = [
        f"{name}: checkpoint {tuple(tensors[name].shape)}, model {expected[name]}"
        for name in expected
        if name in tensors and tuple(tensors[name].shape) != expected[name]
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {name_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {name_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape (another shape than the model's): {name_listing(wrong)}")
    if problems:
        raise WeightsError(f"{what} does not fit the architecture: " + "; ".join(problems) + (f". {hint}" if hint else ""))


def load_state_dict_strictly(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str, hint: str = ""
) -> None:
    """:func:`check_state_dict`, then ``load_state_dict(strict=True)``."""
    check_state_dict(module, tensors, what, hint)
    module.load_state_dict(dict(tensors), strict=True)


def name_listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def load_checkpoint_component(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Build the component stored in a sganon checkpoint, load its tensors strictly.

    Returns:
        ``(component in eval mode on device, its constructor arguments)``.
    """
    state_dict, config, _ = read_checkpoint(path)
    component = MODELS.build(dict(config))
    load_state_dict_strictly(component, state_dict, f"{path} ({config['type']})")
    component.to(device)
    if hasattr(component, "eval"):
        component.eval()
    return component, {key: value for key, value in config.items() if key != "type"}


__all__ = [
    "check_state_dict",
    "load_checkpoint_component",
    "load_state_dict_strictly",
    "read_checkpoint",
    "read_safetensors",
    "save_checkpoint",
]
