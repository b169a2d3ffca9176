"""The third-party plugin example of docs/plugins.md, installed with pip and run by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sganon-green"


def test_the_documented_plugin_installs_declares_capabilities_and_runs(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(EXAMPLE)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr
    assert (EXAMPLE / "sganon_green.py").read_text() in (EXAMPLE.parents[1] / "plugins.md").read_text()

    image = np.full((120, 80, 3), 128, np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    mask = np.zeros((120, 80), bool)
    mask[20:100, 25:55] = True
    from sganon.core.rle import encode_rle

    detections = {"images": [{"file": "photo.png", "persons": [{"box": [25, 20, 55, 100], "score": 1.0, "mask": encode_rle(mask)}], "faces": []}]}
    (tmp_path / "d.json").write_text(json.dumps(detections))
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = subprocess.run([sys.executable, "-m", "sganon.cli.main", "plugins", "list", "--json"], capture_output=True, text=True, env=env)
    plugin = next(p for p in json.loads(listing.stdout) if p["name"] == "green")
    assert plugin["distribution"] == "sganon-green" and plugin["components"] == {"generator": ["SolidGreen"]}
    run = subprocess.run(
        [sys.executable, "-m", "sganon.cli.main", "anonymize", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"),
         "--preset", "green.solid", "--detections", str(tmp_path / "d.json"), "--quiet"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "green.solid (solid-green)" in run.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert (out[mask] == [0, 255, 0]).all()  # the person is green
    assert (out[:10] == 128).all()  # far from the person nothing changed
