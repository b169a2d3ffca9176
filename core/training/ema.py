"""Exponential moving average of the generator (SPEC §6).

After every G step ``p_ema <- p + beta * (p_ema - p)`` with ``beta = 0.5 ** (B / half_life)``
for a global batch of ``B`` images and a half-life in images (10 000 in the paper:
``beta = 0.997784`` at B = 32). Buffers (the V-SAM mapper's ``w_avg``, the vertex table,
filters) are copied, not averaged.

>>> round(ema_beta(32, 10_000), 6)
0.997784
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def ema_beta(images_per_step: int, half_life_images: float) -> float:
    """Decay per step so that an image's weight halves after ``half_life_images`` images."""
    if images_per_step <= 0 or half_life_images <= 0:
        raise ConfigError(
            f"EMA needs a positive batch and half-life, got {images_per_step} and {half_life_images}"
        )
    return 0.5 ** (images_per_step / half_life_images)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """Move ``ema``'s parameters toward ``model``'s and copy its buffers (same architecture)."""
    for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
        averaged.copy_(current.detach().lerp(averaged, beta))
    for averaged, current in zip(ema.buffers(), model.buffers(), strict=True):
        averaged.copy_(current)
