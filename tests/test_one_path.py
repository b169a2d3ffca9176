"""One path from names to a running pipeline: the web page, the CLI (and Ray, in
test_engines.py) run the same specification and give the same bytes."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from sganon.cli.main import cli
from sganon.core import hookimpl
from sganon.core.plugins import plugin_manager

pytest.importorskip("fastapi", reason="the 'serve' extra is part of '.[dev]'")
from fastapi.testclient import TestClient  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "docs" / "examples" / "astronaut.jpg"
#: A pipeline preset with options of its own, whose parts need no weights: feathered edges
#: and detection-order paste change the output bytes, so a front end that loses them fails.
FEATHERED = "test.feathered"


def feathered_presets() -> list[dict]:
    return [
        {"name": "test.offline-detector", "kind": "detector", "component": "offline"},
        {"name": "test.bones", "kind": "embedder", "component": "bones"},
        {
            "name": FEATHERED,
            "kind": "pipeline",
            "parts": {"detector": "test.offline-detector", "embedder": "test.bones", "generator": "baseline.blur"},
            "options": {"feather": 9, "paste_order": "detection"},
        },
    ]


@pytest.fixture
def feathered_preset():
    """A plugin (registered through the plugin manager, as entry points are) adding the presets above."""
    plugin = types.ModuleType("feathered_test_plugin")
    plugin.sganon_presets = hookimpl(feathered_presets)  # type: ignore[attr-defined]
    hooks = plugin_manager().hooks
    hooks.register(plugin, name="feathered-test")
    try:
        yield FEATHERED
    finally:
        hooks.unregister(plugin)


def page_result(root: Path, preset: str, seed: int) -> bytes:
    from sganon.core.serve.app import create_app

    with TestClient(create_app(root=root)) as client:
        upload = client.post("/api/uploads", params={"name": PHOTO.name}, content=PHOTO.read_bytes()).json()
        run = client.post(f"/api/uploads/{upload['id']}/runs", json={"preset": preset, "seed": seed}).json()
        deadline = time.monotonic() + 300
        while (status := client.get(f"/api/runs/{run['id']}").json())["state"] not in ("done", "error"):
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.2)
        assert status["state"] == "done", status["message"]
        return client.get(f"/api/runs/{run['id']}/files/result").content


def test_web_page_and_cli_give_the_same_bytes_for_a_preset_with_options_of_its_own(feathered_preset, tmp_path):
    seed = 5
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli, ["anonymize", str(PHOTO), "-o", str(out), "--preset", feathered_preset, "--seed", str(seed),
              "--ext", "png", "--quiet"], catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    cli_bytes = (out / "astronaut.png").read_bytes()
    page_bytes = page_result(tmp_path / "page", feathered_preset, seed)
    assert page_bytes == cli_bytes
    # The preset's options do matter: without them (the CLI with the blur preset alone) the bytes differ.
    plain = tmp_path / "plain"
    result = CliRunner().invoke(
        cli, ["anonymize", str(PHOTO), "-o", str(plain), "--preset", "baseline.blur", "--seed", str(seed),
              "--ext", "png", "--quiet"], catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert (plain / "astronaut.png").read_bytes() != cli_bytes
