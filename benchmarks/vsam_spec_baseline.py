"""A plain implementation of the V-SAM generator forward, written from SPEC.md (§2, §3).

This is the benchmark's baseline: the straightforward way to compute what the spec
describes, with the official code's building blocks (FIR resampling as a depthwise
convolution, bias/activation/gain/clamp as separate steps, the per-vertex mapper on all
B*K rows, the 515->512 style projection on every pixel). It imports nothing from sganon;
the weights come from a state dict with the official key names.

    G = SpecGenerator(state_dict)          # config E layout (widths read from the weights)
    img, img_raw = G(condition, mask, border, embedding, vertices, z, truncation)

Shapes: condition [B, 3, H, W], mask/border [B, 1, H, W], embedding [B, 16, H, W],
vertices [B, H, W] int64, z [B, 512]; truncation None or t in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)
SQRT_HALF = math.sqrt(0.5)
CLAMP = 256.0


def fir_kernel(channels: int, gain: float, like: torch.Tensor) -> torch.Tensor:
    """Depthwise [C, 1, 4, 4] kernel of ``gain * outer(a, a) / 64``, a = [1, 3, 3, 1] (symmetric)."""
    a = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=like.dtype, device=like.device)
    f = torch.outer(a, a) / 64.0 * gain
    return f.expand(channels, 1, 4, 4)


def fir(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Valid depthwise correlation with the 4x4 FIR filter."""
    return F.conv2d(x, fir_kernel(x.shape[1], gain, x), groups=x.shape[1])


def bias_act(x, bias, activation, gain, clamp):
    """SPEC §2 steps 4-7: + bias, activation, * act_gain * gain, clamp to +-clamp * gain."""
    if bias is not None:
        x = x + bias.view(1, -1, 1, 1)
    if activation == "lrelu":
        x = F.leaky_relu(x, 0.2) * SQRT2
    x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp * gain, clamp * gain)
    return x


def conv_layer(x, weight, bias=None, up=1, down=1, norm=False, activation="lrelu", gain=1.0, clamp=None, gamma=None):
    """SPEC §2 "Conv2d layer" with §2.1 resampling."""
    if gamma is not None:
        x = x * gamma
    k = weight.shape[-1]
    w = weight / math.sqrt(weight.shape[1] * k * k)
    if up == 1 and down == 1:
        x = F.conv2d(x, w, padding=k // 2)
    elif down == 2 and k == 3:
        x = F.conv2d(fir(F.pad(x, (2, 2, 2, 2))), w, stride=2)
    elif down == 2 and k == 1:
        x = F.conv2d(fir(F.pad(x, (1, 1, 1, 1)))[:, :, ::2, ::2], w)
    elif up == 2 and k == 3:
        x = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
        x = fir(F.pad(x, (1, 1, 1, 1)), gain=4.0)
    else:  # up == 2, 1x1
        x = F.conv2d(x, w)
        n, c, h, wd = x.shape
        spread = torch.zeros(n, c, 2 * h, 2 * wd, dtype=x.dtype, device=x.device)
        spread[:, :, ::2, ::2] = x
        x = fir(F.pad(spread, (2, 1, 2, 1)), gain=4.0)
    if norm:
        x = x / torch.sqrt(x.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-8)
    return bias_act(x, bias, activation, gain, clamp)


def fc(x, weight, bias, activation="lrelu"):
    x = x @ (weight / math.sqrt(weight.shape[1])).t() + bias
    return F.leaky_relu(x, 0.2) * SQRT2 if activation == "lrelu" else x


class SpecGenerator:
    """Config-E U-Net generator with the CSE style mapper (SPEC §3), plain tensor code.

    Args:
        state_dict: the generator's state dict (official key names, e.g. ``EMA_generator``).
    """

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.p = {k: v for k, v in state_dict.items()}
        self.levels = sum(1 for k in self.p if k.startswith("encoder.") and k.endswith("conv0.weight"))
        self.n_middle = sum(1 for k in self.p if k.startswith("middle_blocks.") and k.endswith("conv0.weight"))

    def block(self, name, x, up=1, down=1, gammas=(None, None)):
        """SPEC §2.2 residual block."""
        p = self.p
        skip = conv_layer(x, p[f"{name}.skip.weight"], up=up, down=down, gain=SQRT_HALF)
        h = conv_layer(x, p[f"{name}.conv0.weight"], p[f"{name}.conv0.bias"], down=down, norm=True, clamp=CLAMP,
                       gamma=gammas[0])
        h = conv_layer(h, p[f"{name}.conv1.weight"], p[f"{name}.conv1.bias"], up=up, norm=True, clamp=CLAMP,
                       gain=SQRT_HALF, gamma=gammas[1])
        return skip + h

    def mapper(self, z):
        """SPEC §3.4 steps 1-4: w for every (sample, vertex), [B*K, 512], row b*K + v."""
        p = {k[len("style_net.E_map."):]: v for k, v in self.p.items() if k.startswith("style_net.E_map.")}
        e = p["E"]
        k = e.shape[0]
        e = fc(fc(e, p["fromE0.weight"], p["fromE0.bias"]), p["fromE1.weight"], p["fromE1.bias"])
        z = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for i in range(3):
            z = fc(z, p[f"fromZ{i}.weight"], p[f"fromZ{i}.bias"])
        batch = z.shape[0]
        x = torch.cat((e.repeat(batch, 1), z.repeat_interleave(k, dim=0)), dim=1)
        r = x
        for i in range(6):
            x = fc(x, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
            if i % 2 == 1:
                x = (x + fc(r, p[f"residual{i}.weight"], p[f"residual{i}.bias"], "linear")) / SQRT2
                r = x
        return x

    def styles(self, mask, border, vertices, z, truncation):
        """SPEC §3.4 steps 5-8 (with §3.5 truncation): the eight gammas."""
        p = self.p
        batch, k = z.shape[0], p["style_net.E_map.E"].shape[0]
        w = self.mapper(z)
        if truncation is not None:
            w_avg = p["style_net.E_map.w_avg"].repeat(batch, 1)
            w = w_avg + truncation * (w - w_avg)
        rows = vertices + torch.arange(batch, device=vertices.device).view(-1, 1, 1) * k
        per_pixel = F.embedding(rows, w).permute(0, 3, 1, 2)
        surface = 1 - mask - border
        s = conv_layer(torch.cat((per_pixel * surface, mask, border, surface), dim=1), p["style_net.global_mask.weight"])
        pyramid = [s]
        while pyramid[-1].shape[2] > 36:
            h, wd = pyramid[-1].shape[2:]
            pyramid.append(F.interpolate(pyramid[-1], size=(h // 2, wd // 2), mode="bilinear", align_corners=True))
        gammas = []
        for j in range(2 * self.levels):
            level = self.levels - 1 - j // 2  # gamma j belongs to decoder block j // 2
            gammas.append(conv_layer(pyramid[level], p[f"style_net.dec_layers.{j}.mlp.weight"],
                                     p[f"style_net.dec_layers.{j}.mlp.bias"], activation="linear"))
        return gammas

    @torch.no_grad()
    def __call__(self, condition, mask, border, embedding, vertices, z, truncation=None):
        p = self.p
        gammas = self.styles(mask, border, vertices.reshape(-1, *vertices.shape[-2:]).long(), z, truncation)
        x = conv_layer(torch.cat((condition, mask, embedding), dim=1), p["from_rgb.weight"], p["from_rgb.bias"])
        skips = []
        for i in range(self.levels):
            x = self.block(f"encoder.{i}", x, down=1 if i == 0 else 2)
            skips.append(x)
        for i in range(self.n_middle):
            x = self.block(f"middle_blocks.{i}", x)
        for i in range(self.levels):
            if i > 0:
                x = x + conv_layer(skips[-1 - i], p[f"unet_block{i}.weight"], p[f"unet_block{i}.bias"], clamp=CLAMP,
                                   gain=SQRT_HALF)
            x = self.block(f"decoder.{i}", x, up=2 if i < self.levels - 1 else 1, gammas=(gammas[2 * i], gammas[2 * i + 1]))
        raw = conv_layer(x, p["to_rgb.weight"], p["to_rgb.bias"], activation="linear", clamp=CLAMP)
        img = condition * mask + (1 - mask) * raw
        return img, raw
