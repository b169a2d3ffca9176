"""Plugin discovery through entry points: a fake third-party distribution, autoload switch,
blocking, broken plugins, and the pluggy hooks for presets and commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FAKE_MODULE = '''
import torch
from sganon.core import Generator, MODELS, hookimpl


@MODELS.register_module()
class FakeThirdPartyGenerator(Generator):
    name = "fake-third-party"

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        return batch.image


@hookimpl
def sganon_presets():
    return [{"name": "fake.preset", "kind": "generator", "component": "fake-third-party"}]


@hookimpl
def sganon_add_commands(cli):
    import click

    @cli.command("fake-hello")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from fakeplug")
'''


def make_distribution(root: Path, name: str, module: str, source: str) -> Path:
    """A minimal installed distribution: module + dist-info with an entry point."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[sganon.plugins]\n{name} = {module}\n")
    return root


def run_sganon(*args: str, extra_path: Path | None = None, env: dict[str, str] | None = None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SGANON_")}
    if extra_path is not None:
        environment["PYTHONPATH"] = str(extra_path)
    environment.update(env or {})
    code = "import sys; from sganon.cli.main import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    make_distribution(root, "fakeplug", "fakeplug_module", FAKE_MODULE)
    make_distribution(root, "brokenplug", "brokenplug_module", "raise RuntimeError('this plugin is broken')\n")
    return root


@pytest.fixture(scope="module")
def listed(fake_site):
    result = run_sganon("plugins", "list", "--json", extra_path=fake_site)
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_third_party_plugin_is_discovered_with_its_components(listed):
    fake = listed["fakeplug"]
    assert fake["distribution"] == "fakeplug" and fake["version"] == "1.2.3"
    assert fake["loaded"] is True
    assert fake["components"] == {"generator": ["FakeThirdPartyGenerator"]}
    assert {"name", "distribution", "version", "components"} <= set(fake)


def test_first_party_plugins_load_through_the_same_path(listed):
    baselines = listed["baselines"]
    assert baselines["distribution"] == "sganon" and baselines["loaded"]
    assert "Pixelate" in baselines["components"]["generator"]


def test_broken_plugin_is_reported_and_does_not_take_the_cli_down(listed):
    broken = listed["brokenplug"]
    assert broken["loaded"] is False
    assert broken["distribution"] == "brokenplug"
    assert "this plugin is broken" in broken["error"]


def test_autoload_switch_hides_third_party_plugins(fake_site):
    result = run_sganon(
        "plugins", "list", "--json", extra_path=fake_site, env={"SGANON_DISABLE_PLUGIN_AUTOLOAD": "1"}
    )
    assert result.returncode == 0, result.stderr
    names = {entry["name"] for entry in json.loads(result.stdout)}
    assert "fakeplug" not in names and "brokenplug" not in names
    assert "baselines" in names  # sganon's own plugins still load


def test_plugin_can_be_blocked_by_name(fake_site):
    result = run_sganon("--plugin", "no:fakeplug", "plugins", "list", "--json", extra_path=fake_site)
    assert result.returncode == 0, result.stderr
    fake = {e["name"]: e for e in json.loads(result.stdout)}["fakeplug"]
    assert fake["loaded"] is False and fake["error"].startswith("blocked")


def test_plugin_hooks_add_commands_and_presets(fake_site):
    result = run_sganon("fake-hello", extra_path=fake_site)
    assert result.returncode == 0, result.stderr
    assert "hello from fakeplug" in result.stdout
    code = "from sganon.core.presets import get_preset; print(get_preset('fake.preset').origin)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGANON_")}
    env["PYTHONPATH"] = str(fake_site)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "plugin"


def test_registry_lookup_loads_plugins_lazily(fake_site):
    """A fresh process that builds by class name needs no manual import (mmengine lazy import)."""
    code = (
        "from sganon.core.registry import MODELS\n"
        "print(type(MODELS.build({'type': 'FakeThirdPartyGenerator'})).__name__)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGANON_")}
    env["PYTHONPATH"] = str(fake_site)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "FakeThirdPartyGenerator"
