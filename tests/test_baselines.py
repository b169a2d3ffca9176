"""Baselines never change a pixel outside their region; inside they do what they say."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.core import ConfigError, CropBatch
from sganon.plugins.baselines import GaussianBlur, MaskOut, Pixelate

BASELINES = [
    MaskOut("black"),
    MaskOut("noise"),
    MaskOut("mean"),
    GaussianBlur(),
    Pixelate(8),
    Pixelate(16),
]


def make_batch(seed: int, n: int, height: int, width: int, density: float) -> CropBatch:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, height, width, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, height, width, generator=g) > density).float()
    zeros = torch.zeros_like(mask)
    return CropBatch(image=image, mask=mask, border=zeros, embedding=torch.zeros(n, 0, height, width))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 48), st.integers(1, 48), st.floats(0, 1),
    st.sampled_from(range(len(BASELINES))),
)
def test_pixels_outside_the_region_are_untouched(seed, n, height, width, density, which):
    batch = make_batch(seed, n, height, width, density)
    out = BASELINES[which].anonymize(batch, rng=torch.Generator().manual_seed(seed))
    assert out.shape == batch.image.shape
    known = batch.mask.bool().expand_as(out)
    assert torch.equal(out[known], batch.image[known])
    assert out.min() >= -1 and out.max() <= 1


def test_mask_out_fills():
    batch = make_batch(0, 2, 20, 10, 0.5)
    region = ~batch.mask.bool().expand_as(batch.image)
    assert (MaskOut("black").anonymize(batch)[region] == -1).all()
    mean = MaskOut("mean").anonymize(batch)
    weight = (1 - batch.mask)
    expected = (batch.image * weight).sum((2, 3)) / weight.sum((2, 3))
    assert torch.allclose(mean[0, :, ~batch.mask[0, 0].bool()].T, expected[0].expand(int(weight[0].sum()), 3))
    a = MaskOut("noise").anonymize(batch, rng=torch.Generator().manual_seed(1))
    b = MaskOut("noise").anonymize(batch, rng=torch.Generator().manual_seed(1))
    c = MaskOut("noise").anonymize(batch, rng=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pixelate_makes_uniform_blocks_across_the_person():
    image = torch.rand(1, 3, 96, 64) * 2 - 1
    mask = torch.ones(1, 1, 96, 64)
    mask[:, :, 8:88, 0:64] = 0  # person spans the full width: 8 blocks of 8 px
    batch = CropBatch(image, mask, torch.zeros_like(mask), torch.zeros(1, 0, 96, 64))
    out = Pixelate(8).anonymize(batch)
    block = out[0, :, 8:16, 8:16]
    assert torch.allclose(block, block[:, :1, :1].expand_as(block))
    assert torch.allclose(block[:, 0, 0], image[0, :, 8:16, 8:16].mean((1, 2)), atol=1e-6)
    assert len(torch.unique(out[0, 0, 8:88, :])) == 10 * 8


def test_blur_smooths_the_region():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    mask = torch.ones(1, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 0
    batch = CropBatch(image, mask, torch.zeros_like(mask), torch.zeros(1, 0, 64, 64))
    out = GaussianBlur().anonymize(batch)
    assert out[0, :, 16:48, 16:48].std() < 0.5 * image[0, :, 16:48, 16:48].std()


@pytest.mark.parametrize("make", [lambda: MaskOut("purple"), lambda: Pixelate(0), lambda: GaussianBlur(-1)])
def test_bad_arguments_are_config_errors(make):
    with pytest.raises(ConfigError):
        make()


def test_empty_region_returns_the_input():
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    mask = torch.ones(1, 1, 8, 8)
    batch = CropBatch(image, mask, torch.zeros_like(mask), torch.zeros(1, 0, 8, 8))
    for baseline in BASELINES:
        assert torch.equal(baseline.anonymize(batch), image)


def test_pixelation_blocks_do_not_shrink_below_min_block_on_small_people():
    """16 blocks across a person 24 pixels wide would be 1.5-pixel blocks, which leave a small
    person as they were: blocks are at least ``min_block`` (6 by default) pixels."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 48, 24, generator=g) * 2 - 1
    zeros = torch.zeros(1, 1, 48, 24)
    batch = CropBatch(image=image, mask=zeros, border=zeros, embedding=torch.zeros(1, 0, 48, 24))
    for pixelate, side in ((Pixelate(16), 6), (Pixelate(16, min_block=4), 4)):
        out = pixelate.anonymize(batch)[0]
        for y in range(0, 48, side):
            for x in range(0, 24, side):
                block = out[:, y : y + side, x : x + side]
                assert torch.allclose(block, block[:, :1, :1].expand_as(block))  # one colour per block
        assert not torch.allclose(out[:, :side, :side], out[:, :side, side : 2 * side])
