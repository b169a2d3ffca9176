"""Training-time augmentation of person-crop batches, on the training device.

The paper (``configs/coco_cse.py`` of the official code) augments every real batch with a
StyleGAN2-ADA-style pipe, then a horizontal flip, before building the surface embedding
and the condition. :class:`CropAugment` does the same with these options (probabilities
are per sample):

* ``hflip``: mirror the crop; vertex ids go through the mesh's symmetry map, so the
  left arm stays the left arm (a flip without the map would swap body sides);
* geometric (one affine warp per sample): ``xint`` integer translation (``xint_max``,
  share of the size), ``scale`` isotropic (log2 std ``scale_std``), ``rotate`` (before
  and after the anisotropic scaling, ``rotate_max`` of a full turn), ``aniso``
  (``aniso_std``), ``xfrac`` fractional translation (``xfrac_std``);
* colour (one 4x4 matrix per sample, on images in [0, 1] as in the paper's code):
  ``brightness`` (std), ``contrast`` (log2 std), ``hue`` rotation about the grey axis
  (``hue_max`` of a full turn), ``saturation`` (log2 std);
* ``imgfilter``: random gains of four frequency bands (log2 std ``imgfilter_std``),
  power-normalised, with the sym2 filter bank of StyleGAN2-ADA.

Differences from StyleGAN2-ADA, by design: the warp samples the image bilinearly at its
own resolution (no 2x supersampling with a wavelet low-pass), which is enough for the
small warps used here; pixels warped in from outside the crop are reflected for the image
and known background (mask 1, no surface) for the maps. Masks, border, vertex ids and
surface maps are warped with nearest-neighbour sampling, so they stay disjoint labels.

All randomness comes from the global torch RNG of the batch's device (which training
checkpoints save and restore).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: The sym2 wavelet's low-pass filter (StyleGAN2-ADA's image-filter bank is built from it).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)

#: The options of the paper's pipe (``coco_cse.py``) plus its horizontal flip.
PAPER_OPTIONS: dict[str, float] = {
    "hflip": 0.5,
    "xint": 0.5, "xint_max": 0.05,
    "scale": 0.5, "scale_std": 0.05,
    "rotate": 0.5, "rotate_max": 0.05,
    "aniso": 0.5, "aniso_std": 0.05,
    "xfrac": 0.5, "xfrac_std": 0.05,
    "brightness": 0.5, "brightness_std": 0.05,
    "contrast": 0.5, "contrast_std": 0.1,
    "hue": 0.5, "hue_max": 0.05,
    "saturation": 0.5, "saturation_std": 0.5,
    "imgfilter": 0.5, "imgfilter_std": 0.1,
}


def band_filters() -> np.ndarray:
    """``[4, taps]`` band-pass filters whose gains the ``imgfilter`` option draws."""
    low = np.asarray(SYM2)
    high = low * ((-1) ** np.arange(low.size))
    low2 = np.convolve(low, low[::-1]) / 2
    high2 = np.convolve(high, high[::-1]) / 2
    bank = np.eye(4, 1)
    for i in range(1, bank.shape[0]):
        upsampled = np.zeros((bank.shape[0], bank.shape[1] * 2 - 1))
        upsampled[:, ::2] = bank
        bank = np.stack([np.convolve(row, low2) for row in upsampled])
        start = (bank.shape[1] - high2.size) // 2
        bank[i, start : start + high2.size] += high2
    return bank


def _with_probability(values: torch.Tensor, identity: float, probability: float) -> torch.Tensor:
    keep = torch.rand(values.shape[0], device=values.device) < probability
    return torch.where(keep.view(-1, *([1] * (values.dim() - 1))), values, torch.full_like(values, identity))


def _affine(rows: list[list[torch.Tensor | float]], n: int, device: torch.device) -> torch.Tensor:
    """``[n, 3, 3]`` matrices from rows of per-sample tensors or constants."""
    entries = [torch.as_tensor(v, dtype=torch.float32, device=device).expand(n) for row in rows for v in row]
    return torch.stack(entries, dim=1).view(n, 3, 3)


class CropAugment(nn.Module):
    """Flip + StyleGAN2-ADA-style geometric/colour/filter augmentation (see the module docstring).

    Args:
        hflip: probability of a horizontal flip.
        xint, xint_max: probability and range (share of the size) of integer translation.
        scale, scale_std: probability and log2 std of isotropic scaling.
        rotate, rotate_max: probability and range (share of a full turn) of rotation.
        aniso, aniso_std: probability and log2 std of anisotropic scaling.
        xfrac, xfrac_std: probability and std (share of the size) of fractional translation.
        brightness, brightness_std: probability and std of an added brightness.
        contrast, contrast_std: probability and log2 std of contrast.
        hue, hue_max: probability and range (share of a full turn) of hue rotation.
        saturation, saturation_std: probability and log2 std of saturation.
        imgfilter, imgfilter_std: probability (per band) and log2 std of band gains.
    """

    def __init__(
        self,
        hflip: float = 0.0,
        xint: float = 0.0, xint_max: float = 0.125,
        scale: float = 0.0, scale_std: float = 0.2,
        rotate: float = 0.0, rotate_max: float = 1.0,
        aniso: float = 0.0, aniso_std: float = 0.2,
        xfrac: float = 0.0, xfrac_std: float = 0.125,
        brightness: float = 0.0, brightness_std: float = 0.2,
        contrast: float = 0.0, contrast_std: float = 0.5,
        hue: float = 0.0, hue_max: float = 1.0,
        saturation: float = 0.0, saturation_std: float = 1.0,
        imgfilter: float = 0.0, imgfilter_std: float = 1.0,
    ) -> None:
        super().__init__()
        probabilities = dict(hflip=hflip, xint=xint, scale=scale, rotate=rotate, aniso=aniso, xfrac=xfrac,
                             brightness=brightness, contrast=contrast, hue=hue, saturation=saturation,
                             imgfilter=imgfilter)
        for name, p in probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"augmentation probability {name} must lie in [0, 1], got {p}")
        self.hflip = hflip
        self.xint, self.xint_max = xint, xint_max
        self.scale, self.scale_std = scale, scale_std
        self.rotate, self.rotate_max = rotate, rotate_max
        self.aniso, self.aniso_std = aniso, aniso_std
        self.xfrac, self.xfrac_std = xfrac, xfrac_std
        self.brightness, self.brightness_std = brightness, brightness_std
        self.contrast, self.contrast_std = contrast, contrast_std
        self.hue, self.hue_max = hue, hue_max
        self.saturation, self.saturation_std = saturation, saturation_std
        self.imgfilter, self.imgfilter_std = imgfilter, imgfilter_std
        self.register_buffer("band_filters", torch.as_tensor(band_filters(), dtype=torch.float32), persistent=False)

    @property
    def geometric(self) -> bool:
        return any(p > 0 for p in (self.xint, self.scale, self.rotate, self.aniso, self.xfrac))

    def forward(
        self, batch: dict[str, torch.Tensor], vertex_symmetry: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Augment a batch; returns a new dict with the same keys.

        Args:
            batch: ``img`` ``[N, 3, H, W]`` in [0, 1]; ``mask``, ``border`` ``[N, 1, H, W]``;
                optional ``vertices`` ``[N, H, W]`` int and ``embedding`` ``[N, E, H, W]``.
            vertex_symmetry: ``[K]`` mirror vertex of each vertex; required to flip vertex ids.
        """
        batch = dict(batch)
        if self.hflip > 0:
            batch = self._flip(batch, vertex_symmetry)
        if self.geometric:
            batch = self._warp(batch)
        batch["img"] = self._colour(batch["img"])
        if self.imgfilter > 0:
            batch["img"] = self._filter(batch["img"])
        return batch

    def _flip(self, batch: dict[str, torch.Tensor], vertex_symmetry: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = batch["img"].shape[0]
        flip = torch.rand(n, device=batch["img"].device) < self.hflip
        if "vertices" in batch and vertex_symmetry is None:
            raise ConfigError(
                "a horizontal flip of vertex ids needs the mesh's vertex symmetry map (the dataset's "
                "vertex_symmetry); provide it or set the augmentation's hflip to 0"
            )
        if "embedding" in batch and "vertices" not in batch:
            raise ConfigError("surface maps without vertex ids cannot be flipped consistently; set hflip to 0")
        out = {}
        for key, value in batch.items():
            flipped = value.flip(-1)
            if key == "vertices":
                flipped = vertex_symmetry.to(value.device)[flipped.long()].to(value.dtype)
            select = flip.view(-1, *([1] * (value.dim() - 1)))
            out[key] = torch.where(select, flipped, value)
        return out

    def _inverse_warps(self, n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``[n, 3, 3]`` maps from output to input pixel coordinates (origin at the centre)."""
        def draw(shape):
            return torch.randn(shape, device=device)

        def uniform(shape):
            return torch.rand(shape, device=device) * 2 - 1

        matrix = torch.eye(3, device=device).expand(n, 3, 3)
        zero, one = 0.0, 1.0
        if self.xint > 0:
            t = _with_probability(uniform((n, 2)) * self.xint_max, 0.0, self.xint)
            tx, ty = torch.round(t[:, 0] * width), torch.round(t[:, 1] * height)
            matrix = matrix @ _affine([[one, zero, -tx], [zero, one, -ty], [zero, zero, one]], n, device)
        if self.scale > 0:
            s = _with_probability(torch.exp2(draw(n) * self.scale_std), 1.0, self.scale)
            matrix = matrix @ _affine([[1 / s, zero, zero], [zero, 1 / s, zero], [zero, zero, one]], n, device)
        p_rotate = 1 - math.sqrt(max(0.0, 1 - self.rotate))  # pre or post rotation: P(either) = rotate
        if self.rotate > 0:
            matrix = matrix @ self._rotation(uniform(n) * math.pi * self.rotate_max, p_rotate, n, device)
        if self.aniso > 0:
            s = _with_probability(torch.exp2(draw(n) * self.aniso_std), 1.0, self.aniso)
            matrix = matrix @ _affine([[1 / s, zero, zero], [zero, s, zero], [zero, zero, one]], n, device)
        if self.rotate > 0:
            matrix = matrix @ self._rotation(uniform(n) * math.pi * self.rotate_max, p_rotate, n, device)
        if self.xfrac > 0:
            t = _with_probability(draw((n, 2)) * self.xfrac_std, 0.0, self.xfrac)
            tx, ty = t[:, 0] * width, t[:, 1] * height
            matrix = matrix @ _affine([[one, zero, -tx], [zero, one, -ty], [zero, zero, one]], n, device)
        return matrix

    @staticmethod
    def _rotation(theta: torch.Tensor, probability: float, n: int, device: torch.device) -> torch.Tensor:
        theta = _with_probability(theta, 0.0, probability)
        cos, sin = torch.cos(theta), torch.sin(theta)
        return _affine([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]], n, device)

    def _warp(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        img = batch["img"]
        n, _, height, width = img.shape
        inverse = self._inverse_warps(n, height, width, img.device)
        ys = torch.arange(height, device=img.device, dtype=torch.float32) - (height - 1) / 2
        xs = torch.arange(width, device=img.device, dtype=torch.float32) - (width - 1) / 2
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack((grid_x, grid_y, torch.ones_like(grid_x)), dim=-1).view(1, -1, 3)
        source = (points @ inverse.transpose(1, 2))[..., :2].view(n, height, width, 2)
        # pixel centres (origin at the middle) -> grid_sample's [-1, 1] with align_corners=False
        grid = source / torch.tensor([width / 2, height / 2], device=img.device)
        out = dict(batch)
        out["img"] = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # Outside the crop: known background (mask 1), no border, no surface.
        out["mask"] = 1 - F.grid_sample(1 - batch["mask"], grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out["border"] = F.grid_sample(batch["border"], grid, mode="nearest", padding_mode="zeros", align_corners=False)
        if "vertices" in batch:
            ids = batch["vertices"].reshape(n, 1, height, width).float()
            warped = F.grid_sample(ids, grid, mode="nearest", padding_mode="zeros", align_corners=False)
            out["vertices"] = warped.round().view_as(batch["vertices"]).to(batch["vertices"].dtype)
        if "embedding" in batch:
            out["embedding"] = F.grid_sample(batch["embedding"], grid, mode="nearest", padding_mode="zeros",
                                             align_corners=False)
        return out

    def _colour(self, img: torch.Tensor) -> torch.Tensor:
        n, device = img.shape[0], img.device
        matrix = torch.eye(4, device=device).expand(n, 4, 4)
        if self.brightness > 0:
            b = _with_probability(torch.randn(n, device=device) * self.brightness_std, 0.0, self.brightness)
            shift = torch.eye(4, device=device).repeat(n, 1, 1)
            shift[:, :3, 3] = b[:, None]
            matrix = shift @ matrix
        if self.contrast > 0:
            c = _with_probability(torch.exp2(torch.randn(n, device=device) * self.contrast_std), 1.0, self.contrast)
            scale = torch.diag_embed(torch.stack((c, c, c, torch.ones_like(c)), dim=1))
            matrix = scale @ matrix
        axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)  # the grey (luma) axis
        if self.hue > 0:
            theta = _with_probability((torch.rand(n, device=device) * 2 - 1) * math.pi * self.hue_max, 0.0, self.hue)
            matrix = self._rotation_about(axis, theta) @ matrix
        if self.saturation > 0:
            s = _with_probability(torch.exp2(torch.randn(n, device=device) * self.saturation_std), 1.0, self.saturation)
            outer = torch.outer(axis, axis)
            saturate = outer + (torch.eye(4, device=device) - outer) * s.view(n, 1, 1)
            matrix = saturate @ matrix
        if self.brightness > 0 or self.contrast > 0 or self.hue > 0 or self.saturation > 0:
            height, width = img.shape[2:]
            pixels = img.reshape(n, 3, height * width)
            pixels = matrix[:, :3, :3] @ pixels + matrix[:, :3, 3:]
            img = pixels.reshape(n, 3, height, width)
        return img

    @staticmethod
    def _rotation_about(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``[n, 4, 4]`` rotations by ``theta`` about the unit ``axis`` (Rodrigues)."""
        x, y, z = axis[0], axis[1], axis[2]
        s, c = torch.sin(theta), torch.cos(theta)
        cc = 1 - c
        rows = [
            [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s],
            [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s],
            [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c],
        ]
        out = torch.eye(4, device=theta.device).repeat(theta.shape[0], 1, 1)
        for i in range(3):
            for j in range(3):
                out[:, i, j] = rows[i][j]
        return out

    def _filter(self, img: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = img.shape
        bank = self.band_filters.to(img.device)
        bands = bank.shape[0]
        expected_power = torch.tensor([10.0, 1.0, 1.0, 1.0], device=img.device) / 13  # a 1/f spectrum
        gains = torch.ones(n, bands, device=img.device)
        for i in range(bands):
            t_i = _with_probability(torch.exp2(torch.randn(n, device=img.device) * self.imgfilter_std), 1.0, self.imgfilter)
            t = torch.ones(n, bands, device=img.device)
            t[:, i] = t_i
            t = t / (expected_power * t.square()).sum(dim=1, keepdim=True).sqrt()
            gains = gains * t
        kernel = (gains @ bank).repeat_interleave(channels, dim=0)  # [n * C, taps]
        pad = bank.shape[1] // 2
        mode = "reflect" if pad < min(height, width) else "replicate"  # reflection needs a larger image
        x = F.pad(img.reshape(1, n * channels, height, width), [pad, pad, pad, pad], mode=mode)
        x = F.conv2d(x, kernel[:, None, None, :], groups=n * channels)
        x = F.conv2d(x, kernel[:, None, :, None], groups=n * channels)
        return x.reshape(n, channels, height, width)
