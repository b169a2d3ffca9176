"""``sganon train`` end to end on the tiny profile (shrunk further for CPU speed).

One module-scoped set of runs: A trains 4 iterations; B trains 2 and then resumes to 4.
Exact resume means B's exported EMA generator is byte-identical to A's. A also keeps its
iteration-2 checkpoint, which must equal B's, and shows G and D changing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from safetensors.torch import load_file

from click.testing import CliRunner

from sganon.cli.main import cli
from sganon.core.build import build_config, write_config
from sganon.core.training.checkpoint import load_training_checkpoint

#: The tiny profile at 32x16 crops, batch 2, a 128-vertex mesh and R1 every 3 D steps (so the
#: resumed half of a 4-iteration run has an R1 step too); the metrics hook gets a small
#: TorchScript stand-in for Inception.
SMALL = [
    "model.generator.resolution=[32, 16]",
    "model.generator.n_vertices=128",
    "model.discriminator.resolution=[32, 16]",
    "model.discriminator.min_fmap_resolution=4",
    "model.losses.r1.lazy_interval=3",
    "train_dataloader.dataset.resolution=[32, 16]",
    "train_dataloader.batch_size=2",
    "train_dataloader.dataset.num_samples=16",
    "train_dataloader.dataset.num_vertices=128",
    "default_hooks.checkpoint.interval=2",
]


class TinyFeatures(torch.nn.Module):
    """Stand-in for the Inception TorchScript (same call convention, random weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.conv(images / 255).mean(dim=(2, 3))


def main(args: list[str]) -> None:
    """Run ``sganon ARGS`` in this process; fail with its output if it fails."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    inception = root / "features.pt"
    torch.jit.script(TinyFeatures()).save(str(inception))
    result = build_config("vsam", "cse", dataset="synthetic", profile="tiny", cfg_options=SMALL)
    config = result.config
    config.metrics.update(inception=str(inception), num_images=4, batch_size=4)
    for hook in config.custom_hooks:
        if hook["type"] == "SampleGridHook":
            hook.update(interval=2)
    path = write_config(config, root / "cfg.py")
    main(["train", str(path), "--work-dir", str(root / "A"), "--max-iters", "4", "--seed", "0"])
    main(["train", str(path), "--work-dir", str(root / "B"), "--max-iters", "2", "--seed", "0"])
    main(["train", str(path), "--work-dir", str(root / "B"), "--max-iters", "4", "--resume"])
    return {"config": path, "A": root / "A", "B": root / "B"}


def scalars(work_dir: Path) -> list[dict]:
    """Logged values of every run in ``work_dir`` (a resumed run logs into a new folder), in order."""
    logs = sorted(work_dir.glob("*/vis_data/scalars.json"))
    assert logs, f"no logs in {work_dir}"
    return [json.loads(line) for log in logs for line in log.read_text().splitlines()]


def test_resume_continues_bit_identically(runs) -> None:
    a = (runs["A"] / "export" / "G_ema.safetensors").read_bytes()
    b = (runs["B"] / "export" / "G_ema.safetensors").read_bytes()
    assert a == b
    first, second = scalars(runs["A"]), scalars(runs["B"])
    assert [row["loss_d"] for row in first if "loss_d" in row] == [row["loss_d"] for row in second if "loss_d" in row]
    assert any("d_r1" in row for row in first[2:])  # the resumed half had an R1 step (d step 3)


def test_checkpoints_are_deterministic_and_load_safely(runs) -> None:
    a = load_training_checkpoint(runs["A"] / "iter_2.pth")
    b = load_training_checkpoint(runs["B"] / "iter_2.pth")
    assert a["meta"]["iter"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["state_dict"]["d_steps"].item() == 2
    assert len(a["random_states"]) == 1


def test_training_changes_g_and_d_with_finite_losses(runs) -> None:
    before = load_training_checkpoint(runs["A"] / "iter_2.pth")["state_dict"]
    after = load_training_checkpoint(runs["A"] / "iter_4.pth")["state_dict"]
    for prefix in ("generator.", "discriminator.", "generator_ema."):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert changed, f"no {prefix} tensor changed"
    assert not torch.equal(before["generator.style_net.E_map.w_avg"], after["generator.style_net.E_map.w_avg"])
    rows = scalars(runs["A"])
    assert len([r for r in rows if "loss_g" in r]) == 4
    for row in rows:
        for key in ("loss_d", "loss_g", "d_adversarial", "g_adversarial", "d_surface", "g_surface", "img_per_s"):
            if key in row:
                assert np.isfinite(row[key]), (key, row)
    assert any("fid" in row and np.isfinite(row["fid"]) for row in rows)


def test_exported_generator_loads_with_its_config(runs) -> None:
    from sganon.core.registry import MODELS

    export = runs["A"] / "export"
    state = load_file(str(export / "G_ema.safetensors"))
    config = json.loads((export / "G_ema.json").read_text())
    assert config["exported_at_iteration"] == 4 and "work_dir" not in config
    generator = MODELS.build(config["model"]["generator"])
    generator.load_state_dict(state)
    checkpoint = load_training_checkpoint(runs["A"] / "iter_4.pth")["state_dict"]
    assert torch.equal(state["to_rgb.weight"], checkpoint["generator_ema.to_rgb.weight"])


def test_sample_grids_are_written(runs) -> None:
    from PIL import Image

    grids = sorted((runs["A"] / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["iter_0000002.png", "iter_0000004.png"]
    with Image.open(grids[-1]) as grid:
        assert grid.mode == "RGB" and grid.width > 4 * 16 and grid.height > 4 * 32


def test_nproc_2_on_cpu(runs, tmp_path: Path) -> None:
    main(["train", str(runs["config"]), "--work-dir", str(tmp_path / "D"), "--max-iters", "2", "--nproc", "2",
          "--seed", "1"])
    checkpoint = load_training_checkpoint(tmp_path / "D" / "iter_2.pth")
    assert len(checkpoint["random_states"]) == 2  # both ranks' RNG states
    assert (tmp_path / "D" / "export" / "G_ema.safetensors").is_file()
    rows = [row for row in scalars(tmp_path / "D") if "loss_g" in row]
    assert len(rows) == 2 and all(np.isfinite(r["loss_g"]) for r in rows)


def test_train_rejects_configs_without_training(tmp_path: Path) -> None:
    from sganon.core.errors import ConfigError
    from sganon.core.training.runner import train

    plain = tmp_path / "plain.py"
    Config({"anonymizer": {"generator": {"type": "Pixelate"}}}).dump(str(plain))
    with pytest.raises(ConfigError, match="no training sections"):
        train(plain, tmp_path / "W")
    with pytest.raises(ConfigError, match="does not exist"):
        train(tmp_path / "missing.py", tmp_path / "W")
