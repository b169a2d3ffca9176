"""The generator's inference fast path (no autograd) equals its plain training-path forward.

Under ``torch.no_grad`` the generator computes the styles per distinct (sample, vertex)
row and gathers them, splits the mapper's first layer, folds gains and runs the layer
epilogues in place (see docs/vsam.md, "Inference speed"). With autograd enabled it runs
the plain forward. Both must agree up to float rounding.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sganon.plugins.vsam import VSAMGenerator
from sganon.plugins.vsam.layers import fir, fir_inference
from test_vsam_model import SMALL, g_inputs, make_batch

TOLERANCE = 1e-4


def perturbed_generator(style: str, seed: int = 0) -> VSAMGenerator:
    """A small generator whose parameters and w_avg are all non-trivial (like the reference vectors)."""
    torch.manual_seed(seed)
    generator = VSAMGenerator(**{**SMALL, "style": style}).eval()
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p), alpha=0.2 if p.dim() == 1 else 0.1)
        if style != "none":
            mapper = generator.style_net
            mapper.global_mask.weight[:, -3:] = 0.5 * torch.randn_like(mapper.global_mask.weight[:, -3:])
            mapper.E_map.w_avg.normal_(0, 0.5)
    return generator


@pytest.fixture(scope="module")
def generators():
    return {style: perturbed_generator(style) for style in ("vsam", "sam", "none")}


def both_paths(generator, inputs, z, truncation):
    with torch.no_grad():
        fast = generator(*inputs, z=z, truncation=truncation)
    plain = generator(*inputs, z=z, truncation=truncation)  # autograd on: the training path
    return fast, plain


def max_error(fast, plain) -> float:
    return max((fast[k] - plain[k].detach()).abs().max().item() for k in ("img", "img_raw"))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3),
    truncation=st.sampled_from([None, 0.0, 0.3, 1.0]),
    style=st.sampled_from(["vsam", "sam", "none"]),
)
def test_fast_inference_equals_the_training_path(generators, seed, n, truncation, style):
    batch = make_batch(n, seed)
    z = torch.randn(n, SMALL["z_channels"], generator=torch.Generator().manual_seed(seed))
    fast, plain = both_paths(generators[style], g_inputs(batch), z, truncation)
    assert max_error(fast, plain) <= TOLERANCE
    assert plain["img_raw"].abs().max().item() > 1e-2  # the comparison is not between zeros


def test_fast_inference_in_float64_and_channels_last_inputs(generators):
    generator = perturbed_generator("vsam", seed=3).double()
    batch = make_batch(2, 5)
    inputs = [t.double() if t.is_floating_point() else t for t in g_inputs(batch)]
    z = torch.randn(2, SMALL["z_channels"], dtype=torch.float64)
    fast, plain = both_paths(generator, inputs, z, 0.5)
    assert max_error(fast, plain) <= 1e-10
    channels_last = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in g_inputs(batch)]
    fast, plain = both_paths(generators["vsam"], channels_last, z.float(), 0.5)
    assert max_error(fast, plain) <= TOLERANCE


def test_soft_masks_fall_back_to_the_plain_styles(generators):
    """Non-0/1 masks: the per-row table does not apply; the fast path must notice and still agree."""
    batch = make_batch(2, 7)
    batch["border"] = batch["border"] * 0.5
    batch["mask"] = batch["mask"] * 0.75
    generator = generators["vsam"]
    with torch.no_grad():
        assert generator.style_net.inference_gammas(
            batch["vertices"], batch["mask"], batch["border"], torch.randn(2, SMALL["z_channels"]), 0.5
        ) is None
    fast, plain = both_paths(generator, g_inputs(batch), torch.randn(2, SMALL["z_channels"]), 0.5)
    assert max_error(fast, plain) <= TOLERANCE


def test_crops_without_surface_pixels(generators):
    batch = make_batch(2, 9)
    batch["border"] = batch["border"] + (1 - batch["mask"] - batch["border"])  # person -> border
    batch["vertices"] = torch.zeros_like(batch["vertices"])
    fast, plain = both_paths(generators["vsam"], g_inputs(batch), torch.randn(2, SMALL["z_channels"]), 0.5)
    assert max_error(fast, plain) <= TOLERANCE


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), truncation=st.sampled_from([None, 0.0, 0.5]))
def test_inference_rows_equal_the_mapped_rows(generators, seed, truncation):
    mapper = generators["vsam"].style_net.E_map
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, SMALL["z_channels"], generator=g)
    rows = torch.randperm(3 * mapper.n_vertices, generator=g)[:50].sort().values
    with torch.no_grad():
        expected = generators["vsam"].mapped_latents(z, truncation)[rows]
        assert (mapper.inference_rows(rows, z, truncation) - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("gain", [1.0, 4.0])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fir_inference_equals_fir(gain, channels_last):
    x = torch.randn(2, 5, 13, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():  # the autograd path of fir
        expected = fir(x, gain)
    assert (fir_inference(x, gain) - expected).abs().max().item() <= 1e-5


def test_training_path_keeps_autograd(generators):
    """With autograd on, every parameter of the mapper still gets a gradient (no in-place shortcuts)."""
    generator = perturbed_generator("vsam", seed=4).train()
    batch = make_batch(2, 11)
    out = generator(*g_inputs(batch), z=torch.randn(2, SMALL["z_channels"]))
    out["img"].square().mean().backward()
    missing = [name for name, p in generator.named_parameters() if p.grad is None]
    assert not missing
