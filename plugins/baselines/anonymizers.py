"""Classical (non-generative) anonymizers operating on :class:`CropBatch` tensors."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sganon.core.errors import ConfigError
from sganon.core.capabilities import GeneratorCapabilities
from sganon.core.interfaces import Generator
from sganon.core.registry import MODELS
from sganon.core.structures import CropBatch


def region_of(batch: CropBatch) -> torch.Tensor:
    """Bool ``[N, 1, H, W]``: the pixels to anonymize (everything not known)."""
    return batch.mask < 0.5


def subject_size(batch: CropBatch, index: int, bounds: tuple[int, int, int, int]) -> tuple[float, float]:
    """``(height, width)`` that sets the strength for crop ``index``: its whole subject (the
    person or head as it would be without the frame's edge) when the batch gives it, else the
    bounds ``(y0, y1, x0, x1)`` of the region to replace."""
    if batch.subjects is not None:
        return batch.subjects[index]
    y0, y1, x0, x1 = bounds
    return y1 - y0, x1 - x0


def region_bounds(region: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` half-open bounds of a 2-D bool region, or ``None`` if empty."""
    rows = torch.nonzero(region.any(dim=1)).flatten()
    cols = torch.nonzero(region.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class BaselineAnonymizer(Generator):
    """Shared behaviour: no surface input, any resolution, not trainable, composited output."""

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> GeneratorCapabilities:
        return GeneratorCapabilities()

    def fill(self, batch: CropBatch, region: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        """``[N, 3, H, W]`` replacement pixels; only those in ``region`` are used."""
        raise NotImplementedError

    @torch.no_grad()
    def anonymize(
        self,
        batch: CropBatch,
        z: torch.Tensor | None = None,
        truncation: float | None = None,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        region = region_of(batch)
        filled = self.fill(batch, region, rng).to(batch.image.dtype)
        if filled.is_contiguous() and filled.data_ptr() != batch.image.data_ptr():
            # A tensor of its own: composited in place (a full-resolution crop is 12 bytes a pixel).
            return torch.where(region, filled, batch.image, out=filled)
        return torch.where(region, filled, batch.image)

    def forward(self, batch: CropBatch, rng: torch.Generator | None = None) -> torch.Tensor:
        return self.anonymize(batch, rng=rng)


@MODELS.register_module()
class MaskOut(BaselineAnonymizer):
    """Replace the person by a constant or noise.

    Args:
        fill: ``"black"``, ``"noise"`` (uniform in [-1, 1]) or ``"mean"`` (mean colour of
            the region in each crop).
    """

    name: ClassVar[str] = "mask-out"
    description: ClassVar[str] = "mask-out baseline: black, random noise or the region's mean colour"
    FILLS = ("black", "noise", "mean")

    def __init__(self, fill: str = "black") -> None:
        super().__init__()
        if fill not in self.FILLS:
            raise ConfigError(f"MaskOut fill must be one of {', '.join(self.FILLS)}, got {fill!r}")
        self.fill_mode = fill

    def fill(self, batch: CropBatch, region: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        image = batch.image
        if self.fill_mode == "black":
            return torch.full_like(image, -1.0)
        if self.fill_mode == "noise":
            noise = torch.rand(image.shape, generator=rng, dtype=torch.float32, device=image.device)
            return noise * 2 - 1
        weight = region.to(image.dtype)
        mean = (image * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        return mean.expand_as(image)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


@MODELS.register_module()
class GaussianBlur(BaselineAnonymizer):
    """Gaussian blur of the person.

    Args:
        sigma_fraction: Blur sigma as a fraction of the subject's longer side (per crop: the
            whole person or head, also when the frame's edge cuts it), so far and near people
            are blurred alike.
        min_sigma: Lower bound on sigma in pixels.
    """

    name: ClassVar[str] = "blur"
    description: ClassVar[str] = "Gaussian-blur baseline (sigma relative to the person's size)"

    def __init__(self, sigma_fraction: float = 0.05, min_sigma: float = 2.0) -> None:
        super().__init__()
        if sigma_fraction <= 0 or min_sigma <= 0:
            raise ConfigError("GaussianBlur needs sigma_fraction > 0 and min_sigma > 0")
        self.sigma_fraction = sigma_fraction
        self.min_sigma = min_sigma

    def fill(self, batch: CropBatch, region: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        out = batch.image.clone()
        for i in range(batch.image.shape[0]):
            bounds = region_bounds(region[i, 0])
            if bounds is None:
                continue
            sigma = max(self.min_sigma, self.sigma_fraction * max(subject_size(batch, i, bounds)))
            kernel = gaussian_kernel(sigma).to(out.device, out.dtype)
            radius = kernel.numel() // 2
            image = batch.image[i : i + 1]
            channels = image.shape[1]
            # Separable blur; replicate padding keeps the edges from darkening.
            horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
            vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
            blurred = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
            blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)
            out[i] = blurred[0]
        return out


@MODELS.register_module()
class Pixelate(BaselineAnonymizer):
    """Pixelation: square blocks, ``blocks`` of them across the person's width (the whole
    person's or head's, also when the frame's edge cuts it), at least ``min_block`` pixels.

    Each block takes the mean colour of the region pixels it covers; the block grid starts
    at the region's top-left corner.

    Args:
        blocks: Number of blocks across the person (the paper compares 8 and 16).
        min_block: Smallest block side in pixels: 16 blocks across a walker 25 pixels wide
            were 1.5-pixel blocks, which leave a small person as they were; with 4-pixel
            blocks, 3 of the 14 faces (16-23 pixels) of a real street crowd were still
            re-identified by dlib's face-recognition model (benchmarks/privacy_check.py
            --reidentify), with 6 one (at the model's noise floor).
    """

    name: ClassVar[str] = "pixelate"
    description: ClassVar[str] = "pixelation baseline (N blocks across the person)"

    def __init__(self, blocks: int = 16, min_block: int = 6) -> None:
        super().__init__()
        if int(blocks) < 1 or int(min_block) < 1:
            raise ConfigError(f"Pixelate needs blocks >= 1 and min_block >= 1, got {blocks} and {min_block}")
        self.blocks = int(blocks)
        self.min_block = int(min_block)

    def fill(self, batch: CropBatch, region: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        out = batch.image.clone()
        for i in range(batch.image.shape[0]):
            bounds = region_bounds(region[i, 0])
            if bounds is None:
                continue
            y0, y1, x0, x1 = bounds
            block = max(self.min_block, math.ceil(subject_size(batch, i, bounds)[1] / self.blocks))
            width = math.ceil((x1 - x0) / block) * block
            # One row of blocks at a time, padded with zeros to whole blocks: block sums of the
            # region's pixels and weights, then the means written back (crops can be full-resolution:
            # nothing of the crop's size is allocated here).
            weight = torch.zeros(1, 1, block, width, dtype=out.dtype, device=out.device)
            plane = torch.zeros_like(weight)
            for top in range(y0, y1, block):
                bottom = min(top + block, y1)
                inside = (..., slice(0, bottom - top), slice(0, x1 - x0))
                weight.zero_()
                weight[inside] = region[i : i + 1, :, top:bottom, x0:x1]
                sums = []
                for channel in range(out.shape[1]):
                    plane.zero_()
                    torch.mul(batch.image[i : i + 1, channel : channel + 1, top:bottom, x0:x1], weight[inside],
                              out=plane[inside])
                    sums.append(F.avg_pool2d(plane, block, divisor_override=1))
                counts = F.avg_pool2d(weight, block, divisor_override=1)
                means = torch.cat(sums, dim=1) / counts.clamp_min(1)  # [1, C, 1, width / block]
                line = means[0, :, 0].repeat_interleave(block, dim=1)[:, : x1 - x0]
                out[i, :, top:bottom, x0:x1] = line[:, None, :]
        return out
