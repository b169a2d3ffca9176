"""Training objectives of the surface-guided GAN (SPEC §5) as registered loss components.

Every loss returns a per-sample loss ``[N]``; the training step averages the sum of its
terms over the batch. The terms of config E:

* D step: ``nsgan(step="D") + surface-l1(step="D") + epsilon + r1`` (r1 on lazy steps only)
* G step: ``nsgan(step="G") + surface-l1(step="G")``

:func:`discriminator_losses` and :func:`generator_losses` run D and evaluate those terms in
the reference order; a trainer may use them directly or call the components itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sganon.core.errors import ConfigError
from sganon.core.interfaces import Loss
from sganon.core.registry import MODELS

STEPS = ("D", "G")


def check_step(step: str) -> None:
    if step not in STEPS:
        raise ConfigError(f"loss step must be 'D' or 'G', got {step!r}")


def per_sample(score: torch.Tensor) -> torch.Tensor:
    """``[N, 1]`` (or ``[N]``) scores -> ``[N]``."""
    return score.reshape(score.shape[0])


@MODELS.register_module()
class NonSaturatingLoss(Loss):
    """Non-saturating logistic GAN loss.

    ``forward(step, real_score=None, fake_score=None) -> [N]``:

    * ``step="D"``: ``softplus(-real_score) + softplus(fake_score)`` (both ``[N, 1]``);
    * ``step="G"``: ``softplus(-fake_score)`` (``fake_score`` ``[N, 1]`` from D on G's
      output, gradients flowing into G).

    Args:
        weight: multiplies the loss (1 in the paper).
    """

    name: ClassVar[str] = "nsgan"
    description: ClassVar[str] = "non-saturating logistic GAN loss (D and G steps)"
    steps: ClassVar[tuple[str, ...]] = ("D", "G")

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return {"weight": 1.0}

    def forward(
        self,
        step: str,
        real_score: torch.Tensor | None = None,
        fake_score: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_step(step)
        if fake_score is None or (step == "D" and real_score is None):
            raise ConfigError("nsgan needs fake_score, and real_score on the D step")
        if step == "D":
            loss = F.softplus(-per_sample(real_score)) + F.softplus(per_sample(fake_score))
        else:
            loss = F.softplus(-per_sample(fake_score))
        return loss * self.weight if self.weight != 1 else loss


def masked_smooth_l1(prediction: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``sum_{c,y,x} smoothL1(pred*M, target*M) / sum_{y,x} M`` per sample (beta 1).

    Args:
        prediction: ``[N, C, H, W]`` predicted surface map.
        target: ``[N, C, H, W]`` target surface embedding.
        region: ``[N, 1, H, W]`` M, the pixels that carry a surface coordinate.
    """
    loss = F.smooth_l1_loss(prediction * region, target * region, reduction="none", beta=1.0)
    # A crop without surface pixels gives 0, not 0/0 (masks are binary: a non-empty sum is >= 1).
    return loss.sum(dim=(1, 2, 3)) / region.sum(dim=(1, 2, 3)).clamp_min(1.0)


@MODELS.register_module()
class SurfaceSupervisionLoss(Loss):
    """Masked smooth-L1 between D's predicted surface map and the true embedding.

    ``forward(step, target, mask, border, real_surface=None, fake_surface=None) -> [N]``
    with ``target`` ``[N, C, H, W]`` the surface embedding (zeros off the body), ``mask``
    and ``border`` ``[N, 1, H, W]``; the supervised region is ``1 - mask - border``.

    * ``step="D"``: ``l1_weight * (lambda_real * l(real_surface) + lambda_fake * l(fake_surface))``
      (``fake_surface`` only needed when ``lambda_fake != 0``);
    * ``step="G"``: ``l1_weight * l(fake_surface)`` (D on G's output, gradients into G).

    Args:
        l1_weight: weight of the term (0.1 in config E).
        lambda_real: weight of D's prediction on real images in the D step.
        lambda_fake: weight of D's prediction on generated images in the D step.
    """

    name: ClassVar[str] = "surface-l1"
    description: ClassVar[str] = "masked smooth-L1 supervision of D's surface-map prediction (D on real, G on fake)"
    steps: ClassVar[tuple[str, ...]] = ("D", "G")

    def __init__(self, l1_weight: float = 0.1, lambda_real: float = 1.0, lambda_fake: float = 0.0) -> None:
        super().__init__()
        self.l1_weight = l1_weight
        self.lambda_real = lambda_real
        self.lambda_fake = lambda_fake

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return {"l1_weight": 0.1, "lambda_real": 1.0, "lambda_fake": 0.0}

    def forward(
        self,
        step: str,
        target: torch.Tensor,
        mask: torch.Tensor,
        border: torch.Tensor,
        real_surface: torch.Tensor | None = None,
        fake_surface: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_step(step)
        region = 1 - (mask + border)
        if step == "G":
            if fake_surface is None:
                raise ConfigError("surface-l1 needs fake_surface on the G step")
            return self.l1_weight * masked_smooth_l1(fake_surface, target, region)
        if real_surface is None:
            raise ConfigError("surface-l1 needs real_surface on the D step")
        loss = self.lambda_real * masked_smooth_l1(real_surface, target, region)
        if self.lambda_fake != 0:
            if fake_surface is None:
                raise ConfigError("surface-l1 with lambda_fake != 0 needs fake_surface on the D step")
            loss = loss + self.lambda_fake * masked_smooth_l1(fake_surface, target, region)
        return self.l1_weight * loss


@MODELS.register_module()
class EpsilonPenalty(Loss):
    """Keeps D's real scores near zero: ``weight * real_score**2``.

    ``forward(real_score) -> [N]`` (D step only), ``real_score`` ``[N, 1]``.

    Args:
        weight: 0.001 in the paper.
    """

    name: ClassVar[str] = "epsilon"
    description: ClassVar[str] = "epsilon penalty on D's real scores"
    steps: ClassVar[tuple[str, ...]] = ("D",)

    def __init__(self, weight: float = 0.001) -> None:
        super().__init__()
        self.weight = weight

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return {"weight": 0.001}

    def forward(self, real_score: torch.Tensor) -> torch.Tensor:
        return self.weight * per_sample(real_score).square()


@MODELS.register_module()
class R1Penalty(Loss):
    """Lazy R1 gradient penalty on real images, restricted to the generated region.

    ``forward(real_score, real_img, mask) -> [N]`` (D step, only when :meth:`due`):
    ``real_img`` ``[N, 3, H, W]`` must have had ``requires_grad=True`` *before* the D
    forward that produced ``real_score`` ``[N, 1]``; the graph is kept for the double
    backward. With ``mask_out``: ``g = dSr/dimg * (1 - mask)`` and
    ``r = sum g**2 * (C*H*W) / sum_{y,x} (1 - mask)``; the result is
    ``r * weight * lazy_interval / 2`` (= 40 r in the paper).

    Args:
        weight: R1 weight gamma (5 in the paper).
        lazy_interval: apply every this many D steps (16), scaling the penalty up by it.
        mask_out: restrict the penalty to unknown pixels and rescale by their share.
    """

    name: ClassVar[str] = "r1"
    description: ClassVar[str] = "lazy R1 gradient penalty masked to the generated region"
    steps: ClassVar[tuple[str, ...]] = ("D",)

    def __init__(self, weight: float = 5.0, lazy_interval: int = 16, mask_out: bool = True) -> None:
        super().__init__()
        if lazy_interval < 1:
            raise ConfigError(f"r1 lazy_interval must be >= 1, got {lazy_interval}")
        self.weight = weight
        self.lazy_interval = lazy_interval
        self.mask_out = mask_out

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return {"weight": 5.0, "lazy_interval": 16, "mask_out": True}

    def due(self, d_step: int) -> bool:
        """Whether D step number ``d_step`` (counting from 0) carries the penalty."""
        return d_step % self.lazy_interval == 0

    @property
    def multiplier(self) -> float:
        return self.weight * self.lazy_interval / 2

    def raw(self, real_score: torch.Tensor, real_img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The unweighted penalty r ``[N]``."""
        (gradient,) = torch.autograd.grad(real_score.sum(), real_img, create_graph=True)
        if not self.mask_out:
            return gradient.square().sum(dim=(1, 2, 3))
        unknown = 1 - mask
        gradient = gradient * unknown
        elements = gradient[0].numel()
        # clamp: a crop with nothing to generate has no penalty (a non-empty binary sum is >= 1)
        return gradient.square().sum(dim=(1, 2, 3)) * elements / unknown.sum(dim=(1, 2, 3)).clamp_min(1.0)

    def forward(self, real_score: torch.Tensor, real_img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.raw(real_score, real_img, mask) * self.multiplier


def discriminator_losses(
    discriminator: torch.nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    condition: torch.Tensor,
    mask: torch.Tensor,
    border: torch.Tensor,
    embedding: torch.Tensor,
    adversarial: NonSaturatingLoss,
    surface: SurfaceSupervisionLoss | None,
    epsilon: EpsilonPenalty | None,
    r1: R1Penalty | None = None,
) -> dict[str, torch.Tensor]:
    """The D step's per-sample terms and ``"total"`` (batch mean of their sum).

    Args:
        discriminator: D, trainable.
        real: ``[N, 3, H, W]`` real images.
        fake: ``[N, 3, H, W]`` G's composited output (detached by this function).
        condition, mask, border, embedding: the batch's G/D inputs.
        adversarial, surface, epsilon: loss components (``None`` skips a term).
        r1: given on lazy-regularisation steps only.

    Returns:
        ``{"adversarial", "surface", "epsilon", "r1" (each [N], if used), "real_score",
        "fake_score" ([N, 1]), "real_surface", "fake_surface" (D's maps or None), "total"
        (scalar)}``.
    """
    if r1 is not None:
        real = real.detach().requires_grad_(True)
    real_out = discriminator(real, condition, mask)
    fake_out = discriminator(fake.detach(), condition, mask)
    terms = {"adversarial": adversarial("D", real_score=real_out["score"], fake_score=fake_out["score"])}
    if surface is not None:
        terms["surface"] = surface(
            "D", embedding, mask, border, real_surface=real_out["surface"], fake_surface=fake_out.get("surface")
        )
    if epsilon is not None:
        terms["epsilon"] = epsilon(real_out["score"])
    if r1 is not None:
        terms["r1"] = r1(real_out["score"], real, mask)
    total = torch.stack(list(terms.values())).sum(dim=0).mean()
    return {
        **terms,
        "real_score": real_out["score"],
        "fake_score": fake_out["score"],
        "real_surface": real_out.get("surface"),
        "fake_surface": fake_out.get("surface"),
        "total": total,
    }


def generator_losses(
    discriminator: torch.nn.Module,
    fake: torch.Tensor,
    condition: torch.Tensor,
    mask: torch.Tensor,
    border: torch.Tensor,
    embedding: torch.Tensor,
    adversarial: NonSaturatingLoss,
    surface: SurfaceSupervisionLoss | None,
) -> dict[str, torch.Tensor]:
    """The G step's per-sample terms and ``"total"``; gradients flow through D into ``fake``.

    Returns:
        ``{"adversarial", "surface" (each [N], if used), "fake_score", "total" (scalar)}``.
    """
    fake_out = discriminator(fake, condition, mask)
    terms = {"adversarial": adversarial("G", fake_score=fake_out["score"])}
    if surface is not None:
        terms["surface"] = surface("G", embedding, mask, border, fake_surface=fake_out["surface"])
    total = torch.stack(list(terms.values())).sum(dim=0).mean()
    return {**terms, "fake_score": fake_out["score"], "total": total}
