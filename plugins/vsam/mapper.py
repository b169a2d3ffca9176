"""The surface style mapper of V-SAM (SPEC §3.4): per-vertex latents w -> per-pixel gammas.

Names of modules and buffers follow the official state dict (``style_net.E_map.*``,
``style_net.global_mask``, ``style_net.dec_layers.j.mlp``) so released checkpoints load
strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sganon.core.errors import ConfigError, InputError

from .layers import ACTIVATION_GAIN, Conv2dLayer, FullyConnected, activate

#: Seed of the stand-in vertex table of a model built without weights.
DEFAULT_TABLE_SEED = 27554


def random_vertex_table(n_vertices: int, channels: int, seed: int = DEFAULT_TABLE_SEED) -> torch.Tensor:
    """A deterministic random ``[K, C]`` table with unit-L2 rows (stand-in for SMPL's CSE table)."""
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(n_vertices, channels, generator=generator, device="cpu")
    return table / table.norm(dim=1, keepdim=True)


def standardize_table(table: torch.Tensor) -> torch.Tensor:
    """``(E_raw - mean) * rstd`` per channel over the K vertices (population variance)."""
    mean = table.mean(dim=0, keepdim=True)
    rstd = 1.0 / torch.sqrt((table - mean).square().mean(dim=0, keepdim=True) + 1e-8)
    return (table - mean) * rstd


def normalize_2nd_moment(z: torch.Tensor) -> torch.Tensor:
    """``z / sqrt(mean_c(z^2) + 1e-8)`` over the last dimension."""
    return z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class SurfaceLatentMapper(nn.Module):
    """Maps every mesh vertex (and, for V-SAM, a latent z) to a style vector w.

    V-SAM (``input_z=True``): ``w`` is ``[B*K, out_dim]``, row ``b*K + v`` for sample b and
    vertex v. SAM (``input_z=False``): ``w`` is ``[K, out_dim]``, shared by all samples.

    Buffers: ``E`` ``[K, C]`` the standardized vertex table; ``w_avg`` ``[K, out_dim]``
    the running average of w used for truncation.

    Args:
        surface_channels: C, the vertex embedding width (16 for DensePose CSE).
        n_vertices: K, number of mesh vertices.
        z_channels: latent width (only used if ``input_z``).
        hidden_dim: width of the hidden layers.
        out_dim: width of w.
        n_layer_combined: layers after concatenating vertex and latent features (fc*).
        n_layer_z: layers of the latent branch (fromZ*).
        n_layer_e: layers of the vertex branch (fromE*).
        input_z: feed z into the mapper (V-SAM) or not (SAM).
        normalize_z: normalize z's second moment first.
        residual: linear residual projections around every pair of fc layers.
        w_avg_beta: decay of the running w average.
        vertex_table: raw ``[K, C]`` table with unit rows, or ``None`` for a deterministic
            random one (a checkpoint overwrites ``E`` anyway).
    """

    def __init__(
        self,
        surface_channels: int = 16,
        n_vertices: int = 27554,
        z_channels: int = 512,
        hidden_dim: int = 512,
        out_dim: int = 512,
        n_layer_combined: int = 6,
        n_layer_z: int = 3,
        n_layer_e: int = 2,
        input_z: bool = True,
        normalize_z: bool = True,
        residual: bool = True,
        w_avg_beta: float = 0.995,
        vertex_table: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if n_layer_combined < 1:
            raise ConfigError("the mapper needs at least one combined layer")
        self.n_vertices = n_vertices
        self.input_z = input_z
        self.normalize_z = normalize_z
        self.residual = residual
        self.w_avg_beta = w_avg_beta
        self.out_dim = out_dim
        if vertex_table is None:
            vertex_table = random_vertex_table(n_vertices, surface_channels)
        if tuple(vertex_table.shape) != (n_vertices, surface_channels):
            raise ConfigError(f"vertex table must be [{n_vertices}, {surface_channels}], got {list(vertex_table.shape)}")
        self.register_buffer("E", standardize_table(vertex_table.float()))
        self.vertex_layers = n_layer_e
        self.latent_layers = n_layer_z if input_z else 0
        self.combined_layers = n_layer_combined
        width = surface_channels
        for i in range(n_layer_e):
            setattr(self, f"fromE{i}", FullyConnected(width, hidden_dim, activation="lrelu"))
            width = hidden_dim
        for i in range(self.latent_layers):
            setattr(self, f"fromZ{i}", FullyConnected(z_channels, z_channels, activation="lrelu"))
        widths = [width + (z_channels if input_z else 0)] + [hidden_dim] * (n_layer_combined - 1) + [out_dim]
        for i in range(n_layer_combined):
            if residual and i % 2 == 1:  # projects the input of fc{i-1} to fc{i}'s output
                setattr(self, f"residual{i}", FullyConnected(widths[i - 1], widths[i + 1], activation="linear"))
            setattr(self, f"fc{i}", FullyConnected(widths[i], widths[i + 1], activation="lrelu"))
        self.register_buffer("w_avg", torch.zeros(n_vertices, out_dim))

    def latent_features(self, z: torch.Tensor | None) -> torch.Tensor | None:
        """The latent branch: ``z`` ``[B, z_channels]`` -> ``[B, z_channels]`` (``None`` for SAM)."""
        if not self.input_z:
            return None
        if z is None:
            raise InputError("V-SAM's mapper needs z")
        if self.normalize_z:
            z = normalize_2nd_moment(z)
        for i in range(self.latent_layers):
            z = getattr(self, f"fromZ{i}")(z)
        return z

    def rows(self, vertex: torch.Tensor, sample: torch.Tensor | None, latent: torch.Tensor | None) -> torch.Tensor:
        """w for given (sample, vertex) pairs: ``vertex``/``sample`` ``[R]`` -> ``[R, out_dim]``.

        Every row goes through the same per-row MLP, so any subset of the rows of
        :meth:`map_network` can be computed on its own.
        """
        x = self.E[vertex]
        for i in range(self.vertex_layers):
            x = getattr(self, f"fromE{i}")(x)
        if latent is not None:
            x = torch.cat((x, latent[sample]), dim=1)  # [vertex features, latent features]
        shortcut = x
        for i in range(self.combined_layers):
            x = getattr(self, f"fc{i}")(x)
            if self.residual and i % 2 == 1:
                x = (x + getattr(self, f"residual{i}")(shortcut)) / (2**0.5)
                shortcut = x
        return x

    def map_network(self, z: torch.Tensor | None) -> torch.Tensor:
        """All per-vertex styles: ``[B*K, out_dim]`` (V-SAM; row ``b*K + v``) or ``[K, out_dim]`` (SAM)."""
        k = self.n_vertices
        vertex = torch.arange(k, device=self.E.device)
        latent = self.latent_features(z)
        if latent is None:
            return self.rows(vertex, None, None)
        batch = latent.shape[0]
        sample = torch.arange(batch, device=vertex.device).repeat_interleave(k)
        return self.rows(vertex.repeat(batch), sample, latent)

    def average_w(self, batch: int) -> torch.Tensor:
        """``w_avg`` laid out like :meth:`map_network`'s output for ``batch`` samples."""
        return self.w_avg.repeat(batch, 1) if self.input_z else self.w_avg

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor) -> None:
        """``w_avg <- m + beta * (w_avg - m)``, m = the mean of all rows of ``w``."""
        mean = w.detach().float().mean(dim=0)
        self.w_avg.copy_(mean.lerp(self.w_avg.float(), self.w_avg_beta))

    def vertex_indices(self, vertices: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` (or ``[B, 1, H, W]``, any dtype) -> checked int64 ``[B, H, W]``."""
        indices = vertices.reshape(-1, *vertices.shape[-2:]).long()
        if indices.numel():
            low, high = (int(v) for v in torch.aminmax(indices))  # one host sync for both bounds
            if low < 0 or high >= self.n_vertices:
                raise InputError(
                    f"vertex ids must lie in [0, {self.n_vertices}), got [{low}, {high}]; "
                    "was the surface map made for another mesh?"
                )
        return indices

    def inference_rows(self, rows: torch.Tensor, z: torch.Tensor | None, truncation: float | None) -> torch.Tensor:
        """Inference-only :meth:`rows` for distinct row ids ``b*K + v`` (V-SAM) or ``v`` (SAM) -> ``[R, out_dim]``.

        Same values as ``map_network(z)[rows]`` (truncated like :meth:`per_pixel_styles`)
        up to float rounding, cheaper: the vertex branch runs once per distinct vertex,
        and the first combined layer and its residual projection, linear in
        ``[vertex features, latent features]``, are split so that the latent half runs once
        per sample (``W [e; z] = W_e e + W_z z``). Not for autograd (use :meth:`rows`).
        """
        vertex, sample = rows % self.n_vertices, rows // self.n_vertices
        if self.input_z and truncation is not None and float(truncation) == 0.0:
            return self.w_avg[vertex]
        latent = self.latent_features(z)
        if latent is None:  # SAM: nothing to split
            return self.rows(vertex, None, None)
        distinct, vertex_slot = torch.unique(vertex, return_inverse=True)  # vertices shared by several samples
        e = self.E[distinct]
        for i in range(self.vertex_layers):
            e = getattr(self, f"fromE{i}")(e)

        def split_layer(layer: FullyConnected) -> torch.Tensor:
            weight = layer.weight * layer.weight_gain
            per_vertex = e @ weight[:, : e.shape[1]].t()
            per_sample = latent @ weight[:, e.shape[1] :].t()
            if layer.bias is not None:
                per_sample = per_sample + layer.bias
            x = per_vertex[vertex_slot].add_(per_sample[sample])
            return activate(x, layer.activation) * ACTIVATION_GAIN[layer.activation]

        x = split_layer(self.fc0)
        projected = split_layer(self.residual1) if self.residual and self.combined_layers > 1 else None
        shortcut = None
        for i in range(1, self.combined_layers):
            x = getattr(self, f"fc{i}")(x)
            if self.residual and i % 2 == 1:
                x = (x + (projected if i == 1 else getattr(self, f"residual{i}")(shortcut))) / (2**0.5)
                shortcut = x
        if self.input_z and truncation is not None:
            x = self.w_avg[vertex].to(x.dtype).lerp(x, float(truncation))
        return x

    def per_pixel(self, w: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
        """Look up all-vertex styles ``w`` (from :meth:`map_network`) at every pixel -> ``[B, out_dim, H, W]``."""
        indices = self.vertex_indices(vertices)
        if self.input_z:
            offsets = torch.arange(indices.shape[0], device=indices.device) * self.n_vertices
            indices = indices + offsets[:, None, None]
        return F.embedding(indices, w).permute(0, 3, 1, 2)

    def per_pixel_styles(
        self, vertices: torch.Tensor, z: torch.Tensor | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        """Styles at every pixel, computing w only for the (sample, vertex) pairs present.

        Equal to ``per_pixel(map_network(z), vertices)`` (with truncation:
        ``w = w_avg + t * (w(z) - w_avg)``), but a crop shows a few thousand of the K
        vertices, and t = 0 needs no mapping at all.

        Args:
            vertices: ``[B, H, W]`` vertex ids.
            z: ``[B, z_channels]`` latents (V-SAM).
            truncation: t in [0, 1] or ``None`` (V-SAM only).

        Returns:
            ``[B, out_dim, H, W]``.
        """
        indices = self.vertex_indices(vertices)
        if self.input_z:
            offsets = torch.arange(indices.shape[0], device=indices.device) * self.n_vertices
            indices = indices + offsets[:, None, None]
        needed, inverse = torch.unique(indices, return_inverse=True)
        vertex, sample = needed % self.n_vertices, needed // self.n_vertices
        if self.input_z and truncation is not None and float(truncation) == 0.0:
            w = self.w_avg[vertex]
        else:
            w = self.rows(vertex, sample, self.latent_features(z))
            if self.input_z and truncation is not None:
                w = self.w_avg[vertex].to(w.dtype).lerp(w, float(truncation))
        return w[inverse].permute(0, 3, 1, 2)


def gather_pixels(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``values`` ``[R, C]`` looked up at ``ids`` ``[B, H, W]`` -> ``[B, C, H, W]`` in channels-last layout.

    A row gather (one contiguous copy of C values per pixel), which is the memory order
    of the channels-last tensors the generator's inference path runs on.
    """
    batch, height, width = ids.shape
    rows = torch.index_select(values, 0, ids.reshape(-1))
    return rows.view(batch, height, width, values.shape[1]).permute(0, 3, 1, 2)


class StyleHead(nn.Module):
    """``gamma = conv1x1(S) + b`` with the bias initialised to 1 (so gamma starts near 1).

    Args:
        style_dim: channels of the style map S.
        channels: channels of the feature map gamma multiplies.
    """

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.mlp = Conv2dLayer(style_dim, channels, 1, bias_init=1.0, activation="linear")

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.mlp(style)


class SurfaceStyleMapper(nn.Module):
    """SAM / V-SAM: per-pixel styles from the vertex map, one gamma per decoder conv.

    Args:
        gamma_shapes: ``(channels, height, width)`` of the input of every modulated conv,
            in forward order.
        mapper: keyword arguments of :class:`SurfaceLatentMapper`.
    """

    def __init__(self, gamma_shapes: list[tuple[int, int, int]], mapper: dict) -> None:
        super().__init__()
        self.gamma_shapes = [tuple(shape) for shape in gamma_shapes]
        self.E_map = SurfaceLatentMapper(**mapper)
        style_dim = self.E_map.out_dim
        self.global_mask = Conv2dLayer(style_dim + 3, style_dim, 1, bias=False, activation="lrelu")
        with torch.no_grad():
            self.global_mask.weight[:, -3:] = 0.0
        self.dec_layers = nn.ModuleList(StyleHead(style_dim, shape[0]) for shape in self.gamma_shapes)

    def forward(self, styles: torch.Tensor, mask: torch.Tensor, border: torch.Tensor) -> list[torch.Tensor]:
        """Gammas ``[B, C_j, H_j, W_j]`` from per-pixel styles.

        Args:
            styles: ``[B, D, H, W]`` w at every pixel (:meth:`SurfaceLatentMapper.per_pixel_styles`).
            mask: ``[B, 1, H, W]`` 1 = known pixel.
            border: ``[B, 1, H, W]`` ring around the person.
        """
        surface = 1 - mask - border
        style = self.global_mask(torch.cat((styles * surface, mask, border, surface), dim=1))
        # Pyramid by repeated halving (bilinear, align_corners=True), from full resolution down.
        pyramid = {tuple(style.shape[2:]): style}
        smallest = min(shape[1] for shape in self.gamma_shapes)
        while style.shape[2] > smallest:
            style = F.interpolate(style, size=(style.shape[2] // 2, style.shape[3] // 2), mode="bilinear", align_corners=True)
            pyramid[tuple(style.shape[2:])] = style
        gammas = []
        for (_, height, width), head in zip(self.gamma_shapes, self.dec_layers):
            if (height, width) not in pyramid:
                raise InputError(f"no style map of size {(height, width)}; the pyramid has {sorted(pyramid)}")
            gammas.append(head(pyramid[(height, width)]))
        return gammas

    @torch.no_grad()
    def inference_gammas(
        self,
        vertices: torch.Tensor,
        mask: torch.Tensor,
        border: torch.Tensor,
        z: torch.Tensor | None,
        truncation: float | None,
    ) -> list[torch.Tensor] | None:
        """:meth:`forward` of ``per_pixel_styles(vertices, z, truncation)``, computed per distinct row.

        With 0/1 masks every pixel is one of: known (input ``[0, 1, 0, 0]``), border
        (``[0, 0, 1, 0]``) or surface (``[w_v, 0, 0, 1]`` for its (sample, vertex) row), so
        the style map S = global_mask(...) takes one of ``R + 2`` values. Those are computed
        as a table ``[R + 2, D]`` and gathered; the full-resolution heads (linear) are
        applied to the table too. The lower levels are bilinear averages of the gathered S
        (as in :meth:`forward`). Equal to :meth:`forward` up to float rounding.

        Returns:
            The gammas, or ``None`` when the masks are not 0/1 (or overlap): use :meth:`forward`.
        """
        mapper = self.E_map
        indices = mapper.vertex_indices(vertices)
        known, ring = mask[:, 0] == 1, border[:, 0] == 1
        binary = ((mask[:, 0] == 0) | known) & ((border[:, 0] == 0) | ring) & ~(known & ring)
        if not bool(binary.all()):
            return None
        surface = ~(known | ring)
        rows = indices
        if mapper.input_z:
            rows = rows + torch.arange(rows.shape[0], device=rows.device).view(-1, 1, 1) * mapper.n_vertices
        # Distinct rows of the surface pixels without sorting: mark, number, look up.
        present = torch.zeros(mapper.n_vertices * (rows.shape[0] if mapper.input_z else 1), dtype=torch.bool,
                              device=rows.device)
        present[rows[surface]] = True
        needed = present.nonzero()[:, 0]
        slot = torch.empty(present.shape[0], dtype=torch.int64, device=rows.device)
        slot[needed] = torch.arange(needed.shape[0], device=rows.device)
        n = needed.shape[0]
        pixel_ids = torch.where(surface, slot[rows], torch.where(known, n, n + 1))  # [B, H, W]

        w = mapper.inference_rows(needed, z, truncation).to(mask.dtype)
        layer = self.global_mask
        weight = (layer.weight[:, :, 0, 0] * layer.weight_gain).to(w.dtype)  # [D, D + 3]: [P*Em, mask, border, Em]
        d = w.shape[1]
        pre = torch.cat((torch.addmm(weight[:, d + 2], w, weight[:, :d].t()), weight[:, d : d + 2].t()))
        if layer.bias is not None:
            pre = pre + layer.bias.to(pre.dtype)
        table = activate(pre, layer.activation) * ACTIVATION_GAIN[layer.activation]  # [R + 2, D]

        full = tuple(mask.shape[2:])
        style = None
        pyramid: dict[tuple[int, int], torch.Tensor] = {}
        gammas = []
        for (_, height, width), head in zip(self.gamma_shapes, self.dec_layers):
            conv = head.mlp
            head_weight = (conv.weight[:, :, 0, 0] * conv.weight_gain).to(table.dtype)
            head_bias = conv.bias.to(table.dtype) if conv.bias is not None else None
            if (height, width) == full:  # linear head on the table, then gather
                values = torch.addmm(head_bias, table, head_weight.t()) if head_bias is not None else table @ head_weight.t()
                values = activate(values, conv.activation) * ACTIVATION_GAIN[conv.activation]
                gammas.append(gather_pixels(values, pixel_ids))
                continue
            if style is None:  # S at full resolution and the pyramid below it
                style = gather_pixels(table, pixel_ids)
                pyramid[full] = style
                while style.shape[2] > min(shape[1] for shape in self.gamma_shapes):
                    size = (style.shape[2] // 2, style.shape[3] // 2)
                    style = F.interpolate(style, size=size, mode="bilinear", align_corners=True)
                    pyramid[size] = style
            if (height, width) not in pyramid:
                raise InputError(f"no style map of size {(height, width)}; the pyramid has {sorted(pyramid)}")
            gammas.append(head(pyramid[(height, width)]))
        return gammas
