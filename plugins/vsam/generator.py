"""The surface-guided U-Net generator of the paper (SPEC §3), config E by default.

Module names follow the official ``UnetGenerator`` state dict so released checkpoints load
strictly (see ``state_dict_listing.md`` in the reference material).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from sganon.core.errors import ConfigError, InputError
from sganon.core.capabilities import GeneratorCapabilities, as_resolution
from sganon.core.interfaces import Generator
from sganon.core.registry import MODELS
from sganon.core.structures import CropBatch

from .layers import RESIDUAL_GAIN, Conv2dLayer, FullyConnected, ResidualBlock, ToRGB
from .mapper import SurfaceStyleMapper, standardize_table

STYLES = ("vsam", "sam", "none")

#: The paper's Table 1 ablations as generator arguments (on top of the defaults).
#: A: U-Net baseline, z added at the bottleneck; B: + surface map as input channels
#: (and surface supervision of D); C: + SAM (surface-adaptive modulation, z still at the
#: bottleneck); D: + V-SAM (z goes into the per-vertex mapper); E: D at double width.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "A": {"cnum": 32, "input_surface": False, "style": "none", "z_at_bottleneck": True},
    "B": {"cnum": 32, "input_surface": True, "style": "none", "z_at_bottleneck": True},
    "C": {"cnum": 32, "input_surface": True, "style": "sam", "z_at_bottleneck": True},
    "D": {"cnum": 32, "input_surface": True, "style": "vsam", "z_at_bottleneck": False},
    "E": {"cnum": 64, "input_surface": True, "style": "vsam", "z_at_bottleneck": False},
}

#: Mapper defaults of config E (SPEC §1): hidden 512, out 512, 6 combined, 3 z, 2 E layers.
MAPPER_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 512,
    "out_dim": 512,
    "n_layer_combined": 6,
    "n_layer_z": 3,
    "n_layer_e": 2,
    "normalize_z": True,
    "residual": True,
    "w_avg_beta": 0.995,
}


def count_levels(size: int, min_size: int) -> int:
    """Number of resolution levels ``size, size/2, ...`` not below ``min_size``."""
    levels = 0
    while size / 2**levels >= min_size:
        levels += 1
    if levels == 0:
        raise ConfigError(f"resolution {size} is smaller than the minimum feature map size {min_size}")
    return levels


def level_sizes(resolution: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """``[(H, W), (H/2, W/2), ...]``; both sides must halve exactly ``levels - 1`` times."""
    height, width = resolution
    step = 2 ** (levels - 1)
    if height % step or width % step:
        raise ConfigError(f"resolution {height}x{width} must be divisible by {step} ({levels} levels)")
    return [(height // 2**i, width // 2**i) for i in range(levels)]


class CompositeKnown(torch.autograd.Function):
    """``img = condition * mask + (1 - mask) * raw`` with the paper's rescaled gradient.

    Backward (SPEC §3.3): nothing flows to condition or mask;
    ``d raw = d img * (1 - mask) / (1 - mean(mask))`` per sample.
    """

    @staticmethod
    def forward(ctx, condition: torch.Tensor, raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return condition * mask + (1 - mask) * raw

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        # clamp: with no unknown pixel the gradient is 0 everywhere, not 0/0
        unknown_fraction = (1 - mask.mean(dim=(1, 2, 3), keepdim=True)).clamp_min(1.0 / mask[0].numel())
        return None, grad * (1 - mask) / unknown_fraction, None


@MODELS.register_module()
class VSAMGenerator(Generator):
    """Surface-guided U-Net generator (V-SAM), Hukkelås et al., WACV 2023.

    ``forward(condition, mask, border, embedding, vertices, z=None, truncation=None)``
    returns ``{"img": composited [N, 3, H, W], "img_raw": to_rgb output [N, 3, H, W]}``.

    Args:
        resolution: ``[H, W]`` of the crops (288x160 for the released model).
        cnum: base width; level i has ``cnum * min(2**i, max_cnum_mul)`` channels.
        max_cnum_mul: cap of the width multiplier.
        min_fmap_resolution: the encoder halves the long side while it stays >= this.
        n_middle_blocks: residual blocks at the bottleneck.
        z_channels: latent width.
        conv_clamp: clamp bound of the 3x3 convs, U-Net skips and to_rgb.
        surface_channels: channels of the surface embedding (16 for DensePose CSE).
        input_surface: feed the embedding as input channels (configs B-E).
        style: ``"vsam"`` (z into the per-vertex mapper, D-E), ``"sam"`` (mapper without
            z, C) or ``"none"`` (no modulation, A-B).
        z_at_bottleneck: add a projection of z to the bottleneck features (A-C).
        n_vertices: K, mesh vertices of the surface (27554 for SMPL).
        mapper: overrides of :data:`MAPPER_DEFAULTS` (hidden_dim, out_dim, n_layer_*...).
        vertex_table: raw ``[K, surface_channels]`` unit-row vertex embeddings; ``None``
            makes a deterministic random one (a checkpoint carries the real one).
    """

    name: ClassVar[str] = "vsam"
    description: ClassVar[str] = "V-SAM surface-guided GAN generator (paper config E; A-D as options)"

    def __init__(
        self,
        resolution: tuple[int, int] | list[int] = (288, 160),
        cnum: int = 64,
        max_cnum_mul: int = 16,
        min_fmap_resolution: int = 32,
        n_middle_blocks: int = 2,
        z_channels: int = 512,
        conv_clamp: float | None = 256,
        surface_channels: int = 16,
        input_surface: bool = True,
        style: str = "vsam",
        z_at_bottleneck: bool = False,
        n_vertices: int = 27554,
        mapper: dict[str, Any] | None = None,
        vertex_table: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if style not in STYLES:
            raise ConfigError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.z_channels = z_channels
        self.surface_channels = surface_channels
        self.input_surface = input_surface
        self.style = style
        self.z_at_bottleneck = z_at_bottleneck
        levels = count_levels(max(self.resolution), min_fmap_resolution)
        sizes = level_sizes(self.resolution, levels)

        def width(level: int) -> int:
            return cnum * min(2**level, max_cnum_mul)

        # Modules are created in the official order, so state dicts list keys alike.
        if z_at_bottleneck:
            self.z_projector = ZProjector(z_channels, sizes[-1])
        in_channels = 3 + 1 + (surface_channels if input_surface else 0)
        self.from_rgb = Conv2dLayer(in_channels, cnum, 1)
        self.encoder = nn.ModuleList(
            ResidualBlock(
                width(level),
                width(level + 1) if level < levels - 1 else width(level),
                down=1 if level == 0 else 2,
                norm=True,
                conv_clamp=conv_clamp,
            )
            for level in range(levels)
        )
        decoder = []
        gamma_shapes = []
        for i in range(levels):
            level = levels - 1 - i
            block_in = width(level) if i == 0 else width(level + 1)
            block_out = width(level)
            decoder.append(
                ResidualBlock(block_in, block_out, up=2 if i < levels - 1 else 1, norm=True, conv_clamp=conv_clamp)
            )
            gamma_shapes += [(block_in, *sizes[level]), (block_out, *sizes[level])]
            if i > 0:  # residual U-Net skip from the encoder feature of this level
                skip = Conv2dLayer(block_in, block_in, 1, conv_clamp=conv_clamp)
                setattr(self, f"unet_block{i}", skip)
        bottleneck = width(levels - 1)
        self.middle_blocks = nn.Sequential(
            *(ResidualBlock(bottleneck, bottleneck, norm=True, conv_clamp=conv_clamp) for _ in range(n_middle_blocks))
        )
        self.decoder = nn.ModuleList(decoder)
        self.to_rgb = ToRGB(cnum, 3, conv_clamp=conv_clamp)
        self.levels = levels
        if style != "none":
            mapper_args = {
                **MAPPER_DEFAULTS,
                **(mapper or {}),
                "surface_channels": surface_channels,
                "n_vertices": n_vertices,
                "z_channels": z_channels,
                "input_z": style == "vsam",
                "vertex_table": vertex_table,
            }
            self.style_net = SurfaceStyleMapper(gamma_shapes, mapper_args)

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        """``"paper"``: config E at 288x160; ``"tiny"``: a CPU-sized V-SAM at 144x80."""
        if profile == "paper":
            return {"resolution": [288, 160]}
        if profile == "tiny":
            return {
                "resolution": [144, 80],
                "cnum": 8,
                "min_fmap_resolution": 16,
                "z_channels": 32,
                "mapper": {"hidden_dim": 32, "out_dim": 24},
            }
        raise ConfigError(f"unknown profile {profile!r}; expected 'paper' or 'tiny'")

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> GeneratorCapabilities:
        return GeneratorCapabilities(
            resolution=as_resolution(args.get("resolution", (288, 160))),
            surface_channels=int(args.get("surface_channels", 16)),
            vertices=args.get("style", "vsam") != "none",
            realistic=True,
            trainable=True,
            latent_size=int(args.get("z_channels", 512)),
            vertex_count=int(args.get("n_vertices", 27554)),
        )

    @classmethod
    def paper_config(cls, letter: str, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments of the paper's ablation config ``"A"``..``"E"``."""
        if letter not in PAPER_CONFIGS:
            raise ConfigError(f"paper configs are {', '.join(PAPER_CONFIGS)}, got {letter!r}")
        return {**PAPER_CONFIGS[letter], **overrides}

    def set_vertex_table(self, table: torch.Tensor) -> None:
        """Use another raw ``[K, C]`` vertex table (unit rows) for the surface styles.

        Replaces the mapper's ``E`` buffer by the standardized ``table`` (e.g. the
        embedder's or a dataset's mesh table before training from scratch).

        Raises:
            ConfigError: the model has no surface mapper or ``table`` is not ``[K, C]``.
        """
        if self.style == "none":
            raise ConfigError("this generator has no surface style mapper (style='none')")
        mapper = self.style_net.E_map
        if tuple(table.shape) != tuple(mapper.E.shape):
            raise ConfigError(f"vertex table must be {list(mapper.E.shape)}, got {list(table.shape)}")
        with torch.no_grad():
            mapper.E.copy_(standardize_table(table.to(mapper.E.device, torch.float32)))

    def mapped_latents(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """Per-vertex styles w of V-SAM/SAM for ``z`` ``[B, z_channels]``, optionally truncated.

        With ``truncation`` t, ``w = w_avg + t * (w(z) - w_avg)`` (t = 0 gives ``w_avg``).
        """
        mapper = self.style_net.E_map
        w = mapper.map_network(z)
        if truncation is not None:
            w = mapper.average_w(z.shape[0]).to(w.dtype).lerp(w, truncation)
        return w

    def forward(
        self,
        condition: torch.Tensor,
        mask: torch.Tensor,
        border: torch.Tensor,
        embedding: torch.Tensor,
        vertices: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        truncation: float | None = None,
        update_w_avg: bool = False,
        rng: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Generate the unknown region.

        Args:
            condition: ``[N, 3, H, W]`` image times mask, in [-1, 1].
            mask: ``[N, 1, H, W]`` 1 = known pixel.
            border: ``[N, 1, H, W]`` ring around the person (unknown, no surface).
            embedding: ``[N, surface_channels, H, W]`` surface embedding (zeros off the body).
            vertices: ``[N, H, W]`` (or ``[N, 1, H, W]``) int vertex ids, 0 off the body;
                needed unless ``style == "none"``.
            z: ``[N, z_channels]`` latents; ``None`` draws N(0, I) from ``rng``.
            truncation: t in [0, 1] pulls w toward ``w_avg`` (V-SAM; for the other styles
                z is scaled by t); ``None`` = no truncation.
            update_w_avg: update the running ``w_avg`` from this batch's w (the training
                D step does this; V-SAM only, not with truncation).
            rng: random source for ``z``.

        Returns:
            ``{"img": composited output, "img_raw": to_rgb output}``, both ``[N, 3, H, W]``.
        """
        self.check_inputs(condition, mask, border, embedding, vertices)
        if truncation is not None and not 0.0 <= float(truncation) <= 1.0:
            raise InputError(f"truncation must lie in [0, 1], got {truncation}")
        if update_w_avg and truncation is not None:
            raise InputError("w_avg is updated from untruncated latents; do not pass truncation with update_w_avg")
        batch = condition.shape[0]
        if z is None:
            z = torch.randn(batch, self.z_channels, generator=rng, device=condition.device, dtype=condition.dtype)
        elif tuple(z.shape) != (batch, self.z_channels):
            raise InputError(f"z must be [{batch}, {self.z_channels}], got {list(z.shape)}")

        gammas: list[torch.Tensor | None] = [None] * (2 * self.levels)
        if self.style != "none":
            mapper = self.style_net.E_map
            style_truncation = truncation if self.style == "vsam" else None
            fast = None
            if not torch.is_grad_enabled() and not update_w_avg:  # inference: per distinct row (exact)
                fast = self.style_net.inference_gammas(vertices, mask, border, z, style_truncation)
            if fast is not None:
                gammas = fast
            else:
                if update_w_avg and self.style == "vsam":  # the running mean needs every vertex's w
                    w = mapper.map_network(z)
                    mapper.update_w_avg(w)
                    styles = mapper.per_pixel(w, vertices)
                else:
                    styles = mapper.per_pixel_styles(vertices, z, style_truncation)
                gammas = self.style_net(styles, mask, border)
        if self.style != "vsam" and truncation is not None:
            z = z * truncation

        inputs = [condition, mask] + ([embedding] if self.input_surface else [])
        x = torch.cat(inputs, dim=1)
        inference = not torch.is_grad_enabled()
        if inference:  # channels-last throughout: oneDNN's convolutions and the style gathers are faster so
            x = x.contiguous(memory_format=torch.channels_last)
            gammas = [g.contiguous(memory_format=torch.channels_last) if g is not None else None for g in gammas]
        x = self.from_rgb(x)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        if self.z_at_bottleneck:
            x = self.z_projector(x, z)
        x = self.middle_blocks(x)
        for i, block in enumerate(self.decoder):
            if i > 0:
                x = x + getattr(self, f"unet_block{i}")(skips[-1 - i], gain=RESIDUAL_GAIN)
            x = block(x, (gammas[2 * i], gammas[2 * i + 1]))
        raw = self.to_rgb(x)
        if inference:
            raw = raw.contiguous()
        img = CompositeKnown.apply(condition, raw, mask)
        return {"img": img, "img_raw": raw}

    def check_inputs(
        self,
        condition: torch.Tensor,
        mask: torch.Tensor,
        border: torch.Tensor,
        embedding: torch.Tensor,
        vertices: torch.Tensor | None,
    ) -> None:
        n = condition.shape[0]
        height, width = self.resolution
        expected = {
            "condition": (condition, (n, 3, height, width)),
            "mask": (mask, (n, 1, height, width)),
            "border": (border, (n, 1, height, width)),
        }
        if self.input_surface:
            expected["embedding"] = (embedding, (n, self.surface_channels, height, width))
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise InputError(f"{name} must be {list(shape)} for this generator, got {list(tensor.shape)}")
        if self.style != "none":
            if vertices is None:
                raise InputError("this generator needs per-pixel vertex ids (vertices [N, H, W])")
            if tuple(vertices.shape) not in ((n, height, width), (n, 1, height, width)):
                raise InputError(f"vertices must be [{n}, {height}, {width}], got {list(vertices.shape)}")

    @torch.no_grad()
    def anonymize(
        self,
        batch: CropBatch,
        z: torch.Tensor | None = None,
        truncation: float | None = None,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Composited ``[N, 3, H, W]`` for a crop batch at this generator's resolution."""
        out = self.forward(
            batch.condition, batch.mask, batch.border, batch.embedding, batch.vertices, z=z, truncation=truncation, rng=rng
        )
        return out["img"]


class ZProjector(nn.Module):
    """z -> one bottleneck-sized map added to every channel (configs A-C).

    Args:
        z_channels: latent width.
        size: ``(h, w)`` of the bottleneck.
    """

    def __init__(self, z_channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = tuple(size)
        self.projector = FullyConnected(z_channels, size[0] * size[1], bias=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x + self.projector(z).reshape(-1, 1, *self.size)
