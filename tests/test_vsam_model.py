"""Properties of the V-SAM generator and discriminator (small models built here)."""

from __future__ import annotations

import pytest
import torch
from sganon.core.capabilities import GeneratorCapabilities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sganon.core.components import build_component, component_class
from sganon.core.errors import ConfigError, InputError
from sganon.core.structures import CropBatch
from sganon.plugins.vsam import PAPER_CONFIGS, FPNSurfaceDiscriminator, VSAMGenerator
from sganon.plugins.vsam.losses import (
    EpsilonPenalty,
    NonSaturatingLoss,
    R1Penalty,
    SurfaceSupervisionLoss,
    discriminator_losses,
    generator_losses,
)
from sganon.plugins.vsam.mapper import random_vertex_table

H, W = 72, 40
K = 300
SMALL = {
    "resolution": [H, W],
    "cnum": 4,
    "min_fmap_resolution": 16,
    "z_channels": 8,
    "n_vertices": K,
    "mapper": {"hidden_dim": 8, "out_dim": 6},
}
SMALL_D = {"resolution": [H, W], "cnum": 4, "fpn_channels": 16}


def make_batch(n: int, seed: int, surface_channels: int = 16) -> dict[str, torch.Tensor]:
    """Crops with an elliptical person (E_mask), a ring border around it, the rest known."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(H).view(1, H, 1).float()
    x = torch.arange(W).view(1, 1, W).float()
    cy = torch.randint(H // 4, 3 * H // 4, (n, 1, 1), generator=g).float()
    cx = torch.randint(W // 4, 3 * W // 4, (n, 1, 1), generator=g).float()
    ry = torch.randint(8, H // 3, (n, 1, 1), generator=g).float()
    rx = torch.randint(4, W // 3, (n, 1, 1), generator=g).float()
    d = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    person = (d <= 1).float()[:, None]
    dilated = (d <= 1.4).float()[:, None]
    mask = 1 - dilated
    border = dilated - person
    table = random_vertex_table(K, surface_channels, seed=1)
    vertices = torch.randint(0, K, (n, H, W), generator=g) * person[:, 0].long()
    embedding = table[vertices].permute(0, 3, 1, 2) * person
    img = torch.rand(n, 3, H, W, generator=g) * 2 - 1
    return {
        "img": img,
        "condition": img * mask,
        "mask": mask,
        "border": border,
        "embedding": embedding,
        "vertices": vertices,
    }


def g_inputs(batch):
    return [batch[k] for k in ("condition", "mask", "border", "embedding", "vertices")]


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return VSAMGenerator(**SMALL).eval()


@pytest.fixture(scope="module")
def discriminator():
    torch.manual_seed(1)
    return FPNSurfaceDiscriminator(**SMALL_D)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3), truncation=st.sampled_from([None, 0.0, 0.3, 1.0]))
def test_known_pixels_are_copied_exactly(generator, seed, n, truncation):
    batch = make_batch(n, seed)
    with torch.no_grad():
        out = generator(*g_inputs(batch), truncation=truncation, rng=torch.Generator().manual_seed(seed))
    known = batch["mask"].expand(-1, 3, -1, -1) == 1
    assert torch.equal(out["img"][known], batch["img"][known])
    assert torch.equal(out["img"][~known], out["img_raw"][~known])


@pytest.mark.parametrize("letter", list(PAPER_CONFIGS))
def test_z_matters_only_when_truncation_is_positive(letter):
    torch.manual_seed(0)
    g = VSAMGenerator(**{**SMALL, **PAPER_CONFIGS[letter], "cnum": 4}).eval()
    batch = make_batch(2, 3)
    z1, z2 = torch.randn(2, 2, SMALL["z_channels"])
    with torch.no_grad():
        for t in (None, 0.5):
            a, b = (g(*g_inputs(batch), z=z, truncation=t)["img_raw"] for z in (z1, z2))
            assert (a - b).abs().max() > 1e-4, f"config {letter}: z has no effect at truncation {t}"
        a, b = (g(*g_inputs(batch), z=z, truncation=0.0)["img_raw"] for z in (z1, z2))
        assert torch.equal(a, b), f"config {letter}: z changes the output at truncation 0"


def test_truncation_interpolates_towards_w_avg(generator):
    mapper = generator.style_net.E_map
    z = torch.randn(2, SMALL["z_channels"])
    with torch.no_grad():
        w = mapper.map_network(z)
        assert torch.equal(generator.mapped_latents(z, 0.0), mapper.average_w(2))
        assert torch.allclose(generator.mapped_latents(z, 1.0), w)
        half = generator.mapped_latents(z, 0.5)
    assert torch.allclose(half, 0.5 * (w + mapper.average_w(2)), atol=1e-6)


@pytest.mark.parametrize("letter", list(PAPER_CONFIGS))
def test_every_parameter_receives_a_gradient(letter):
    torch.manual_seed(0)
    g = VSAMGenerator(**{**SMALL, **PAPER_CONFIGS[letter], "cnum": 4}).train()
    d = FPNSurfaceDiscriminator(**SMALL_D).train()
    batch = make_batch(2, 5)
    adversarial, surface, epsilon, r1 = NonSaturatingLoss(), SurfaceSupervisionLoss(), EpsilonPenalty(), R1Penalty()
    with torch.no_grad():
        fake = g(*g_inputs(batch))["img"]
    terms = discriminator_losses(
        d, batch["img"], fake, batch["condition"], batch["mask"], batch["border"], batch["embedding"],
        adversarial, surface, epsilon, r1,
    )
    terms["total"].backward()
    missing = [k for k, p in d.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == [], f"D parameters without gradient: {missing}"
    d.requires_grad_(False)
    out = g(*g_inputs(batch))
    terms = generator_losses(
        d, out["img"], batch["condition"], batch["mask"], batch["border"], batch["embedding"], adversarial, surface
    )
    terms["total"].backward()
    missing = [k for k, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == [], f"G parameters without gradient (config {letter}): {missing}"


@pytest.mark.parametrize("letter", list(PAPER_CONFIGS))
def test_paper_config_shapes(letter):
    args = VSAMGenerator.paper_config(letter, resolution=[H, W], min_fmap_resolution=16, n_vertices=K,
                                      z_channels=8, mapper={"hidden_dim": 8, "out_dim": 6})
    g = VSAMGenerator(**args).eval()
    batch = make_batch(3, 7)
    with torch.no_grad():
        out = g(*g_inputs(batch))
    assert out["img"].shape == out["img_raw"].shape == (3, 3, H, W)
    keys = g.state_dict().keys()
    assert ("z_projector.projector.weight" in keys) == (letter in "ABC")
    assert any(k.startswith("style_net.") for k in keys) == (letter in "CDE")
    assert ("style_net.E_map.fromZ0.weight" in keys) == (letter in "DE")
    in_channels = g.state_dict()["from_rgb.weight"].shape[1]
    assert in_channels == (4 if letter == "A" else 20)
    assert g.state_dict()["from_rgb.weight"].shape[0] == args["cnum"]
    d = FPNSurfaceDiscriminator(**SMALL_D, output_fpn=letter != "A")
    with torch.no_grad():
        scores = d(out["img"], batch["condition"], batch["mask"])
    assert scores["score"].shape == (3, 1)
    assert ("surface" in scores) == (letter != "A")
    if letter != "A":
        assert scores["surface"].shape == (3, 16, H, W)


def test_paper_widths_match_the_reference_parameter_counts():
    """Config E at 288x160 and the vectors' small variant, built on the meta device (no memory)."""
    with torch.device("meta"):
        full = VSAMGenerator()
        small = VSAMGenerator(cnum=8, z_channels=64, mapper={"hidden_dim": 32, "out_dim": 24})
        full_d, small_d = FPNSurfaceDiscriminator(), FPNSurfaceDiscriminator(cnum=8)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(full), count(full_d)) == (33_013_571, 34_289_745)
    assert (count(small), count(small_d)) == (467_267, 633_017)


def test_w_avg_update_moves_every_row_to_the_batch_mean(generator):
    g = VSAMGenerator(**SMALL).train()
    mapper = g.style_net.E_map
    before = torch.randn_like(mapper.w_avg)
    mapper.w_avg.copy_(before)
    batch = make_batch(2, 9)
    z = torch.randn(2, SMALL["z_channels"])
    with torch.no_grad():
        mean = mapper.map_network(z).mean(dim=0)
        g(*g_inputs(batch), z=z, update_w_avg=True)
    assert torch.allclose(mapper.w_avg, mean + 0.995 * (before - mean), atol=1e-6)


def test_anonymize_uses_the_crop_batch(generator):
    batch = make_batch(2, 11)
    crops = CropBatch(batch["img"], batch["mask"], batch["border"], batch["embedding"], batch["vertices"])
    out = generator.anonymize(crops, truncation=0.0)
    with torch.no_grad():
        direct = generator(*g_inputs(batch), truncation=0.0)["img"]
    assert torch.equal(out, direct)


def test_bad_inputs_raise_typed_errors(generator):
    batch = make_batch(1, 13)
    with pytest.raises(InputError, match="truncation"):
        generator(*g_inputs(batch), truncation=1.5)
    with pytest.raises(InputError, match="embedding"):
        generator(batch["condition"], batch["mask"], batch["border"], batch["embedding"][:, :3], batch["vertices"])
    with pytest.raises(InputError, match="vertex ids"):
        generator(*g_inputs({**batch, "vertices": batch["vertices"] + K}))
    with pytest.raises(InputError, match="vertices"):
        generator(*g_inputs({**batch, "vertices": None}))
    with pytest.raises(InputError, match=r"must be \[1, 3, 72, 40\]"):
        generator(batch["condition"][..., :32], *g_inputs(batch)[1:])
    with pytest.raises(ConfigError, match="style"):
        VSAMGenerator(**{**SMALL, "style": "spade"})
    with pytest.raises(ConfigError, match="divisible"):
        VSAMGenerator(**{**SMALL, "resolution": [72, 42]})


def test_vertices_may_come_as_float_channel_maps(generator):
    batch = make_batch(2, 15)
    with torch.no_grad():
        a = generator(*g_inputs(batch), truncation=0.0)["img"]
        b = generator(*g_inputs({**batch, "vertices": batch["vertices"][:, None].float()}), truncation=0.0)["img"]
    assert torch.equal(a, b)


def test_set_vertex_table_standardizes_and_checks_shape():
    g = VSAMGenerator(**SMALL)
    table = random_vertex_table(K, 16, seed=5)
    g.set_vertex_table(table)
    E = g.style_net.E_map.E
    assert torch.allclose(E.mean(dim=0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(E.var(dim=0, unbiased=False), torch.ones(16), atol=1e-4)
    with pytest.raises(ConfigError, match="vertex table"):
        g.set_vertex_table(table[:10])


def test_registered_components_build_from_their_profiles():
    for kind, name in (("generator", "vsam"), ("discriminator", "vsam-fpn"), ("loss", "nsgan"), ("loss", "surface-l1"),
                       ("loss", "epsilon"), ("loss", "r1")):
        component_class(kind, name)
    g = build_component("generator", "vsam", "tiny")
    d = build_component("discriminator", "vsam-fpn", "tiny")
    caps = VSAMGenerator.capabilities(VSAMGenerator.default_args("tiny"))
    assert caps == GeneratorCapabilities(resolution=(144, 80), surface_channels=16, vertices=True, realistic=True,
                                         trainable=True, latent_size=32, vertex_count=27554)
    assert VSAMGenerator.capabilities(VSAMGenerator.default_args("paper")).resolution == (288, 160)
    h, w = caps.resolution
    batch = {
        "condition": torch.zeros(2, 3, h, w), "mask": torch.ones(2, 1, h, w), "border": torch.zeros(2, 1, h, w),
        "embedding": torch.zeros(2, 16, h, w), "vertices": torch.zeros(2, h, w, dtype=torch.long),
    }
    batch["mask"][:, :, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0
    with torch.no_grad():
        out = g(*g_inputs(batch))
        scores = d(out["img"], batch["condition"], batch["mask"])
    assert scores["score"].shape == (2, 1) and scores["surface"].shape == (2, 16, h, w)


def test_fresh_models_are_deterministic_given_the_seed():
    torch.manual_seed(3)
    a = VSAMGenerator(**SMALL).state_dict()
    torch.manual_seed(3)
    b = VSAMGenerator(**SMALL).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    table = a["style_net.E_map.E"]
    assert torch.equal(table, VSAMGenerator(**SMALL).state_dict()["style_net.E_map.E"])  # fixed-seed stand-in table
