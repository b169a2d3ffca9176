"""`sganon audit` and core/audit.py: replaced pixels, faces left, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sganon.core.audit import find_faces_left, pair_paths, replaced_pixels
from sganon.core.components import build_component
from sganon.core.errors import InputError
from sganon.core.structures import Box

FACE = Box(80, 25, 125, 80)  # the astronaut's face in the 256x256 copy, by eye


@pytest.fixture(scope="module")
def astronaut_small():
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.BILINEAR))


def pixelated(image: np.ndarray, box: Box, block: int = 8) -> np.ndarray:
    out = image.copy()
    region = out[box.y0 : box.y1, box.x0 : box.x1]
    for y in range(0, region.shape[0], block):
        for x in range(0, region.shape[1], block):
            region[y : y + block, x : x + block] = region[y : y + block, x : x + block].mean(axis=(0, 1))
    return out


def test_replaced_pixels_ignore_small_noise_and_fill_pixelated_blocks(astronaut_small):
    noisy = np.clip(astronaut_small.astype(int) + 5, 0, 255).astype(np.uint8)
    assert not replaced_pixels(astronaut_small, noisy).any()
    replaced = replaced_pixels(astronaut_small, pixelated(astronaut_small, FACE))
    assert replaced[FACE.y0 + 4 : FACE.y1 - 4, FACE.x0 + 4 : FACE.x1 - 4].all()
    assert not replaced[150:, :].any() and not replaced[:, 200:].any()
    with pytest.raises(InputError, match="same size"):
        replaced_pixels(astronaut_small, astronaut_small[:100])


def test_find_faces_left_returns_only_faces_outside_replaced_pixels(astronaut_small):
    detectors = [build_component("detector", "offline-face")]
    nothing = np.zeros((256, 256), bool)
    left = find_faces_left(detectors, astronaut_small, nothing)
    assert len(left) == 1 and left[0].box.intersect(FACE).area > 0.5 * left[0].box.area
    anonymized = pixelated(astronaut_small, FACE.clip(256, 256))
    replaced = np.zeros((256, 256), bool)
    replaced[FACE.y0 - 10 : FACE.y1 + 10, FACE.x0 - 10 : FACE.x1 + 10] = True
    assert find_faces_left(detectors, anonymized, replaced) == []


def test_pairs_match_by_name_without_extension(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b" / "sub").mkdir(parents=True)
    image = Image.new("RGB", (8, 8))
    for name in ("a/x.jpg", "a/sub/y.png", "a/z.png", "b/x.png", "b/sub/y.png"):
        image.save(tmp_path / name)
    pairs = pair_paths(tmp_path / "a", tmp_path / "b")
    assert [(name, o.name, a.name) for name, o, a in pairs] == [("sub/y", "y.png", "y.png"), ("x", "x.jpg", "x.png")]
    with pytest.raises(InputError):
        pair_paths(tmp_path / "a", tmp_path / "b" / "x.png")


def test_audit_command_passes_a_replaced_face_and_fails_a_visible_one(tmp_path, astronaut_small):
    from sganon.cli.main import cli

    for folder in ("orig", "good", "bad"):
        (tmp_path / folder).mkdir()
    Image.fromarray(astronaut_small).save(tmp_path / "orig" / "astronaut.png")
    # Pixelated face + hair (replaced), and an untouched copy re-encoded as JPEG (face left).
    Image.fromarray(pixelated(astronaut_small, Box(60, 0, 150, 100))).save(tmp_path / "good" / "astronaut.png")
    Image.fromarray(astronaut_small).save(tmp_path / "bad" / "astronaut.jpg", quality=90)
    runner = CliRunner()
    good = runner.invoke(cli, ["audit", str(tmp_path / "orig"), str(tmp_path / "good"), "-o", str(tmp_path / "r1")])
    assert good.exit_code == 0, good.output
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert summary["passed"] and summary["faces"] >= 1 and summary["faces_left"] == 0
    page = (tmp_path / "r1" / "report.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 3 and "http" not in page
    bad = runner.invoke(cli, ["audit", str(tmp_path / "orig"), str(tmp_path / "bad"), "-o", str(tmp_path / "r2")])
    assert bad.exit_code == 1, bad.output
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert not summary["passed"] and summary["faces_left"] >= 1
    face = summary["images"][0]["faces"][0]
    assert face["left"] and face["still_detected"] and face["replaced"] < 0.1
