"""What the V-SAM plugin contributes through pluggy hooks: the ``fba-checkpoint`` weight
converter and the reference-vector checker."""

from __future__ import annotations

from typing import Any, Callable

import torch

from sganon.core import hookimpl
from sganon.core.errors import WeightsError

#: The weights format of the official full_body_anonymization checkpoints in registry.yaml.
WEIGHTS_FORMAT = "fba-checkpoint"


def convert_fba_checkpoint(path: str, preset: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An official checkpoint -> (the EMA generator's state dict, :class:`VSAMGenerator` arguments).

    The architecture is config E with the preset's ``args`` on top; every tensor is checked
    strictly against it (a missing, unexpected or mis-shaped tensor is a :class:`WeightsError`).
    """
    from .fba import generator_args, load_strict, read_fba_checkpoint
    from .generator import VSAMGenerator

    if getattr(preset, "kind", "generator") != "generator":
        raise WeightsError(f"the {WEIGHTS_FORMAT} converter serves generator presets, not kind {preset.kind!r}")
    state = read_fba_checkpoint(path)["EMA_generator"]
    args = {**VSAMGenerator.default_args("paper"), **generator_args(None), **dict(getattr(preset, "args", {}) or {})}
    with torch.device("meta"):
        generator = VSAMGenerator(**args)
    load_strict(generator.to_empty(device="cpu"), state, "EMA generator")
    return state, args


@hookimpl
def sganon_weight_converters() -> dict[str, Callable[..., Any]]:
    return {WEIGHTS_FORMAT: convert_fba_checkpoint}


@hookimpl
def sganon_reference_checkers() -> list[Any]:
    from .reference import VSAMReferenceChecker

    return [VSAMReferenceChecker()]
