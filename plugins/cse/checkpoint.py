"""Reading DensePose-CSE weights: official detectron2 model-zoo ``.pkl`` files (through a
restricted unpickler that builds only numpy arrays and plain containers), state dicts, and
our own safetensors export. Loading is strict: every tensor of the architecture must be
present with its exact shape (../shared/reference/cse/VECTORS.md section 8).

>>> import io, pickle
>>> blob = pickle.dumps({"model": {}, "__author__": "x", "evil": print})
>>> read_detectron2_pickle(io.BytesIO(blob))
Traceback (most recent call last):
...
sganon.core.errors.WeightsError: refused to unpickle builtins.print: a detectron2 checkpoint holds only numpy arrays and plain containers
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np
import torch

from sganon.core.errors import ConfigError, WeightsError

from .config import CSEConfig
from .model import DensePoseCSE

#: The globals a pickled dict of numpy arrays needs (numpy 1.x and 2.x module names).
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol 2
    ("collections", "OrderedDict"),
}
#: Entries detectron2 ignores on load; the config provides them (pixel mean/std, anchors).
IGNORED_SUFFIXES = ("num_batches_tracked",)
IGNORED_KEYS = ("pixel_mean", "pixel_std")
IGNORED_PREFIXES = ("proposal_generator.anchor_generator.cell_anchors",)
#: safetensors metadata keys of our export.
#: The ``type`` of the config stored with a bare DensePose-CSE model in a sganon checkpoint.
MODEL_TYPE = "DensePoseCSE"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise WeightsError(
                f"refused to unpickle {module}.{name}: a detectron2 checkpoint holds only numpy arrays and plain "
                "containers"
            )
        if module.startswith("numpy._core") and not _has_module(module):
            module = module.replace("numpy._core", "numpy.core")  # a numpy-2 pickle read with numpy 1.x
        elif module.startswith("numpy.core") and not _has_module(module):
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def read_detectron2_pickle(file: str | os.PathLike | BinaryIO) -> dict[str, Any]:
    """The top-level dict of a detectron2 ``.pkl`` file (``{"model": {name: ndarray}, "__author__": ...}``).

    Raises:
        WeightsError: unreadable file, a forbidden object, or not the model-zoo layout.
    """
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:
                data = RestrictedUnpickler(handle, encoding="latin1").load()
        else:
            data = RestrictedUnpickler(file, encoding="latin1").load()
    except WeightsError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise WeightsError(f"cannot read the detectron2 checkpoint {file}: {type(error).__name__}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise WeightsError(
            f"{file} is not a detectron2 model-zoo checkpoint: expected a dict with a 'model' dict of arrays"
        )
    if "__author__" not in data:
        raise WeightsError(
            f"{file} has no '__author__' entry: detectron2 would treat it as a Caffe2/Detectron1 file that needs "
            "name conversion, which this loader does not do"
        )
    return data


def state_dict_from_arrays(arrays: Mapping[str, Any], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Name-cleaned float32 tensors from a ``{name: ndarray | tensor}`` mapping.

    Strips a ``module.`` prefix carried by every key, drops what detectron2 ignores
    (``pixel_mean``, ``pixel_std``, ``cell_anchors``, ``num_batches_tracked``) and refuses
    anything that is not a real-valued array.
    """
    names = list(arrays)
    if names and all(str(name).startswith("module.") for name in names):
        arrays = {str(name)[len("module."):]: value for name, value in arrays.items()}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise WeightsError(f"{source}: tensor names must be strings, got {name!r}")
        if name in IGNORED_KEYS or name.endswith(IGNORED_SUFFIXES) or name.startswith(IGNORED_PREFIXES):
            continue
        if isinstance(value, torch.Tensor):
            if value.is_complex() or value.dtype == torch.bool:
                raise WeightsError(f"{source}: {name} has dtype {value.dtype}, expected real numbers")
            tensors[name] = value.detach().to("cpu", torch.float32).contiguous()
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise WeightsError(f"{source}: {name} is {kind}, expected a real-valued numpy array")
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return tensors


def check_state_dict(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`WeightsError` unless ``tensors`` has exactly the model's keys and shapes."""
    from sganon.core.checkpoints import check_state_dict as check_against

    check_against(
        model, tensors, f"{source} (DensePose-CSE, {_describe(model)})",
        "Check the config name and overrides against the checkpoint.",
    )


def _describe(model: torch.nn.Module) -> str:
    config = getattr(model, "config", None)
    if not isinstance(config, CSEConfig):
        return type(model).__name__
    return f"ResNet-{config.depth}, head {config.head}, FPN {config.fpn_channels}"


def build_model(config: CSEConfig, tensors: Mapping[str, torch.Tensor], source: str) -> DensePoseCSE:
    """A model with ``tensors`` loaded strictly (built on the meta device first: no init cost)."""
    with torch.device("meta"):
        model = DensePoseCSE(config)
    check_state_dict(model, tensors, source)
    model.load_state_dict(dict(tensors), strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_densepose_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any],
    config: str | CSEConfig | None = None,
    overrides: list[str] | None = None,
) -> DensePoseCSE:
    """A DensePose-CSE model (eval mode, CPU) with weights from an official ``.pkl``, a state dict or our safetensors.

    Args:
        path_or_state_dict: A model-zoo ``.pkl`` (``{"model": {name: ndarray}, "__author__": ...}``),
            a ``.safetensors`` file written by :func:`save_safetensors`, or a ``{name: tensor|ndarray}``
            mapping in detectron2 names.
        config: ``"R101_FPN_DL"`` (default) or ``"R50_FPN"``, or a resolved :class:`CSEConfig`;
            for our safetensors files, ``None`` uses the configuration stored in the file.
        overrides: detectron2 config overrides (``[KEY, VALUE, ...]``) on top of ``config``.
    Raises:
        WeightsError: unreadable file, forbidden pickle content, a missing, unexpected or
            mis-shaped tensor (the message names it).
        ConfigError: an unknown config name or override.
    """
    arrays, stored_config, source = read_checkpoint(path_or_state_dict)
    resolved = resolve_config(config, overrides, stored_config)
    return build_model(resolved, state_dict_from_arrays(arrays, source), source)


def read_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any],
) -> tuple[Mapping[str, Any], CSEConfig | None, str]:
    """The arrays of a ``.pkl``/``.safetensors`` file or mapping, the configuration stored with them (if any), and a name for messages."""
    if isinstance(path_or_state_dict, Mapping):
        return path_or_state_dict, None, "the state dict"
    path = Path(path_or_state_dict)
    source = str(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        arrays, stored_config = read_safetensors(path)
        return arrays, stored_config, source
    if path.suffix in (".pkl", ".pickle"):
        data = read_detectron2_pickle(path)
        if data.get("matching_heuristics"):
            # detectron2 would match names loosely; here they must match exactly (checked on load)
            source += " (marked matching_heuristics: names must still match exactly)"
        return data["model"], None, source
    raise WeightsError(f"unknown checkpoint type {path.suffix!r} ({path}); expected .pkl or .safetensors")


def load_weights_into(model: DensePoseCSE, path_or_state_dict: str | os.PathLike | Mapping[str, Any]) -> None:
    """Load a checkpoint strictly into an existing model (its configuration must fit the checkpoint)."""
    arrays, _, source = read_checkpoint(path_or_state_dict)
    tensors = state_dict_from_arrays(arrays, source)
    check_state_dict(model, tensors, source)
    model.load_state_dict(tensors, strict=True)


def resolve_config(
    config: str | CSEConfig | None, overrides: list[str] | None, stored: CSEConfig | None = None
) -> CSEConfig:
    """The configuration to build: ``config`` (+ ``overrides``); ``None`` means the stored one, else R101_FPN_DL."""
    if isinstance(config, CSEConfig):
        if overrides:
            raise ConfigError("give overrides with a config name, not with a resolved CSEConfig")
        return config
    if config is None and stored is not None:
        if overrides:
            raise ConfigError("overrides cannot be applied to the configuration stored in a safetensors file")
        return stored
    return CSEConfig.resolve(config or "R101_FPN_DL", overrides)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CSEConfig | None]:
    """Tensors and (when present) the stored :class:`CSEConfig` of a sganon checkpoint.

    The file is in the one sganon checkpoint layout (:mod:`sganon.core.checkpoints`): a bare
    model written by :func:`save_safetensors` stores ``{"type": "DensePoseCSE", **config}``;
    a component (``CSEEmbedder``/``CSEDetector``) stores its constructor arguments.
    """
    from sganon.core.checkpoints import CONFIG_KEY, read_safetensors as read_tensors_and_metadata

    tensors, metadata = read_tensors_and_metadata(path)
    stored = None
    if CONFIG_KEY in metadata:
        try:
            config = json.loads(metadata[CONFIG_KEY])
            if config.pop("type", None) == MODEL_TYPE:
                stored = CSEConfig.from_dict(config)
        except (ValueError, TypeError, AttributeError, ConfigError) as error:
            raise WeightsError(f"{path} has an invalid stored CSE config: {error}") from error
    return tensors, stored


def save_safetensors(model: DensePoseCSE, path: str | os.PathLike) -> None:
    """Write the model's tensors (detectron2 names) and its configuration as a sganon checkpoint, atomically."""
    from sganon.core.checkpoints import save_checkpoint

    save_checkpoint(path, model.state_dict(), {"type": MODEL_TYPE, **model.config.to_dict()}, {"format": "densepose-cse"})
