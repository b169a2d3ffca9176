"""The pieces of GAN training on their own: sampler, EMA, optimizers, checkpoints, the
model's training step, augmentation, config sections and metrics."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.core.data.augment import PAPER_OPTIONS, CropAugment, band_filters
from sganon.core.errors import ComponentNotFoundError, ConfigError, WeightsError
from sganon.core.registry import MODELS
from sganon.core.training.checkpoint import (
    export_generator,
    load_training_checkpoint,
    plain_message_hub,
    restore_message_hub,
)
from sganon.core.training.config import training_sections
from sganon.core.training.ema import ema_beta, update_ema
from sganon.core.training.metrics import LPIPS, feature_statistics, frechet_distance
from sganon.core.training.optim import GANOptimWrapperConstructor, lazy_regularization_correction, resolve_precision
from sganon.core.training.sampler import ResumableInfiniteSampler
from sganon.plugins.synthetic import SyntheticPersonCrops

# ----------------------------------------------------------------------------- sampler


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 9), world=st.integers(1, 3), start=st.integers(0, 30), seed=st.integers(0, 5))
def test_sampler_start_matches_skipping(size: int, world: int, start: int, seed: int) -> None:
    for rank in range(world):
        sampler = ResumableInfiniteSampler(range(size), seed=seed, rank=rank, world_size=world)
        stream = [i for _, i in zip(range(start + 12), sampler)]
        sampler.start_at(start)
        assert [i for _, i in zip(range(12), sampler)] == stream[start:]


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 12), world=st.integers(1, 4), seed=st.integers(0, 5))
def test_sampler_ranks_share_each_epoch(size: int, world: int, seed: int) -> None:
    """Interleaving the ranks' streams gives whole permutations of the dataset, epoch after epoch."""
    streams = []
    for rank in range(world):
        sampler = ResumableInfiniteSampler(range(size), seed=seed, rank=rank, world_size=world)
        streams.append([i for _, i in zip(range(3 * size), sampler)])
    merged = [streams[p % world][p // world] for p in range(3 * size * world)]
    for epoch in range(3):
        assert sorted(merged[epoch * size : (epoch + 1) * size]) == list(range(size))


def test_sampler_refuses_an_empty_dataset() -> None:
    with pytest.raises(ConfigError, match="empty"):
        ResumableInfiniteSampler([], seed=0)


# ----------------------------------------------------------------------------- EMA and optimizers


def test_ema_beta_and_update() -> None:
    assert ema_beta(32, 10_000) == pytest.approx(0.997784, abs=1e-6)
    with pytest.raises(ConfigError):
        ema_beta(0, 10_000)
    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        ema.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    update_ema(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 2.0 + 0.75 * (1.0 - 2.0)))
    assert torch.equal(ema.running_mean, model.running_mean)  # buffers are copied


def test_lazy_regularization_correction_of_d() -> None:
    corrected = lazy_regularization_correction({"type": "Adam", "lr": 1e-3, "betas": (0.0, 0.99)}, 16)
    assert corrected["lr"] == pytest.approx(9.41176e-4, rel=1e-5)
    assert corrected["betas"][0] == 0.0 and corrected["betas"][1] == pytest.approx(0.990585, abs=1e-6)


def test_precision() -> None:
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("auto", cuda=True) == "fp16"
    assert resolve_precision("bf16", cuda=True) == "bf16"
    with pytest.raises(ConfigError, match="needs a GPU"):
        resolve_precision("fp16", cuda=False)
    with pytest.raises(ConfigError, match="precision must be"):
        resolve_precision("fp8", cuda=True)


# ----------------------------------------------------------------------------- the model

TINY_G = {"type": "VSAMGenerator", "resolution": [32, 16], "cnum": 4, "min_fmap_resolution": 16, "z_channels": 8,
          "n_vertices": 40, "mapper": {"hidden_dim": 8, "out_dim": 8}}
TINY_D = {"type": "FPNSurfaceDiscriminator", "resolution": [32, 16], "cnum": 4, "min_fmap_resolution": 4}
LOSSES = {
    "adversarial": {"type": "NonSaturatingLoss"},
    "surface": {"type": "SurfaceSupervisionLoss"},
    "epsilon": {"type": "EpsilonPenalty"},
    "r1": {"type": "R1Penalty", "lazy_interval": 2},
}


@pytest.fixture(scope="module")
def gan():
    torch.manual_seed(0)
    model = MODELS.build({"type": "SurfaceGuidedGAN", "generator": TINY_G, "discriminator": TINY_D, "losses": LOSSES,
                          "ema_half_life_images": 100, "augment": {"hflip": 0.5, "xint": 0.5, "brightness": 0.5}})
    data = SyntheticPersonCrops(resolution=(32, 16), num_samples=4, grid_height=8, grid_width=4, num_vertices=40)
    model.set_surface_table(torch.from_numpy(data.vertex_table), torch.from_numpy(data.vertex_symmetry))
    batch = {key: torch.stack([data[i][key] for i in range(4)]) for key in data[0]}
    optim = GANOptimWrapperConstructor({
        "generator": {"optimizer": {"type": "Adam", "lr": 1e-3, "betas": (0.0, 0.99)}},
        "discriminator": {"optimizer": {"type": "Adam", "lr": 1e-3, "betas": (0.0, 0.99)}},
        "precision": "auto",
    })(model)
    return model, batch, optim


def test_train_step_updates_everything_it_should(gan) -> None:
    model, batch, optim = gan
    assert model.r1_interval == 2
    assert optim["discriminator"].optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 2 / 3)
    assert optim["generator"].optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    g0 = {k: v.clone() for k, v in model.generator.state_dict().items()}
    d0 = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    ema0 = {k: v.clone() for k, v in model.generator_ema.named_parameters()}
    steps = int(model.d_steps)
    log = model.train_step(batch, optim)
    assert int(model.d_steps) == steps + 1
    assert ("d_r1" in log) == (steps % 2 == 0)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log.values())
    assert not torch.equal(g0["to_rgb.weight"], model.generator.to_rgb.weight)
    assert not torch.equal(d0["output_layer.out.weight"], model.discriminator.output_layer.out.weight)
    w_avg = model.generator.style_net.E_map.w_avg
    assert not torch.equal(g0["style_net.E_map.w_avg"], w_avg)  # the D step updated w_avg
    assert torch.equal(model.generator_ema.style_net.E_map.w_avg, w_avg)  # buffers copied into the EMA
    beta = ema_beta(4, 100)
    for name, p in model.generator.named_parameters():
        expected = p.detach().lerp(ema0[name], beta)
        assert torch.allclose(dict(model.generator_ema.named_parameters())[name], expected, atol=1e-7), name
    assert all(p.requires_grad for p in model.discriminator.parameters())  # unfrozen after the G step
    second = model.train_step(batch, optim)
    assert ("d_r1" in second) == ((steps + 1) % 2 == 0)


def test_prepare_batch_builds_the_generator_inputs(gan) -> None:
    model, batch, _ = gan
    prepared = model.prepare_batch(batch, augment=False)
    surface = 1 - prepared["mask"] - prepared["border"]
    assert prepared["img"].min() >= -1 and prepared["img"].max() <= 1
    assert torch.equal(prepared["condition"], prepared["img"] * prepared["mask"])
    expected = model.vertex_table[prepared["vertices"]].permute(0, 3, 1, 2) * surface
    assert torch.equal(prepared["embedding"], expected)
    assert prepared["vertices"][surface[:, 0] == 0].eq(0).all()


def test_vertex_ids_beyond_the_table_are_refused(gan) -> None:
    from sganon.core.errors import InputError

    model, batch, _ = gan
    bad = dict(batch, vertices=batch["vertices"] + 1000)
    with pytest.raises(InputError, match="another mesh"):
        model.prepare_batch(bad, augment=False)


def test_gan_needs_an_adversarial_loss() -> None:
    with pytest.raises(ConfigError, match="adversarial"):
        MODELS.build({"type": "SurfaceGuidedGAN", "generator": TINY_G, "discriminator": TINY_D,
                      "losses": {"epsilon": {"type": "EpsilonPenalty"}}})


# ----------------------------------------------------------------------------- checkpoints and export


def test_message_hub_round_trips_through_plain_values() -> None:
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("test-plain-hub")
    for value in (1.0, 2.0, 4.0):
        hub.update_scalar("train/loss", value)
    hub.update_info("eta", np.float64(3.5))
    state = plain_message_hub(hub.state_dict())
    assert state["log_scalars"]["train/loss"]["values"] == [1.0, 2.0, 4.0]
    restored = restore_message_hub(pickle.loads(pickle.dumps(state)))
    assert restored["log_scalars"]["train/loss"].mean() == pytest.approx(7 / 3)


def test_checkpoints_load_without_code(tmp_path) -> None:
    path = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"iter": 3}, "message_hub": {"log_scalars": {
        "train/x": {"values": [1.0], "counts": [1], "max_length": 10}}, "runtime_info": {}, "resumed_keys": {}}}, path)
    checkpoint = load_training_checkpoint(path)
    assert checkpoint["meta"]["iter"] == 3 and checkpoint["message_hub"]["log_scalars"]["train/x"].current() == 1.0
    evil = tmp_path / "evil.pth"
    torch.save({"object": ComponentNotFoundError("x")}, evil)  # any class is refused
    with pytest.raises(WeightsError, match="safely"):
        load_training_checkpoint(evil)
    with pytest.raises(WeightsError, match="does not exist"):
        load_training_checkpoint(tmp_path / "missing.pth")


def test_export_is_byte_stable_and_carries_its_config(tmp_path) -> None:
    from safetensors import safe_open

    state = {"b": torch.arange(3.0), "a": torch.ones(2, 2)}
    config = {"model": {"generator": {"type": "X", "cnum": 4}}, "exported_at_iteration": 7}
    first = export_generator(state, config, tmp_path / "one" / "G_ema.safetensors")
    second = export_generator(dict(reversed(state.items())), config, tmp_path / "two" / "G_ema.safetensors")
    assert first.read_bytes() == second.read_bytes()
    with safe_open(str(first), "pt") as handle:
        assert json.loads(handle.metadata()["sganon_config"]) == config
    assert json.loads(first.with_suffix(".json").read_text()) == config


# ----------------------------------------------------------------------------- augmentation


def augment_batch(n: int = 3, height: int = 16, width: int = 8):
    data = SyntheticPersonCrops(resolution=(height, width), num_samples=n, grid_height=4, grid_width=2)
    items = [data[i] for i in range(n)]
    batch = {
        "img": torch.stack([it["img"] for it in items]).float() / 255,
        "mask": torch.stack([it["mask"] for it in items]).float(),
        "border": torch.stack([it["border"] for it in items]).float(),
        "vertices": torch.stack([it["vertices"] for it in items]),
    }
    return batch, torch.from_numpy(data.vertex_symmetry)


def test_flip_mirrors_vertex_ids_through_the_symmetry() -> None:
    batch, symmetry = augment_batch()
    flipped = CropAugment(hflip=1.0)(batch, symmetry)
    assert torch.equal(flipped["img"], batch["img"].flip(-1))
    assert torch.equal(flipped["mask"], batch["mask"].flip(-1))
    assert torch.equal(flipped["vertices"], symmetry[batch["vertices"].flip(-1)])
    with pytest.raises(ConfigError, match="symmetry"):
        CropAugment(hflip=1.0)(batch, None)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1000))
def test_paper_pipe_keeps_labels_consistent(seed: int) -> None:
    batch, symmetry = augment_batch()
    torch.manual_seed(seed)
    out = CropAugment(**PAPER_OPTIONS)(batch, symmetry)
    assert out["img"].shape == batch["img"].shape and torch.isfinite(out["img"]).all()
    for key in ("mask", "border"):
        assert set(out[key].unique().tolist()) <= {0.0, 1.0}
    assert not (out["mask"].bool() & out["border"].bool()).any()
    assert out["vertices"].dtype == batch["vertices"].dtype
    assert set(out["vertices"].unique().tolist()) <= set(range(len(symmetry)))


def test_no_options_is_the_identity_and_filters_are_a_bank() -> None:
    batch, symmetry = augment_batch()
    out = CropAugment()(batch, symmetry)
    for key in batch:
        assert torch.equal(out[key], batch[key])
    bank = band_filters()
    assert bank.shape[0] == 4 and math.isclose(bank.sum(axis=0)[bank.shape[1] // 2], 1.0, abs_tol=1e-6)
    with pytest.raises(ConfigError, match="probability"):
        CropAugment(scale=1.5)


# ----------------------------------------------------------------------------- config sections


def test_paper_sections_hold_the_paper_hyper_parameters() -> None:
    from sganon.plugins.vsam import FPNSurfaceDiscriminator, VSAMGenerator

    generator = {"type": "VSAMGenerator", **VSAMGenerator.default_args("paper")}
    discriminator = {"type": "FPNSurfaceDiscriminator", **FPNSurfaceDiscriminator.default_args("paper")}
    sections, summary = training_sections(generator, discriminator, None, "paper", VSAMGenerator.capabilities(generator))
    assert sections["train_dataloader"]["batch_size"] == 32
    assert sections["train_cfg"]["max_iters"] == 12_000_000 // 32
    assert sections["train_dataloader"]["dataset"]["type"] == "PersonCropDataset"
    assert sections["train_dataloader"]["dataset"]["root"] is None and "root" in summary[0]
    adam = sections["optim_wrapper"]["discriminator"]["optimizer"]
    assert (adam["lr"], adam["betas"]) == (1e-3, (0.0, 0.99))
    losses = sections["model"]["losses"]
    assert losses["r1"]["weight"] == 5.0 and losses["r1"]["lazy_interval"] == 16
    assert losses["epsilon"]["weight"] == 0.001 and losses["surface"]["l1_weight"] == 0.1
    assert sections["model"]["ema_half_life_images"] == 10_000
    assert sections["model"]["augment"] == PAPER_OPTIONS
    with pytest.raises(ComponentNotFoundError, match="no training dataset"):
        training_sections(generator, discriminator, "imagenet", "paper", VSAMGenerator.capabilities(generator))


def test_crop_dataset_asks_for_its_folder() -> None:
    from sganon.core.data.dataset import PersonCropDataset

    with pytest.raises(ConfigError, match="train_dataloader.dataset.root"):
        PersonCropDataset(root=None)


# ----------------------------------------------------------------------------- metrics


def test_frechet_distance_properties() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    stats = feature_statistics(a)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-9)
    shifted = feature_statistics(a + 2.0)
    assert frechet_distance(*stats, *shifted) == pytest.approx(6 * 4.0, rel=1e-6)  # mean shift only
    b = feature_statistics(rng.normal(size=(400, 6)) * 3)
    assert frechet_distance(*stats, *b) == pytest.approx(frechet_distance(*b, *stats), rel=1e-6)


def test_lpips_loads_from_files_and_is_a_distance(tmp_path) -> None:
    torch.manual_seed(0)
    features = {f"features.{k}": v for k, v in LPIPS().features.state_dict().items()}  # torchvision's key names
    torch.save(features, tmp_path / "vgg16.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(heads, tmp_path / "heads.pth")
    lpips = LPIPS.from_files(tmp_path / "vgg16.pth", tmp_path / "heads.pth")
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(lpips(a, a), torch.zeros(2))
    assert (lpips(a, b) > 0).all() and torch.allclose(lpips(a, b), lpips(b, a))
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="VGG16"):
        LPIPS.from_files(tmp_path / "bad.pth", tmp_path / "heads.pth")
