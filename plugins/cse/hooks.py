"""What the CSE plugin contributes through pluggy hooks: the ``densepose-pkl`` weight
converter and the reference-vector checker."""

from __future__ import annotations

from typing import Any, Callable

import torch

from sganon.core import hookimpl
from sganon.core.errors import WeightsError

#: The weights format of the detectron2 model-zoo files in registry.yaml.
WEIGHTS_FORMAT = "densepose-pkl"


def convert_densepose_pickle(path: str, preset: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A model-zoo ``.pkl`` -> (``{detectron2 name: float32 tensor}``, the component's constructor arguments).

    The tensors are checked strictly against the architecture the preset's arguments build
    (a missing, unexpected or mis-shaped tensor is a :class:`WeightsError` naming it); the
    state dict loads into :class:`CSEDetector`/:class:`CSEEmbedder` with ``load_state_dict``.
    """
    from .checkpoint import check_state_dict, read_detectron2_pickle, state_dict_from_arrays
    from .components import CSEDetector, CSEEmbedder
    from .config import CSEConfig
    from .model import DensePoseCSE

    kind = getattr(preset, "kind", None)
    if kind not in ("detector", "embedder"):
        raise WeightsError(f"the {WEIGHTS_FORMAT} converter serves CSE detector/embedder presets, not kind {kind!r}")
    component = CSEDetector if kind == "detector" else CSEEmbedder
    args = {**component.default_args("paper"), **dict(getattr(preset, "args", {}) or {})}
    args.pop("weights", None)
    config = CSEConfig.resolve(args.get("variant", "R101_FPN_DL"), args.get("overrides"))
    tensors = state_dict_from_arrays(read_detectron2_pickle(path)["model"], str(path))
    with torch.device("meta"):
        check_state_dict(DensePoseCSE(config), tensors, str(path))
    return tensors, args


@hookimpl
def sganon_weight_converters() -> dict[str, Callable[..., Any]]:
    return {WEIGHTS_FORMAT: convert_densepose_pickle}


@hookimpl
def sganon_reference_checkers() -> list[Any]:
    from .reference import CSEReferenceChecker

    return [CSEReferenceChecker()]
