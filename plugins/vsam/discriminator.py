"""Residual discriminator with an FPN head predicting the surface map (SPEC §4).

Module names follow the official ``FPNDiscriminator`` state dict.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from sganon.core.errors import ConfigError, InputError
from sganon.core.capabilities import DiscriminatorCapabilities, as_resolution
from sganon.core.interfaces import Discriminator
from sganon.core.registry import MODELS

from .generator import count_levels, level_sizes
from .layers import RESIDUAL_GAIN, Conv2dLayer, FullyConnected, ResidualBlock, fir_filter

#: Width of the FPN head in the paper, independent of ``cnum``.
FPN_CHANNELS = 128


def minibatch_std(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one channel: the std over groups of ``min(group_size, N)`` samples, averaged over C, H, W.

    Sample n belongs to group ``n mod (N / G)``. ``N`` must be divisible by ``G``.
    """
    n, c, h, w = x.shape
    group = min(group_size, n)
    if n % group:
        raise InputError(f"the discriminator needs a batch divisible by {group}, got {n}")
    y = x.reshape(group, -1, c, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [N / G]
    y = y.reshape(-1, 1, 1, 1).repeat(group, 1, h, w)
    return torch.cat((x, y), dim=1)


class InputStem(nn.Module):
    """Two plain 3x3 lrelu convs (no skip), D's ``from_rgb``.

    Args:
        in_channels: image + condition + mask channels (7).
        channels: output width.
        conv_clamp: clamp bound.
    """

    def __init__(self, in_channels: int, channels: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.register_buffer("resample_filter", fir_filter())
        self.conv0 = Conv2dLayer(in_channels, channels, 3, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(channels, channels, 3, conv_clamp=conv_clamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class ScoreHead(nn.Module):
    """Minibatch std, 3x3 conv, flatten, FC lrelu, FC linear -> ``[N, 1]``.

    Args:
        channels: input width.
        size: ``(h, w)`` of the input.
        conv_clamp: clamp bound of the conv.
    """

    def __init__(self, channels: int, size: tuple[int, int], conv_clamp: float | None) -> None:
        super().__init__()
        self.conv = Conv2dLayer(channels + 1, channels, 3, conv_clamp=conv_clamp)
        self.fc = FullyConnected(channels * size[0] * size[1], channels, activation="lrelu")
        self.out = FullyConnected(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(minibatch_std(x))
        return self.out(self.fc(x.flatten(1)))


@MODELS.register_module()
class FPNSurfaceDiscriminator(Discriminator):
    """Residual D scoring ``[img, condition, mask]`` and predicting the surface map.

    ``forward(img, condition, mask)`` returns ``{"score": [N, 1], "surface": [N, C, H, W]}``
    (``"surface"`` only with ``output_fpn``).

    Args:
        resolution: ``[H, W]`` of the crops.
        cnum: base width; level i has ``cnum * min(2**i, max_cnum_mul)`` channels.
        max_cnum_mul: cap of the width multiplier.
        min_fmap_resolution: the long side is halved while it stays >= this.
        conv_clamp: clamp bound of the convs.
        output_fpn: build the FPN head predicting the surface map (configs B-E).
        surface_channels: channels of the predicted surface map (16 for CSE).
        fpn_channels: width of the FPN head (128 in the paper, whatever ``cnum``).
    """

    name: ClassVar[str] = "vsam-fpn"
    description: ClassVar[str] = "residual discriminator with an FPN surface-map head (paper config E)"

    def __init__(
        self,
        resolution: tuple[int, int] | list[int] = (288, 160),
        cnum: int = 64,
        max_cnum_mul: int = 8,
        min_fmap_resolution: int = 8,
        conv_clamp: float | None = 256,
        output_fpn: bool = True,
        surface_channels: int = 16,
        fpn_channels: int = FPN_CHANNELS,
    ) -> None:
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.output_fpn = output_fpn
        levels = count_levels(max(self.resolution), min_fmap_resolution)
        sizes = level_sizes(self.resolution, levels)

        def width(level: int) -> int:
            return cnum * min(2**level, max_cnum_mul)

        # Modules are created in the official order, so state dicts list keys alike.
        self.register_buffer("resample_filter", fir_filter())
        self.layers = nn.ModuleList(
            ResidualBlock(width(level), width(level + 1), down=1 if level == 0 else 2, conv_clamp=conv_clamp)
            for level in range(levels)
        )
        self.from_rgb = InputStem(3 + 3 + 1, cnum, conv_clamp)
        self.levels = levels
        if output_fpn:
            # fpn_out.i reads from_rgb (i=0) or layers.(i-1); fpn_up.i brings level i+1 up to i.
            if levels < 3:
                raise ConfigError("the FPN head needs at least 3 discriminator levels")
            top = levels - 2  # the FPN starts from layers.(levels-2), i.e. above that of the score
            out_channels = [cnum] + [width(level + 1) for level in range(top)]
            self.fpn_out = nn.ModuleList(
                Conv2dLayer(ch, fpn_channels, 1, activation="linear", conv_clamp=conv_clamp) for ch in out_channels
            )
            up_channels = [fpn_channels] * top + [width(top + 1)]
            self.fpn_up = nn.ModuleList(
                Conv2dLayer(ch, fpn_channels, 1, activation="linear", up=1 if i == 0 else 2, conv_clamp=conv_clamp)
                for i, ch in enumerate(up_channels)
            )
            self.output_seg_layer = Conv2dLayer(fpn_channels, surface_channels, 1, activation="linear")
        self.output_layer = ScoreHead(width(levels), sizes[-1], conv_clamp)

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        """``"paper"``: config E at 288x160; ``"tiny"``: cnum 8, FPN width 32 at 144x80 (matches the tiny G)."""
        if profile == "paper":
            return {"resolution": [288, 160]}
        if profile == "tiny":
            return {"resolution": [144, 80], "cnum": 8, "fpn_channels": 32}
        raise ConfigError(f"unknown profile {profile!r}; expected 'paper' or 'tiny'")

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> DiscriminatorCapabilities:
        return DiscriminatorCapabilities(
            resolution=as_resolution(args.get("resolution", (288, 160))),
            surface_channels=int(args.get("surface_channels", 16)) if args.get("output_fpn", True) else 0,
        )

    def forward(self, img: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score ``img`` ``[N, 3, H, W]`` given ``condition`` ``[N, 3, H, W]`` and ``mask`` ``[N, 1, H, W]``.

        Returns:
            ``{"score": [N, 1], "surface": [N, surface_channels, H, W]}`` (no ``"surface"``
            without the FPN head).
        """
        if img.shape[2:] != self.resolution or condition.shape != img.shape or mask.shape[1] != 1:
            raise InputError(
                f"discriminator expects img/condition [N, 3, {self.resolution[0]}, {self.resolution[1]}] and mask "
                f"[N, 1, ...], got {list(img.shape)}, {list(condition.shape)}, {list(mask.shape)}"
            )
        x = self.from_rgb(torch.cat((img, condition, mask), dim=1))
        features = [x]
        for block in self.layers:
            x = block(x)
            features.append(x)
        out = {"score": self.output_layer(x)}
        if self.output_fpn:
            top = len(self.fpn_up) - 1
            surface = self.fpn_up[top](features[top + 1], gain=RESIDUAL_GAIN)
            for i in range(top, -1, -1):
                lateral = self.fpn_out[i](features[i], gain=1.0 if i == 0 else RESIDUAL_GAIN)
                surface = surface + lateral
                if i > 0:
                    surface = self.fpn_up[i - 1](surface, gain=RESIDUAL_GAIN)
            out["surface"] = self.output_seg_layer(surface)
        return out
