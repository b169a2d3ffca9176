"""`sganon build`: resolved configs that mmengine loads, fit checks, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from mmengine.config import Config

from sganon.cli.main import cli
from sganon.core.capabilities import EmbedderCapabilities, GeneratorCapabilities
from sganon.core import Box, ComponentNotFoundError, ConfigError, Detection, Detector, Generator, SurfaceEmbedder, SurfaceMap
from sganon.core.build import build_config, parse_cfg_options, write_config
from sganon.core.registry import MODELS


class ThreeChannelEmbedder(SurfaceEmbedder):
    """Test embedder: a 3-channel surface (x, y, 1) over each detection box."""

    name = "test-three"
    description = "test embedder with 3 channels"

    @classmethod
    def capabilities(cls, args):
        return EmbedderCapabilities(surface_channels=3)

    def embed(self, image, detections):
        out = []
        for d in detections:
            h, w = d.box.height, d.box.width
            grid = np.stack(np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))[::-1] + [np.ones((h, w))])
            out.append(SurfaceMap(d.box, grid.astype(np.float32), d.full_mask()))
        return out


class WholeImageDetector(Detector):
    """Test detector: one person covering the middle of the image."""

    name = "test-boxes"
    description = "test detector"

    def detect(self, image):
        h, w = image.shape[:2]
        return [Detection(Box(w // 4, h // 4, 3 * w // 4, 3 * h // 4), 1.0)]


class SixteenChannelGenerator(Generator):
    """Test generator that wants 16-channel surfaces with vertex ids (like V-SAM)."""

    name = "test-sixteen"
    description = "test generator needing 16 channels"

    @classmethod
    def capabilities(cls, args):
        return GeneratorCapabilities(resolution=(32, 16), surface_channels=16, vertices=True)

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        return batch.image


@pytest.fixture
def test_components():
    for cls in (ThreeChannelEmbedder, SixteenChannelGenerator, WholeImageDetector):
        MODELS.register_module(module=cls)
    yield
    for cls in (ThreeChannelEmbedder, SixteenChannelGenerator, WholeImageDetector):
        MODELS._module_dict.pop(cls.__name__, None)


def test_baseline_config_loads_in_mmengine(tmp_path, test_components):
    result = build_config(generator="pixelate", embedder="test-three", detector="test-boxes", profile="tiny")
    path = write_config(result.config, tmp_path / "cfg.py")
    loaded = Config.fromfile(path)
    assert loaded.anonymizer.generator.type == "Pixelate"
    assert loaded.anonymizer.embedder.type == "ThreeChannelEmbedder"
    assert loaded.anonymizer.detector.type == "WholeImageDetector"
    assert loaded.default_scope == "sganon"
    assert any("baseline" in line for line in result.summary)


def test_generator_preset_names_resolve(test_components):
    result = build_config(generator="baseline.pixelate-8", embedder="test-three", detector="test-boxes")
    assert result.config.anonymizer.generator.blocks == 8
    assert result.config.parts.preset == "baseline.pixelate-8"


def test_unknown_embedder_names_what_is_available(test_components):
    with pytest.raises(ComponentNotFoundError, match="no embedder named 'no-such-thing'.*test-three"):
        build_config(generator="pixelate", embedder="no-such-thing")


def test_unknown_generator_lists_components_and_presets(test_components):
    with pytest.raises(ComponentNotFoundError, match="pixelate.*baseline.blur"):
        build_config(generator="nope", embedder="test-three")


def test_surface_channel_mismatch_is_refused(test_components):
    with pytest.raises(ConfigError, match="16-channel.*produces 3"):
        build_config(generator="test-sixteen", embedder="test-three", detector="test-boxes")


def test_cfg_options_override_and_parse():
    assert parse_cfg_options(["a.b=1", "c=[1, 2]", "d=text", "e=None"]) == {"a.b": 1, "c": [1, 2], "d": "text", "e": None}
    with pytest.raises(ConfigError):
        parse_cfg_options(["novalue"])


def test_cli_build_writes_config_and_fails_clearly(tmp_path, test_components):
    runner = CliRunner()
    out = tmp_path / "cfg.py"
    ok = runner.invoke(cli, ["build", "--generator", "blur", "--embedder", "test-three", "--detector", "test-boxes",
                             "--cfg-options", "anonymizer.generator.sigma_fraction=0.1", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert Config.fromfile(out).anonymizer.generator.sigma_fraction == 0.1
    assert "wrote" in ok.output
    bad = runner.invoke(cli, ["build", "--generator", "blur", "--embedder", "no-such-thing", "-o", str(tmp_path / "x.py")])
    assert bad.exit_code == 2
    assert "no embedder named 'no-such-thing'" in bad.output
    assert not (tmp_path / "x.py").exists()


@pytest.mark.parametrize("content, name", [("not a config (", "broken.py"), ("# text", "notes.md")])
def test_unreadable_configs_are_config_errors(tmp_path, content, name):
    from sganon.core.spec import load_config

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.py")


def test_anonymize_with_a_built_config_equals_the_same_flags(tmp_path):
    """`sganon build` then `sganon anonymize --config` runs exactly the parts the config names."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()[::2, ::2]).save(tmp_path / "photo.png")
    runner = CliRunner()
    built = runner.invoke(cli, ["build", "--generator", "baseline.blur", "--embedder", "bones", "-o", str(tmp_path / "cfg.py")])
    assert built.exit_code == 0, built.output
    common = [str(tmp_path / "photo.png"), "--seed", "4", "--quiet"]
    by_config = runner.invoke(cli, ["anonymize", *common, "-o", str(tmp_path / "a"), "--config", str(tmp_path / "cfg.py")])
    by_flags = runner.invoke(cli, ["anonymize", *common, "-o", str(tmp_path / "b"), "--preset", "baseline.blur", "--embedder", "bones"])
    assert by_config.exit_code == 0 and by_flags.exit_code == 0, by_config.output + by_flags.output
    assert "generator: baseline.blur (blur)" in by_config.output
    assert (tmp_path / "a" / "photo.png").read_bytes() == (tmp_path / "b" / "photo.png").read_bytes()
    original = np.asarray(Image.open(tmp_path / "photo.png"))
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / "photo.png")), original)
    # A config naming a missing component fails like `sganon build`, with a clear line.
    text = (tmp_path / "cfg.py").read_text().replace("'GaussianBlur'", "'NoSuchGenerator'")
    (tmp_path / "bad.py").write_text(text)
    bad = runner.invoke(cli, ["anonymize", *common, "-o", str(tmp_path / "c"), "--config", str(tmp_path / "bad.py")])
    assert bad.exit_code == 2 and "NoSuchGenerator" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "c" / "photo.png").exists()


def test_blocking_a_plugin_of_a_default_names_what_is_missing(tmp_path, monkeypatch):
    from PIL import Image

    import subprocess
    import sys

    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "photo.png")
    command = [sys.executable, "-m", "sganon.cli.main", "--plugin", "no:baselines", "anonymize", str(tmp_path / "photo.png"),
               "-o", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "registry.yaml" in result.stderr and "not available" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options", [{"batch_size": "x"}, {"truncation": "high"}, {"verify": "yes"}, {"seed": 1.5}])
def test_a_config_with_options_of_the_wrong_type_is_a_clear_error(tmp_path, options):
    (tmp_path / "cfg.py").write_text(f"anonymizer = dict(generator=dict(type='Pixelate'), options={options!r})\n")
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "photo.png")
    result = CliRunner().invoke(
        cli, ["anonymize", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--config", str(tmp_path / "cfg.py")]
    )
    assert result.exit_code == 2, result.output
    assert "wrong type" in result.output or "must be a number" in result.output
    assert not (tmp_path / "out" / "photo.png").exists()
