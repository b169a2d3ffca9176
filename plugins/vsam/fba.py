"""Reading the official ``full_body_anonymization`` (fba) checkpoints and configs.

An official checkpoint is a ``torch.save``'d dict with ``"EMA_generator"`` and ``"D"``
state dicts (and, in training checkpoints, ``"G"``/``"generator"``, optimizer states and
counters). It is read with ``torch.load(weights_only=True)``, which rebuilds tensors and
plain containers only. Should the file also hold pickled objects of other types (for
example numpy scalars in trainer counters), they are replaced by inert placeholders that
record the class name: no code from the file is ever run. Only the state dicts are used.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sganon.core.errors import ConfigError, WeightsError

from .discriminator import FPNSurfaceDiscriminator
from .generator import VSAMGenerator

#: Official generator config of config E (SPEC §1), as in the reference vectors' ``/config``.
CONFIG_E: dict[str, Any] = {
    "imsize": [288, 160],
    "n_vertices": 27554,
    "generator": {
        "type": "UnetGenerator",
        "scale_grad": True,
        "min_fmap_resolution": 32,
        "cnum": 64,
        "max_cnum_mul": 16,
        "n_middle_blocks": 2,
        "z_channels": 512,
        "mask_output": True,
        "input_semantic": False,
        "style_cfg": {
            "type": "CSEStyleMapper",
            "encoder_modulator": "CSELinear",
            "decoder_modulator": "CSELinear",
            "middle_modulator": "CSELinear",
            "w_mapper": {"input_z": True},
        },
        "embed_z": False,
        "class_specific_z": False,
        "conv_clamp": 256,
        "input_cse": True,
        "latent_space": "w_cse",
        "use_cse": True,
        "modulate_encoder": False,
        "norm_type": "instance_norm_std",
        "norm_unet": False,
        "unet_skip": "residual",
    },
    "discriminator": {
        "type": "FPNDiscriminator",
        "min_fmap_resolution": 8,
        "max_cnum_mul": 8,
        "cnum": 64,
        "input_condition": True,
        "semantic_input_mode": None,
        "conv_clamp": 256,
        "input_cse": False,
        "output_fpn": True,
    },
}

#: Official mapper argument -> ours (only what our mapper implements).
MAPPER_KEYS = {
    "hidden_dim": "hidden_dim",
    "out_dim": "out_dim",
    "n_layer_combined": "n_layer_combined",
    "n_layer_z": "n_layer_z",
    "n_layer_e": "n_layer_e",
    "normalize_z": "normalize_z",
    "residual": "residual",
    "ema_beta": "w_avg_beta",
}


def merged_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Config E with the given official-style overrides merged in (nested dicts merge)."""

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, Mapping) and isinstance(override, Mapping):
            out = dict(base)
            for key, value in override.items():
                out[key] = merge(base.get(key), value) if key in base else value
            return out
        return override

    return merge(CONFIG_E, dict(config or {}))


def require(section: str, cfg: Mapping[str, Any], key: str, allowed: tuple[Any, ...]) -> None:
    if key in cfg and cfg[key] not in allowed:
        raise ConfigError(
            f"official {section} setting {key}={cfg[key]!r} is not supported (supported: {', '.join(map(repr, allowed))})"
        )


def generator_args(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our :class:`VSAMGenerator` arguments for an official config (``/config`` of a vector)."""
    full = merged_config(config)
    cfg = full["generator"]
    for key, allowed in {
        "type": ("UnetGenerator",),
        "mask_output": (True,),
        "input_semantic": (False, None),
        "class_specific_z": (False,),
        "use_cse": (True,),
        "modulate_encoder": (False,),
        "norm_type": ("instance_norm_std",),
        "norm_unet": (False,),
        "unet_skip": ("residual",),
    }.items():
        require("generator", cfg, key, allowed)
    style_cfg = cfg.get("style_cfg") or {"type": "NoneStyle"}
    mapper: dict[str, Any] = {}
    if style_cfg.get("type") == "NoneStyle":
        style = "none"
    elif style_cfg.get("type") == "CSEStyleMapper":
        w_mapper = dict(style_cfg.get("w_mapper") or {})
        style = "vsam" if w_mapper.pop("input_z", False) else "sam"
        for key in ("lr_multiplier", "lr_z"):
            if w_mapper.pop(key, 1) != 1:
                raise ConfigError(f"official w_mapper.{key} != 1 is not supported")
        if w_mapper.pop("activation", "lrelu") != "lrelu":
            raise ConfigError("official w_mapper.activation other than 'lrelu' is not supported")
        w_mapper.pop("has_trained_ema", None)
        w_mapper.pop("n_vertices", None)
        unknown = sorted(set(w_mapper) - set(MAPPER_KEYS))
        if unknown:
            raise ConfigError(f"official w_mapper settings not supported: {', '.join(unknown)}")
        mapper = {MAPPER_KEYS[key]: value for key, value in w_mapper.items()}
    else:
        raise ConfigError(f"official style_cfg.type {style_cfg.get('type')!r} is not supported (CSEStyleMapper, NoneStyle)")
    return {
        "resolution": [int(x) for x in full["imsize"]],
        "cnum": int(cfg["cnum"]),
        "max_cnum_mul": int(cfg["max_cnum_mul"]),
        "min_fmap_resolution": int(cfg["min_fmap_resolution"]),
        "n_middle_blocks": int(cfg["n_middle_blocks"]),
        "z_channels": int(cfg["z_channels"]),
        "conv_clamp": cfg["conv_clamp"],
        "surface_channels": int(full.get("cse_nc", 16)),
        "input_surface": bool(cfg["input_cse"]),
        "style": style,
        "z_at_bottleneck": bool(cfg["embed_z"]),
        "n_vertices": int(full["n_vertices"]),
        "mapper": mapper,
    }


def discriminator_args(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our :class:`FPNSurfaceDiscriminator` arguments for an official config."""
    full = merged_config(config)
    cfg = full["discriminator"]
    for key, allowed in {
        "type": ("FPNDiscriminator",),
        "input_condition": (True,),
        "semantic_input_mode": (None,),
        "input_cse": (False,),
    }.items():
        require("discriminator", cfg, key, allowed)
    return {
        "resolution": [int(x) for x in full["imsize"]],
        "cnum": int(cfg["cnum"]),
        "max_cnum_mul": int(cfg["max_cnum_mul"]),
        "min_fmap_resolution": int(cfg["min_fmap_resolution"]),
        "conv_clamp": cfg["conv_clamp"],
        "output_fpn": bool(cfg["output_fpn"]),
        "surface_channels": int(full.get("cse_nc", 16)),
    }


class OpaqueObject:
    """Stands in for a pickled object of a class we do not load; keeps only its class name."""

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualified_name}>"


def placeholder_for(name: str) -> type:
    """A fresh :class:`OpaqueObject` subclass standing in for the global ``name``."""
    return type("Opaque", (OpaqueObject,), {"qualified_name": name})


def load_tensor_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``; unknown pickled classes become :class:`OpaqueObject`.

    Raises:
        WeightsError: the file cannot be read as a torch checkpoint.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # maybe a class outside the weights-only allowlist: retry with placeholders
    except Exception as error:
        raise WeightsError(f"cannot read {path} as a torch checkpoint: {error}") from error
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        with torch.serialization.safe_globals([(placeholder_for(name), name) for name in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"cannot read {path} as a torch checkpoint with the tensor-only loader: {error}") from error


def tensor_state_dict(value: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping):
        raise WeightsError(f"the checkpoint's {what} is a {type(value).__name__}, not a state dict")
    bad = [key for key, tensor in value.items() if not isinstance(tensor, torch.Tensor)]
    if bad:
        raise WeightsError(f"the checkpoint's {what} has non-tensor entries: {', '.join(map(str, bad[:5]))}")
    return {str(key): tensor for key, tensor in value.items()}


def read_fba_checkpoint(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """``{"EMA_generator": sd, "D": sd[, "generator": sd]}`` from an official checkpoint."""
    checkpoint = path_or_dict if isinstance(path_or_dict, Mapping) else load_tensor_file(Path(path_or_dict))
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"an official checkpoint is a dict, this file holds a {type(checkpoint).__name__}")
    missing = [key for key in ("EMA_generator", "D") if key not in checkpoint]
    if missing:
        raise WeightsError(
            f"not an official full_body_anonymization checkpoint: no {', '.join(missing)} "
            f"(found keys: {', '.join(map(str, list(checkpoint)[:10]))})"
        )
    out = {key: tensor_state_dict(checkpoint[key], key) for key in ("EMA_generator", "D")}
    for key in ("generator", "G"):
        if key in checkpoint:
            out["generator"] = tensor_state_dict(checkpoint[key], key)
            break
    return out


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with a :class:`WeightsError` naming what does not fit."""
    from sganon.core.checkpoints import load_state_dict_strictly

    load_state_dict_strictly(module, state_dict, f"the {what} weights", "Is the config right?")


def load_fba_checkpoint(
    path_or_dict: str | Path | Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
) -> tuple[VSAMGenerator, FPNSurfaceDiscriminator]:
    """Build our G and D for an official checkpoint and load every tensor strictly.

    Args:
        path_or_dict: the ``.ckpt``/``.torch`` file, or its already loaded dict.
        config: official-style overrides of config E (``{"generator": {...},
            "discriminator": {...}, "imsize": [H, W]}``, like a vector's ``/config``).

    Returns:
        ``(generator, discriminator)``; the generator holds the EMA weights, in eval mode.
    """
    state = read_fba_checkpoint(path_or_dict)
    with torch.device("meta"):  # no point initialising weights that are overwritten next
        generator = VSAMGenerator(**generator_args(config))
        discriminator = FPNSurfaceDiscriminator(**discriminator_args(config))
    generator = generator.to_empty(device="cpu")
    discriminator = discriminator.to_empty(device="cpu")
    load_strict(generator, state["EMA_generator"], "EMA generator")
    load_strict(discriminator, state["D"], "discriminator")
    return generator.eval(), discriminator
