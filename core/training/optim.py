"""Optimizers of the GAN (SPEC §6) and the numeric precision of training.

One Adam per network (eps 1e-8, no weight decay). With lazy regularisation (R1 every
``k`` D steps) D's learning rate and betas are corrected by ``c = k / (k + 1)``:
``lr * c`` and ``beta ** c`` (1e-3 -> 9.41176e-4, 0.99 -> 0.990585 for k = 16), as in
StyleGAN2. The interval is read from the model (:attr:`SurfaceGuidedGAN.r1_interval`),
so it is configured in one place.

Precision: ``"fp32"``; ``"fp16"`` (autocast + dynamic gradient scaler starting at 2**16,
x4 every 100 clean steps, as the paper's ``train.py``); ``"bf16"`` (autocast, no scaling
needed); ``"auto"`` = fp16 on a GPU, fp32 on the CPU. Mixed precision needs a GPU.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from ..registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS
from torch import nn

from ..errors import ConfigError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
#: The paper's gradient scaler (train.py): start at 2**16, grow x4 after 100 finite steps.
FP16_LOSS_SCALE = {"init_scale": 2.0**16, "growth_factor": 4.0, "growth_interval": 100}


def resolve_precision(precision: str, cuda: bool | None = None) -> str:
    """``"auto"`` -> ``"fp16"`` on a GPU, ``"fp32"`` on the CPU; checks the others are possible."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "fp16" if cuda else "fp32"
    if precision != "fp32" and not cuda:
        raise ConfigError(f"{precision} training needs a GPU; on the CPU use precision='fp32' (or 'auto')")
    return precision


def lazy_regularization_correction(optimizer: dict[str, Any], interval: int) -> dict[str, Any]:
    """Adam arguments with ``lr * c`` and ``betas ** c``, ``c = interval / (interval + 1)``."""
    c = interval / (interval + 1)
    corrected = dict(optimizer)
    corrected["lr"] = optimizer["lr"] * c
    if "betas" in optimizer:
        corrected["betas"] = tuple(beta**c for beta in optimizer["betas"])
    return corrected


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GANOptimWrapperConstructor:
    """Builds ``OptimWrapperDict(generator=..., discriminator=...)`` for a GAN model.

    Args:
        optim_wrapper_cfg: ``{"generator": {"optimizer": {...}}, "discriminator": {...},
            "precision": "auto"}``; each optimizer is an mmengine ``OPTIMIZERS`` config
            (``type="Adam"``, ``lr``, ``betas``, ``eps``).
        paramwise_cfg: not supported (must be ``None``).
    """

    def __init__(self, optim_wrapper_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None) -> None:
        if paramwise_cfg:
            raise ConfigError("the GAN optimizer constructor takes no paramwise_cfg")
        self.cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.precision = self.cfg.pop("precision", "auto")
        missing = {"generator", "discriminator"} - set(self.cfg)
        if missing:
            raise ConfigError(f"optim_wrapper needs settings for {', '.join(sorted(missing))}")

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        precision = resolve_precision(self.precision)
        interval = getattr(model, "r1_interval", None)
        wrappers = {}
        for name in ("generator", "discriminator"):
            optimizer_cfg = dict(self.cfg[name]["optimizer"])
            if name == "discriminator" and interval:
                optimizer_cfg = lazy_regularization_correction(optimizer_cfg, interval)
            network = getattr(model, name)
            optimizer = OPTIMIZERS.build({**optimizer_cfg, "params": network.parameters()})
            wrappers[name] = self._wrap(optimizer, precision)
        return OptimWrapperDict(**wrappers)

    @staticmethod
    def _wrap(optimizer: torch.optim.Optimizer, precision: str) -> OptimWrapper:
        if precision == "fp32":
            return OptimWrapper(optimizer=optimizer)
        if precision == "fp16":
            return AmpOptimWrapper(optimizer=optimizer, dtype="float16", loss_scale=dict(FP16_LOSS_SCALE))
        return AmpOptimWrapper(optimizer=optimizer, dtype="bfloat16", loss_scale=1.0)
