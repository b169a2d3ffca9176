"""The surface-guided GAN as an mmengine model (SPEC §5-6).

:class:`SurfaceGuidedGAN` holds the generator, the discriminator, the EMA copy of the
generator and the loss components, and implements one training iteration in
:meth:`~SurfaceGuidedGAN.train_step` with an ``OptimWrapperDict(generator=...,
discriminator=...)``:

1. **D step**: G runs under ``no_grad`` in train mode with a fresh z and updates its
   ``w_avg``; D scores the real and the generated crops; loss = adversarial + surface
   supervision on real + epsilon penalty, plus the lazy R1 penalty on every
   ``r1_interval``-th D step (counted from the first, across resumes).
2. **G step**: fresh z, D frozen; loss = adversarial + surface supervision on fake.
3. **EMA**: ``p_ema <- p + beta (p_ema - p)``, ``beta = 0.5 ** (B_global / half_life)``;
   buffers copied.

In multi-process training each network's gradients are averaged across ranks before its
optimizer step (see :mod:`.distributed`).

Contracts with the components (all registered in ``MODELS``):

* generator: ``forward(condition, mask, border, embedding, vertices, z=None,
  update_w_avg=False) -> {"img": composited [N, 3, H, W], ...}``, drawing ``z`` itself
  when ``None``; optionally ``set_vertex_table(table [K, E])``;
* discriminator: ``forward(img, condition, mask) -> {"score": [N, 1], "surface": [N, E, H, W]}``;
* losses (V-SAM's ``NonSaturatingLoss``, ``SurfaceSupervisionLoss``, ``EpsilonPenalty``,
  ``R1Penalty``) called as ``adversarial(step, real_score=, fake_score=)``,
  ``surface(step, target, mask, border, real_surface=, fake_surface=)``,
  ``epsilon(real_score)``, ``r1(real_score, real_img, mask)`` with ``r1.lazy_interval``;
  each returns ``[N]``.

A training batch from the data loader holds ``img`` uint8 ``[N, 3, H, W]``, ``mask`` and
``border`` ``[N, 1, H, W]`` (0/1) and either ``vertices`` int ``[N, H, W]`` (with the
dataset's vertex table, given by :meth:`set_surface_table`) or ``embedding``
``[N, E, H, W]``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict

from ..data.augment import CropAugment
from ..errors import ConfigError, InputError
from ..registry import MODELS
from .distributed import average_gradients, world_size
from .ema import ema_beta, update_ema

#: Keys of the loss components, in the order their terms are logged.
LOSS_KEYS = ("adversarial", "surface", "epsilon", "r1")


@MODELS.register_module()
class SurfaceGuidedGAN(BaseModel):
    """Generator + discriminator + EMA generator + losses, trained by :meth:`train_step`.

    Args:
        generator: config of the generator (``MODELS``).
        discriminator: config of the discriminator (``MODELS``).
        losses: configs of the loss components by role: ``adversarial`` (required),
            ``surface``, ``epsilon``, ``r1`` (each optional).
        ema_half_life_images: half-life of the generator EMA in images (10 000).
        augment: :class:`~sganon.core.data.augment.CropAugment` options, or ``None``.
        data_preprocessor: mmengine data preprocessor config (moves batches to the device).
    """

    def __init__(
        self,
        generator: dict[str, Any],
        discriminator: dict[str, Any],
        losses: dict[str, dict[str, Any]],
        ema_half_life_images: float = 10_000,
        augment: dict[str, float] | None = None,
        data_preprocessor: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        unknown = set(losses) - set(LOSS_KEYS)
        if unknown or "adversarial" not in losses:
            raise ConfigError(
                f"losses must name an 'adversarial' term and may add {', '.join(LOSS_KEYS[1:])}; got {sorted(losses)}"
            )
        self.generator = MODELS.build(generator)
        self.discriminator = MODELS.build(discriminator)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.losses = torch.nn.ModuleDict({key: MODELS.build(cfg) for key, cfg in losses.items() if cfg is not None})
        self.ema_half_life_images = float(ema_half_life_images)
        self.augment = CropAugment(**augment) if augment else None
        # D steps taken so far; decides the lazy R1 steps and is saved with the weights.
        self.register_buffer("d_steps", torch.zeros((), dtype=torch.long))
        # The dataset's raw vertex table [K, E] and mirror map [K] (set by SurfaceTableHook).
        self.register_buffer("vertex_table", torch.zeros(0, 0), persistent=False)
        self.register_buffer("vertex_symmetry", torch.zeros(0, dtype=torch.long), persistent=False)

    @property
    def r1_interval(self) -> int | None:
        """D steps between R1 penalties (lazy regularisation), or ``None`` without R1."""
        return int(self.losses["r1"].lazy_interval) if "r1" in self.losses else None

    def set_surface_table(self, table: torch.Tensor, symmetry: torch.Tensor | None = None) -> None:
        """Use the dataset's vertex table ``[K, E]`` (unit rows) and mirror map ``[K]``.

        The table turns vertex ids into the surface embedding fed to G and supervised in
        D; generators with a vertex table of their own (V-SAM's mapper) get it too.
        """
        device = self.d_steps.device
        self.vertex_table = table.to(device=device, dtype=torch.float32)
        self.vertex_symmetry = (symmetry if symmetry is not None else torch.zeros(0, dtype=torch.long)).to(device)
        for generator in (self.generator, self.generator_ema):
            setter = getattr(generator, "set_vertex_table", None)
            if setter is not None:
                setter(table)
            else:
                print_log(
                    f"{type(generator).__name__} has no set_vertex_table(); its surface styles keep their own "
                    "vertex table while inputs and supervision use the dataset's",
                    logger="current",
                )

    # ------------------------------------------------------------------ data

    def prepare_batch(self, data: dict[str, torch.Tensor], augment: bool = True) -> dict[str, torch.Tensor]:
        """Device batch -> ``img`` in [-1, 1], ``mask``, ``border``, ``embedding``, ``vertices``, ``condition``."""
        img = data["img"].float() / 255 if data["img"].dtype == torch.uint8 else data["img"].float()
        batch = {"img": img, "mask": data["mask"].float(), "border": data["border"].float()}
        if "vertices" in data:
            batch["vertices"] = data["vertices"].long().reshape(img.shape[0], *img.shape[2:])
        elif "embedding" in data:
            batch["embedding"] = data["embedding"].float()
        else:
            raise InputError("a training batch needs 'vertices' or 'embedding' besides img, mask and border")
        if augment and self.augment is not None:
            symmetry = self.vertex_symmetry if self.vertex_symmetry.numel() else None
            batch = self.augment(batch, symmetry)
        surface = (1 - batch["mask"] - batch["border"]).clamp(min=0)
        if "vertices" in batch:
            vertices = batch["vertices"]
            if self.vertex_table.numel() == 0:
                raise ConfigError("the batch has vertex ids but no vertex table was set (SurfaceTableHook missing?)")
            if int(vertices.max()) >= self.vertex_table.shape[0] or int(vertices.min()) < 0:
                raise InputError(
                    f"vertex ids must lie in [0, {self.vertex_table.shape[0]}); the data was made for another mesh"
                )
            vertices = torch.where(surface[:, 0] > 0, vertices, torch.zeros_like(vertices))
            batch["vertices"] = vertices
            batch["embedding"] = self.vertex_table[vertices].permute(0, 3, 1, 2) * surface
        else:
            batch["embedding"] = batch["embedding"] * surface
            batch["vertices"] = None
        batch["img"] = batch["img"] * 2 - 1
        batch["condition"] = batch["img"] * batch["mask"]
        return batch

    def _generate(self, generator: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
        return generator(
            batch["condition"], batch["mask"], batch["border"], batch["embedding"], batch["vertices"], **kwargs
        )["img"]

    # ------------------------------------------------------------------ training

    def train_step(self, data: Any, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One D step, one G step and the EMA update; returns the values to log."""
        batch = self.prepare_batch(self.data_preprocessor(data, True))
        log = self._discriminator_step(batch, optim_wrapper["discriminator"])
        log.update(self._generator_step(batch, optim_wrapper["generator"]))
        images = batch["img"].shape[0] * world_size()
        update_ema(self.generator_ema, self.generator, ema_beta(images, self.ema_half_life_images))
        return log

    def _discriminator_step(self, batch: dict[str, torch.Tensor], optim_wrapper: Any) -> dict[str, torch.Tensor]:
        interval = self.r1_interval
        with_r1 = interval is not None and int(self.d_steps) % interval == 0
        real = batch["img"].detach().requires_grad_(with_r1)
        with optim_wrapper.optim_context(self.discriminator):
            with torch.no_grad():
                fake = self._generate(self.generator, batch, update_w_avg=True)
            real_out = self.discriminator(real, batch["condition"], batch["mask"])
            fake_out = self.discriminator(fake.detach(), batch["condition"], batch["mask"])
            adversarial = self.losses["adversarial"]("D", real_score=real_out["score"], fake_score=fake_out["score"])
            terms = {"adversarial": adversarial}
            if "surface" in self.losses:
                terms["surface"] = self.losses["surface"](
                    "D", batch["embedding"], batch["mask"], batch["border"],
                    real_surface=real_out["surface"], fake_surface=fake_out.get("surface"),
                )
            if "epsilon" in self.losses:
                terms["epsilon"] = self.losses["epsilon"](real_out["score"])
            if with_r1:
                terms["r1"] = self._r1(real_out["score"], real, batch["mask"], optim_wrapper)
            total = torch.stack([term.float() for term in terms.values()]).sum(dim=0).mean()
        optim_wrapper.backward(total)
        average_gradients(self.discriminator)
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        self.d_steps += 1
        log = {f"d_{name}": term.detach().mean() for name, term in terms.items()}
        log.update(
            loss_d=total.detach(),
            real_score=real_out["score"].detach().float().mean(),
            fake_score=fake_out["score"].detach().float().mean(),
        )
        return log

    def _r1(self, real_score: torch.Tensor, real: torch.Tensor, mask: torch.Tensor, optim_wrapper: Any) -> torch.Tensor:
        """R1 with the gradient scaler's factor under fp16, so small gradients do not underflow.

        The penalty is quadratic in the gradient, so scaling the scores by s and dividing
        the penalty by s**2 gives the same value (the paper's code scales likewise).
        """
        scaler = getattr(optim_wrapper, "loss_scaler", None)
        scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0
        if scale == 1.0:
            return self.losses["r1"](real_score, real, mask)
        return self.losses["r1"](real_score.float() * scale, real, mask) / scale**2

    def _generator_step(self, batch: dict[str, torch.Tensor], optim_wrapper: Any) -> dict[str, torch.Tensor]:
        self.discriminator.requires_grad_(False)
        try:
            with optim_wrapper.optim_context(self.generator):
                fake = self._generate(self.generator, batch)
                fake_out = self.discriminator(fake, batch["condition"], batch["mask"])
                terms = {"adversarial": self.losses["adversarial"]("G", fake_score=fake_out["score"])}
                if "surface" in self.losses:
                    terms["surface"] = self.losses["surface"](
                        "G", batch["embedding"], batch["mask"], batch["border"], fake_surface=fake_out["surface"]
                    )
                total = torch.stack([term.float() for term in terms.values()]).sum(dim=0).mean()
            optim_wrapper.backward(total)
        finally:
            self.discriminator.requires_grad_(True)
        average_gradients(self.generator)
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        log = {f"g_{name}": term.detach().mean() for name, term in terms.items()}
        log["loss_g"] = total.detach()
        return log

    # ------------------------------------------------------------------ inference helpers

    @torch.no_grad()
    def sample_rows(
        self, data: dict[str, torch.Tensor], num_latents: int, rng: torch.Generator
    ) -> list[torch.Tensor]:
        """Rows of a sample grid from the EMA generator, each ``[N, 3, H, W]`` in [-1, 1].

        ``[real, condition, sample_1, ..., sample_num_latents]``; the latents come from ``rng``.
        """
        device = self.d_steps.device
        batch = self.prepare_batch({k: v.to(device) for k, v in data.items()}, augment=False)
        rows = [batch["img"], batch["condition"]]
        generator = self.generator_ema.eval()
        z_channels = getattr(generator, "z_channels", None)
        if z_channels is None:  # drawing z inside G would consume the training RNG
            raise ConfigError(f"{type(generator).__name__} must expose z_channels for sample grids and metrics")
        for _ in range(num_latents):
            z = torch.randn(batch["img"].shape[0], z_channels, generator=rng).to(device)
            rows.append(self._generate(generator, batch, z=z).float().clamp(-1, 1))
        return rows

    def forward(self, inputs: Any = None, data_samples: Any = None, mode: str = "tensor") -> Any:
        """Not used in training (see :meth:`train_step`); generates with the EMA generator."""
        if mode != "tensor":
            raise ConfigError(f"SurfaceGuidedGAN supports only mode='tensor', got {mode!r}")
        return self._generate(self.generator_ema, self.prepare_batch(inputs, augment=False))
