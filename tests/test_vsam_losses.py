"""Properties of the V-SAM losses and of the compositing gradient (SPEC §3.3, §5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.core.errors import ConfigError
from sganon.plugins.vsam.generator import CompositeKnown
from sganon.plugins.vsam.losses import (
    EpsilonPenalty,
    NonSaturatingLoss,
    R1Penalty,
    SurfaceSupervisionLoss,
    masked_smooth_l1,
)

N, H, W = 2, 12, 8


def masks(seed: int, known_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary ``mask`` (1 = known) and ``border`` (a subset of the unknown pixels)."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(N, 1, H, W, generator=g) < known_fraction).float()
    mask[:, :, 0, 0] = 0  # at least one unknown pixel per sample
    border = (1 - mask) * (torch.rand(N, 1, H, W, generator=g) < 0.3).float()
    border[:, :, 0, 0] = 0  # and one surface pixel
    return mask, border


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), known=st.floats(0.0, 0.9))
def test_surface_loss_ignores_everything_outside_the_surface_region(seed, known):
    mask, border = masks(seed, known)
    g = torch.Generator().manual_seed(seed + 1)
    pred, target, noise = (torch.randn(N, 16, H, W, generator=g) * 2 for _ in range(3))
    region = 1 - mask - border
    changed = pred + noise * (1 - region)  # different predictions off the surface
    assert torch.equal(masked_smooth_l1(pred, target, region), masked_smooth_l1(changed, target, region))
    expected = F.smooth_l1_loss(pred * region, target * region, reduction="none").sum((1, 2, 3)) / region.sum((1, 2, 3))
    assert torch.allclose(masked_smooth_l1(pred, target, region), expected)
    loss = SurfaceSupervisionLoss(l1_weight=0.1, lambda_real=1.0, lambda_fake=0.5)
    d = loss("D", target, mask, border, real_surface=pred, fake_surface=changed)
    assert torch.allclose(d, 0.1 * (expected + 0.5 * masked_smooth_l1(changed, target, region)))
    assert torch.allclose(loss("G", target, mask, border, fake_surface=pred), 0.1 * expected)


def test_surface_loss_of_a_crop_without_surface_is_zero():
    mask = torch.ones(N, 1, H, W)
    loss = masked_smooth_l1(torch.randn(N, 16, H, W), torch.randn(N, 16, H, W), 1 - mask)
    assert torch.equal(loss, torch.zeros(N))


@settings(max_examples=25, deadline=None)
@given(real=st.lists(st.floats(-20, 20), min_size=N, max_size=N), fake=st.lists(st.floats(-20, 20), min_size=N, max_size=N))
def test_nonsaturating_and_epsilon_per_sample(real, fake):
    sr, sf = torch.tensor(real).view(N, 1), torch.tensor(fake).view(N, 1)
    nsgan = NonSaturatingLoss()
    assert torch.allclose(nsgan("D", real_score=sr, fake_score=sf), F.softplus(-sr).flatten() + F.softplus(sf).flatten())
    assert torch.allclose(nsgan("G", fake_score=sf), F.softplus(-sf).flatten())
    assert torch.allclose(EpsilonPenalty()(sr), 0.001 * sr.flatten() ** 2)


def test_loss_steps_are_checked():
    with pytest.raises(ConfigError, match="step"):
        NonSaturatingLoss()("both", fake_score=torch.zeros(N, 1))
    with pytest.raises(ConfigError, match="real_score"):
        NonSaturatingLoss()("D", fake_score=torch.zeros(N, 1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), known=st.floats(0.0, 0.9))
def test_r1_measures_the_gradient_on_unknown_pixels_only(seed, known):
    """For a score linear in the image, dS/dimg is its weight: r has a closed form."""
    mask, _ = masks(seed, known)
    g = torch.Generator().manual_seed(seed + 2)
    weight = torch.randn(N, 3, H, W, generator=g, dtype=torch.float64)
    img = torch.randn(N, 3, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    score = (img * weight).sum((1, 2, 3)).view(N, 1)
    r1 = R1Penalty(weight=5.0, lazy_interval=16)
    unknown = 1 - mask.double()
    expected = ((weight * unknown) ** 2).sum((1, 2, 3)) * (3 * H * W) / unknown.sum((1, 2, 3))
    assert torch.allclose(r1.raw(score, img, mask.double()), expected)
    assert torch.allclose(r1(score, img, mask.double()), 40 * expected)
    assert [step for step in range(40) if r1.due(step)] == [0, 16, 32]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), known=st.floats(0.0, 0.95))
def test_compositing_copies_known_pixels_and_rescales_the_gradient(seed, known):
    mask, _ = masks(seed, known)
    g = torch.Generator().manual_seed(seed + 3)
    condition = torch.randn(N, 3, H, W, generator=g) * mask
    raw = torch.randn(N, 3, H, W, generator=g, requires_grad=True)
    upstream = torch.randn(N, 3, H, W, generator=g)
    img = CompositeKnown.apply(condition, raw, mask)
    known_pixels = mask.expand(-1, 3, -1, -1) == 1
    assert torch.equal(img[known_pixels], condition[known_pixels])
    assert torch.equal(img[~known_pixels], raw.detach()[~known_pixels])
    (grad,) = torch.autograd.grad(img, raw, upstream)
    unknown_fraction = 1 - mask.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(grad, upstream * (1 - mask) / unknown_fraction)
