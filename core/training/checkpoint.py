"""Safe loading of training checkpoints and export of the EMA generator.

mmengine 0.10.7 reads checkpoints with a bare ``torch.load``, which on this torch means
``weights_only=True``, and its checkpoints hold objects that such a load refuses (the
message hub's ``HistoryBuffer`` with numpy arrays and bound methods), so resuming fails.
sganon keeps ``weights_only=True`` and instead writes checkpoints that need nothing else:
:class:`~sganon.core.training.hooks.SafeCheckpointHook` stores the message hub as plain
lists (:func:`plain_message_hub`), and importing this module makes mmengine read local
files with :func:`load_training_checkpoint`, which turns them back. Nobody has to set
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.

The EMA generator is exported as a safetensors file (state dict; the resolved config as
JSON in the metadata and in a ``.json`` file beside it) by :func:`export_generator`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..atomic import atomic_output
from ..errors import WeightsError


def to_plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays (also inside dicts, lists, tuples) as Python values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    return value


def plain_message_hub(state: dict[str, Any]) -> dict[str, Any]:
    """mmengine's message-hub state as plain values: buffers as lists, numpy values as Python's.

    A ``HistoryBuffer`` pickles numpy arrays and bound methods (through ``getattr``), and
    runtime info holds numpy scalars (the ETA); a ``weights_only`` load refuses both, while
    lists and numbers load without any allow-list.
    """
    scalars = {}
    for key, buffer in state.get("log_scalars", {}).items():
        values, counts = buffer.data
        scalars[key] = {"values": values.tolist(), "counts": counts.tolist(), "max_length": buffer.max_length}
    return {**state, "log_scalars": scalars, "runtime_info": to_plain(dict(state.get("runtime_info", {})))}


def restore_message_hub(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`plain_message_hub`."""
    scalars = {}
    for key, plain in state.get("log_scalars", {}).items():
        if isinstance(plain, HistoryBuffer):
            scalars[key] = plain
        else:
            scalars[key] = HistoryBuffer(plain["values"], plain["counts"], plain["max_length"])
    return {**state, "log_scalars": scalars}


def load_training_checkpoint(filename: str | os.PathLike[str], map_location: Any = None) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a checkpoint written by ``sganon train``.

    Such checkpoints hold only tensors and plain Python values (see
    :func:`plain_message_hub`), so nothing needs allowing and no code runs while reading.

    Raises:
        WeightsError: the file is missing, or holds objects of other types (e.g. a
            checkpoint of another mmengine project: convert it rather than trust it).
    """
    path = Path(filename).expanduser()
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # the unpickler names what it refused
        raise WeightsError(
            f"cannot read checkpoint {path} safely (only tensors and plain values are loaded): {error}"
        ) from error
    if isinstance(checkpoint, dict) and "message_hub" in checkpoint:
        checkpoint["message_hub"] = restore_message_hub(checkpoint["message_hub"])
    return checkpoint


def _mmengine_local_loader(filename: str, map_location: Any) -> dict[str, Any]:
    return load_training_checkpoint(filename, map_location)


CheckpointLoader.register_scheme(prefixes="", loader=_mmengine_local_loader, force=True)


def _atomic_write(path: Path, write: Any) -> None:
    with atomic_output(path) as temporary:
        write(str(temporary))


def export_generator(state_dict: dict[str, torch.Tensor], config: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a generator state dict as safetensors with ``config`` (JSON) in its metadata and beside it.

    ``config`` must be JSON-serializable; it is written to ``<path without suffix>.json``
    too. Both writes are atomic. Returns the safetensors path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state_dict.items()}
    text = json.dumps(config, sort_keys=True)
    # One metadata entry: safetensors writes its metadata map in no fixed order, and the
    # same weights must give the same bytes.
    metadata = {"sganon_config": text}
    _atomic_write(path, lambda temp: save_file(tensors, temp, metadata=metadata))
    pretty = json.dumps(config, indent=2, sort_keys=True) + "\n"
    _atomic_write(path.with_suffix(".json"), lambda temp: Path(temp).write_text(pretty))
    return path
