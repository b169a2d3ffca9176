"""The weights cache (core/weight_cache.py, core/checkpoints.py), `sganon weights`, and reading official V-SAM checkpoints.

A random checkpoint with exactly the official config-E key set (from
shared/reference/vsam/state_dict_listing.json) stands in for the released file, which
cannot be downloaded here. It also carries a numpy scalar, a pickled class outside
torch's weights-only allowlist, like a trainer counter could be.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sganon.cli.main import cli
from sganon.core import weight_cache as weights_module
from sganon.core.errors import WeightsError
from sganon.core.checkpoints import read_checkpoint, save_checkpoint
from sganon.core.presets import get_preset
from sganon.core.weight_cache import (
    list_weights,
    load_preset_weights,
    pull_weights,
    weights_path,
)
from sganon.plugins.vsam import FPNSurfaceDiscriminator, VSAMGenerator, load_fba_checkpoint
from sganon.plugins.vsam.fba import load_tensor_file
from tests.conftest import shared_path

PRESET = "vsam.fba-configE"


@pytest.fixture(scope="module")
def listing():
    return json.loads(shared_path("reference/vsam/state_dict_listing.json").read_text())


@pytest.fixture(scope="module")
def official(listing, tmp_path_factory):
    """``(dict, path)`` of a random official-format checkpoint with the full config-E keys."""
    g = torch.Generator().manual_seed(0)

    def random_state(entries):
        return {e["key"]: torch.randn(e["shape"], generator=g) for e in entries}

    ema = random_state(listing["full"]["G"])
    checkpoint = {
        "EMA_generator": ema,
        "D": random_state(listing["full"]["D"]),
        "G": {**ema, "to_rgb.bias": ema["to_rgb.bias"] + 1},  # the non-EMA generator differs
        "global_step": 12_000_000,
        "hooks": {"metric": np.float64(0.5)},
    }
    path = tmp_path_factory.mktemp("official") / "configE.torch"
    torch.save(checkpoint, path)
    return checkpoint, path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SGANON_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_full_config_e_listing_loads_strictly(official, listing):
    checkpoint, _ = official
    G, D = load_fba_checkpoint(checkpoint)
    assert sum(p.numel() for p in G.parameters()) == listing["full"]["G_params"] == 33_013_571
    assert sum(p.numel() for p in D.parameters()) == listing["full"]["D_params"] == 34_289_745
    assert list(G.state_dict()) == [e["key"] for e in listing["full"]["G"]]
    assert list(D.state_dict()) == [e["key"] for e in listing["full"]["D"]]
    assert not G.training
    for key, value in G.state_dict().items():
        assert torch.equal(value, checkpoint["EMA_generator"][key]), key
    for key, value in D.state_dict().items():
        assert torch.equal(value, checkpoint["D"][key]), key


def test_small_listing_matches_the_small_config(listing):
    config = {"generator": listing["small"]["generator_cfg"], "discriminator": listing["small"]["discriminator_cfg"]}
    from sganon.plugins.vsam.fba import discriminator_args, generator_args

    with torch.device("meta"):
        G, D = VSAMGenerator(**generator_args(config)), FPNSurfaceDiscriminator(**discriminator_args(config))
    for module, entries in ((G, listing["small"]["G"]), (D, listing["small"]["D"])):
        shapes = {k: list(v.shape) for k, v in module.state_dict().items()}
        assert shapes == {e["key"]: e["shape"] for e in entries}


def test_checkpoint_file_with_foreign_pickled_objects_is_read_without_running_them(official):
    checkpoint, path = official
    with pytest.raises(Exception):  # what plain weights-only loading does with it
        torch.load(path, weights_only=True)
    data = load_tensor_file(path)
    assert data["global_step"] == 12_000_000
    assert "numpy" in repr(data["hooks"]["metric"]) and "not loaded" in repr(data["hooks"]["metric"])
    G, _ = load_fba_checkpoint(path)
    assert torch.equal(G.to_rgb.bias, checkpoint["EMA_generator"]["to_rgb.bias"])


def test_checkpoints_that_do_not_fit_raise_weights_errors(official):
    checkpoint, _ = official
    ema, d = checkpoint["EMA_generator"], checkpoint["D"]
    with pytest.raises(WeightsError, match="missing 1 .*to_rgb.bias"):
        load_fba_checkpoint({"EMA_generator": {k: v for k, v in ema.items() if k != "to_rgb.bias"}, "D": d})
    with pytest.raises(WeightsError, match="unexpected 1 .*extra"):
        load_fba_checkpoint({"EMA_generator": {**ema, "extra": torch.zeros(1)}, "D": d})
    with pytest.raises(WeightsError, match="another shape .*from_rgb.weight"):
        load_fba_checkpoint({"EMA_generator": {**ema, "from_rgb.weight": torch.zeros(32, 20, 1, 1)}, "D": d})
    with pytest.raises(WeightsError, match="no EMA_generator"):
        load_fba_checkpoint({"D": d})
    with pytest.raises(WeightsError, match="non-tensor"):
        load_fba_checkpoint({"EMA_generator": {**ema, "note": "x"}, "D": d})


def test_save_and_read_checkpoint_round_trip(tmp_path):
    tensors = {"a": torch.arange(6.0).view(2, 3), "b.c": torch.ones(2, dtype=torch.int64)}
    config = {"type": "VSAMGenerator", "cnum": 4, "mapper": {"hidden_dim": 8}}
    path = save_checkpoint(tmp_path / "x.safetensors", tensors, config, {"sha256": "ab"})
    state, stored, source = read_checkpoint(path)
    assert stored == config and source == {"sha256": "ab"}
    assert all(torch.equal(state[k], tensors[k]) for k in tensors)
    assert json.loads(path.with_suffix(".json").read_text())["config"] == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.safetensors"]  # no temp files left
    with pytest.raises(WeightsError, match="no weights file"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_weights_import_cli_then_load_preset(official, home):
    checkpoint, path = official
    runner = CliRunner()
    result = runner.invoke(cli, ["weights", "list"])
    assert result.exit_code == 0 and "vsam.fba-configE" in result.output and "not installed" in result.output
    result = runner.invoke(cli, ["weights", "import", PRESET, str(path)])
    assert result.exit_code == 0, result.output
    assert weights_path(PRESET).is_file() and str(home) in str(weights_path(PRESET))
    row = next(r for r in list_weights() if r["name"] == PRESET)
    assert row["installed"] and row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row["verified"] is False  # the publisher gives no sha256
    generator = load_preset_weights(PRESET)
    assert isinstance(generator, VSAMGenerator) and not generator.training
    for key, value in generator.state_dict().items():
        assert torch.equal(value, checkpoint["EMA_generator"][key]), key


def test_load_preset_weights_says_how_to_get_missing_weights(home):
    with pytest.raises(WeightsError, match="sganon weights pull vsam.fba-configE"):
        load_preset_weights(PRESET)
    result = CliRunner().invoke(cli, ["weights", "import", PRESET, __file__])
    assert result.exit_code == 2 and "Error:" in result.output


@pytest.fixture
def local_preset(official, monkeypatch):
    """The real preset, its URL pointed at the local file (file:// goes through urllib too)."""
    _, path = official

    def use(sha256):
        preset = get_preset(PRESET)
        patched = replace(preset, weights=replace(preset.weights, url=path.as_uri(), sha256=sha256))
        monkeypatch.setattr(weights_module, "get_preset", lambda name: patched if name == PRESET else get_preset(name))
        return path

    return use


def test_pull_refuses_unverifiable_downloads_and_reports_the_hash(local_preset, home):
    path = local_preset(None)
    seen = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match=f"sha256 {seen}"):
        pull_weights(PRESET)
    assert not weights_path(PRESET).exists()
    kept = list((home / "downloads").glob("*.download"))
    assert len(kept) == 1 and kept[0].read_bytes() == path.read_bytes()
    assert not list((home / "downloads").glob("*.part"))


def test_pull_with_allow_unverified_installs_and_records_the_hash(local_preset, home):
    path = local_preset(None)
    class Bar:  # the tqdm-like object pooch drives
        total, n = None, 0

        def update(self, count):
            self.n += count

    progress = Bar()
    installed = pull_weights(PRESET, allow_unverified=True, progressbar=progress)
    assert installed == weights_path(PRESET)
    _, config, source = read_checkpoint(installed)
    assert config["type"] == "VSAMGenerator" and config["cnum"] == 64
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and source["verified"] is False
    assert progress.n == progress.total == path.stat().st_size


def test_pull_with_a_known_hash_verifies_it(official, local_preset, home):
    _, path = official
    local_preset(hashlib.sha256(path.read_bytes()).hexdigest())
    pull_weights(PRESET)
    row = next(r for r in list_weights() if r["name"] == PRESET)
    assert row["installed"] and row["verified"] is True


def test_pull_rejects_a_hash_mismatch(local_preset, home):
    local_preset("0" * 64)
    with pytest.raises(WeightsError, match="expects 0000"):
        pull_weights(PRESET)
    assert not weights_path(PRESET).exists()
    assert not list((home / "downloads").iterdir())


def test_presets_publishing_one_file_share_one_download(official, monkeypatch, home):
    """`also=` converts further presets from the same download (e.g. CSE detector + embedder)."""
    _, path = official
    preset = get_preset(PRESET)
    patched = replace(preset, weights=replace(preset.weights, url=path.as_uri(), sha256=None))
    twins = {PRESET: patched, "vsam.twin": replace(patched, name="vsam.twin")}
    monkeypatch.setattr(weights_module, "get_preset", lambda name: twins.get(name) or get_preset(name))
    downloads = []
    real_download = weights_module.download
    monkeypatch.setattr(weights_module, "download", lambda *a, **k: downloads.append(a[0]) or real_download(*a, **k))
    pull_weights(PRESET, allow_unverified=True, also=["vsam.twin"])
    assert downloads == [path.as_uri()]
    assert weights_path(PRESET).is_file() and weights_path("vsam.twin").is_file()


def test_presets_with_different_files_are_not_pulled_together(local_preset, home):
    local_preset(None)
    with pytest.raises(WeightsError, match="same file"):
        pull_weights(PRESET, allow_unverified=True, also=["cse.embedder-r101-fpn-dl"])
