"""Primitive layers shared by the V-SAM generator and discriminator (SPEC §2).

All weights are stored un-scaled and multiplied by a constant at run time ("equalized
learning rate"): a fully-connected weight by ``1/sqrt(in)``, a conv weight by
``1/sqrt(in * k * k)``. Resampling uses the 4x4 FIR filter ``outer(a, a) / 64`` with
``a = [1, 3, 3, 1]`` exactly as StyleGAN2's ``conv2d_resample``; the filter is kept as a
(persistent) buffer in every layer and block so official state dicts load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sganon.core.errors import ConfigError

#: Activation gains: lrelu outputs are multiplied by sqrt(2), linear ones by 1.
ACTIVATION_GAIN = {"lrelu": math.sqrt(2.0), "linear": 1.0}
LRELU_SLOPE = 0.2
#: Gain the residual branches of a block are called with (their sum keeps unit variance).
RESIDUAL_GAIN = math.sqrt(0.5)


#: One axis of the resampling filter: ``[1, 3, 3, 1] / 8``.
FIR_TAPS = (0.125, 0.375, 0.375, 0.125)


def fir_filter() -> torch.Tensor:
    """The 4x4 low-pass filter ``outer([1,3,3,1], [1,3,3,1]) / 64`` (sums to 1).

    Every layer and block keeps it as the buffer ``resample_filter``, as the official
    state dicts do; it is a constant, so :func:`fir` uses :data:`FIR_TAPS` directly.
    """
    a = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(a, a) / 64.0


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE)
    if activation == "linear":
        return x
    raise ConfigError(f"unknown activation {activation!r}; expected 'lrelu' or 'linear'")


def fir(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Depthwise valid correlation of ``x`` ``[N, C, H, W]`` with ``gain * outer(a, a) / 64``.

    The filter is separable, so it runs as two 1-D passes of ``sqrt(gain) * a / 8`` (rows,
    then columns): the same result as the 4x4 correlation up to rounding, and much
    faster on CPUs than a grouped convolution.
    """
    if not torch.is_grad_enabled():
        return fir_inference(x, gain)
    taps = [tap * math.sqrt(gain) for tap in FIR_TAPS]
    for dim in (3, 2):
        size = x.shape[dim] - 3
        y = x.narrow(dim, 0, size) * taps[0]
        for i in range(1, 4):
            y = y.add_(x.narrow(dim, i, size), alpha=taps[i])
        x = y
    return x


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` ``[N, C, H, W]`` is laid out channels-last (and not also plain NCHW)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def fir_inference(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """:func:`fir` as one depthwise convolution (in channels-last layout: two separable 1-D ones).

    The CPU kernels (oneDNN) run these in one pass over the data each, several times
    faster than the shifted adds of :func:`fir`, but the latter's autograd is cheaper.
    """
    channels = x.shape[1]
    taps = torch.tensor(FIR_TAPS, dtype=x.dtype, device=x.device) * math.sqrt(gain)
    if is_channels_last(x):
        x = F.conv2d(x, taps.view(1, 1, 1, 4).expand(channels, 1, 1, 4), groups=channels)
        return F.conv2d(x, taps.view(1, 1, 4, 1).expand(channels, 1, 4, 1), groups=channels)
    return F.conv2d(x, torch.outer(taps, taps).expand(channels, 1, 4, 4), groups=channels)


def conv_resample(
    x: torch.Tensor,
    weight: torch.Tensor,
    up: int,
    down: int,
    bias: torch.Tensor | None = None,
    prefiltered: bool = False,
) -> torch.Tensor:
    """Convolution with optional 2x up- or down-sampling (SPEC §2.1).

    Args:
        x: ``[N, in, H, W]``.
        weight: ``[out, in, k, k]``, already scaled, k = 1 or 3.
        up: 1 or 2.
        down: 1 or 2 (not both 2).
        bias: ``[out]`` added by the convolution; only where no resampling follows it
            (``up == 1``).
        prefiltered: with ``down == 2``, ``x`` is already ``fir(pad(x, 2))`` (``[N, in, H+1, W+1]``),
            which the 3x3 and the 1x1 downsampling share: ``fir(pad(x, 1))[::2, ::2]`` is
            its ``[1::2, 1::2]``.

    Returns:
        ``[N, out, H*up/down, W*up/down]``.
    """
    k = weight.shape[-1]
    if bias is not None and up != 1:
        raise ConfigError("conv_resample adds the bias only without upsampling")
    if up == 1 and down == 1:
        return F.conv2d(x, weight, bias, padding=k // 2)
    if down == 2:
        if k == 1:  # low-pass, keep every second sample, then the 1x1 conv
            x = x[:, :, 1::2, 1::2] if prefiltered else fir(F.pad(x, (1, 1, 1, 1)))[:, :, ::2, ::2]
            return F.conv2d(x, weight, bias)
        x = x if prefiltered else fir(F.pad(x, (2, 2, 2, 2)))
        return F.conv2d(x, weight, bias, stride=2)
    # up == 2
    if k == 1:  # 1x1 conv at low resolution, then zero insertion and FIR
        x = F.conv2d(x, weight)
        if not torch.is_grad_enabled():  # both as one depthwise transposed conv (kernel 2 * taps per axis)
            taps = torch.tensor(FIR_TAPS, dtype=x.dtype, device=x.device) * 2.0
            kernel = torch.outer(taps, taps).expand(x.shape[1], 1, 4, 4)
            return F.conv_transpose2d(x, kernel, stride=2, padding=1, groups=x.shape[1])
        n, c, h, w = x.shape
        spread = x.new_zeros(n, c, 2 * h, 2 * w)
        spread[:, :, ::2, ::2] = x
        return fir(F.pad(spread, (2, 1, 2, 1)), gain=4.0)
    if not torch.is_grad_enabled():  # oneDNN's transposed conv is 1.2-3x faster in channels-last layout
        layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        x = F.conv_transpose2d(x.contiguous(memory_format=torch.channels_last), weight.transpose(0, 1), stride=2)
        return fir(F.pad(x.contiguous(memory_format=layout), (1, 1, 1, 1)), gain=4.0)  # the caller's layout
    x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    return fir(F.pad(x, (1, 1, 1, 1)), gain=4.0)


def instance_norm_std(x: torch.Tensor) -> torch.Tensor:
    """Scale by the inverse per-sample, per-channel spatial std (biased, no mean subtraction)."""
    return x * (x.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-8).rsqrt()


def instance_norm_std_(x: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """In-place :func:`instance_norm_std` times ``scale``, returned as ``(x_centered * s, shift)``.

    ``x * s`` with ``s = scale / sqrt(var + 1e-8)`` equals ``(x - mean) * s + mean * s``;
    the caller adds ``shift = mean * s`` ``[N, C, 1, 1]`` together with its bias. Centering
    in place and summing squares is several times faster on CPUs than ``Tensor.var``
    (a Welford reduction) and as accurate. In channels-last layout the norm kernel is slow
    (a strided reduction), squaring then averaging is fast.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = x.sub_(mean)
    if is_channels_last(x):
        var = x.square().mean(dim=(2, 3), keepdim=True)
    else:
        var = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True).square_().div_(x.shape[2] * x.shape[3])
    s = (var + 1e-8).rsqrt_().mul_(scale)
    return x.mul_(s), mean.mul_(s)


class FullyConnected(nn.Module):
    """Equalized-learning-rate linear layer: ``act(x @ (W / sqrt(in)).T + b) * act_gain``.

    Args:
        in_features: input width.
        out_features: output width.
        activation: ``"lrelu"`` (slope 0.2, output times sqrt(2)) or ``"linear"``.
        bias: whether the layer has a bias.
        bias_init: initial bias value.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        bias: bool = True,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., in]`` -> ``[..., out]``."""
        x = F.linear(x, self.weight * self.weight_gain, self.bias)
        return activate(x, self.activation) * ACTIVATION_GAIN[self.activation]


class Conv2dLayer(nn.Module):
    """Equalized-learning-rate conv with modulation, resampling, norm, bias, act, clamp.

    The forward steps are (SPEC §2): ``x *= gamma`` (if given), conv with resampling,
    instance_norm_std (if ``norm``), ``+ bias``, activation, ``* act_gain * gain``, clamp
    to ``+-conv_clamp * gain`` (if ``conv_clamp``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 1 or 3.
        bias: whether the layer has a bias.
        bias_init: initial bias value (1 for the style heads).
        activation: ``"lrelu"`` or ``"linear"``.
        up: 2 to upsample by two, else 1.
        down: 2 to downsample by two, else 1.
        norm: apply instance_norm_std after the convolution.
        conv_clamp: clamp bound, or ``None`` for no clamp.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        bias_init: float = 0.0,
        activation: str = "lrelu",
        up: int = 1,
        down: int = 1,
        norm: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if up not in (1, 2) or down not in (1, 2) or (up == 2 and down == 2):
            raise ConfigError(f"up/down must be 1 or 2 and not both 2, got up={up}, down={down}")
        self.activation = activation
        self.up = up
        self.down = down
        self.norm = norm
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.full((out_channels,), float(bias_init))) if bias else None
        self.register_buffer("resample_filter", fir_filter())
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None, gain: float = 1.0) -> torch.Tensor:
        """``x`` ``[N, in, H, W]``, ``gamma`` ``[N, in, H, W]`` or ``None`` -> ``[N, out, H', W']``."""
        if not torch.is_grad_enabled():
            return self.inference_forward(x, gamma, gain)
        if gamma is not None:
            x = x * gamma
        x = conv_resample(x, self.weight * self.weight_gain, self.up, self.down)
        if self.norm:
            x = instance_norm_std(x)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype)[None, :, None, None]
        x = activate(x, self.activation)
        total_gain = ACTIVATION_GAIN[self.activation] * gain
        if abs(total_gain - 1.0) > 1e-12:  # sqrt(2) * sqrt(0.5) is 1 up to rounding: skip the pass
            x = x * total_gain
        if self.conv_clamp is not None:
            bound = self.conv_clamp * gain
            x = x.clamp(-bound, bound)
        return x

    def inference_forward(
        self, x: torch.Tensor, gamma: torch.Tensor | None = None, gain: float = 1.0, prefiltered: bool = False
    ) -> torch.Tensor:
        """:meth:`forward` without autograd, equal up to float rounding, in fewer passes.

        The output gain ``c = act_gain * gain > 0`` commutes with leaky ReLU
        (``lrelu(y) c = lrelu(c y)``), so it is folded into the weight and bias (or into the
        norm's scale, as instance_norm_std ignores the weight's scale); the bias goes
        into the convolution where no resampling or norm follows it; the remaining steps
        run in place on the convolution's fresh output.
        """
        if gamma is not None:
            x = x * gamma
        scale = ACTIVATION_GAIN[self.activation] * gain
        bias = self.bias.to(x.dtype) * scale if self.bias is not None else None
        weight = self.weight.to(x.dtype) * (self.weight_gain * (1.0 if self.norm else scale))
        if self.up == 1 and not self.norm:  # resampling (down) happens before the conv: bias fuses
            x = conv_resample(x, weight, self.up, self.down, bias, prefiltered)
        else:
            x = conv_resample(x, weight, self.up, self.down, prefiltered=prefiltered)
            if self.norm:
                x, shift = instance_norm_std_(x, scale)
                bias = shift if bias is None else shift + bias[None, :, None, None]
            if bias is not None:
                x = x.add_(bias.view(1, -1, 1, 1) if bias.dim() == 1 else bias)
        if self.activation == "lrelu":
            x = F.leaky_relu_(x, LRELU_SLOPE)
        else:
            activate(x, self.activation)  # validates the name
        if self.conv_clamp is not None:
            bound = self.conv_clamp * gain
            x = x.clamp_(-bound, bound)
        return x


class ResidualBlock(nn.Module):
    """StyleGAN2 "resnet" block (SPEC §2.2): ``skip(x) + conv1(conv0(x))``.

    ``conv0`` carries the block's downsampling, ``conv1`` its upsampling; both 3x3 with
    the configured norm and clamp. The 1x1 skip has no bias, lrelu, no norm, no clamp.
    The skip and conv1 are called with gain sqrt(0.5). Modulation (``gammas``) applies to
    the inputs of conv0 and conv1, never to the skip.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        up: 2 to upsample (in conv1 and the skip), else 1.
        down: 2 to downsample (in conv0 and the skip), else 1.
        norm: instance_norm_std in conv0/conv1.
        conv_clamp: clamp bound of conv0/conv1 (256 in the paper's models).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        up: int = 1,
        down: int = 1,
        norm: bool = False,
        conv_clamp: float | None = 256,
    ) -> None:
        super().__init__()
        self.register_buffer("resample_filter", fir_filter())
        self.conv0 = Conv2dLayer(in_channels, out_channels, 3, down=down, norm=norm, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, up=up, norm=norm, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, up=up, down=down)

    def forward(self, x: torch.Tensor, gammas: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``x`` ``[N, in, H, W]`` -> ``[N, out, H*up/down, W*up/down]``."""
        gamma0, gamma1 = gammas if gammas is not None else (None, None)
        if not torch.is_grad_enabled() and self.skip.down == 2 and gamma0 is None:
            filtered = fir(F.pad(x, (2, 2, 2, 2)))  # low-pass once for the skip and conv0
            skip = self.skip.inference_forward(filtered, gain=RESIDUAL_GAIN, prefiltered=True)
            x = self.conv0.inference_forward(filtered, prefiltered=True)
            return skip.add_(self.conv1(x, gamma1, gain=RESIDUAL_GAIN))
        skip = self.skip(x, gain=RESIDUAL_GAIN)
        x = self.conv0(x, gamma0)
        x = self.conv1(x, gamma1, gain=RESIDUAL_GAIN)
        if not torch.is_grad_enabled():  # inference: the skip output is a fresh tensor
            return skip.add_(x)
        return skip + x


class ToRGB(nn.Module):
    """1x1 linear conv to RGB (no resampling, so no filter buffer), clamped.

    Args:
        in_channels: input width.
        out_channels: image channels (3).
        conv_clamp: clamp bound or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, conv_clamp: float | None = 256) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # inference: bias inside the conv, clamp in place
            x = F.conv2d(x, self.weight.to(x.dtype) * self.weight_gain, self.bias.to(x.dtype))
            return x.clamp_(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x
        x = F.conv2d(x, self.weight * self.weight_gain) + self.bias.to(x.dtype)[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x
