"""Real photos end to end with the offline defaults: every face an independent face detector
(OpenCV's Haar cascades) finds in the original lies inside an exported detection, pixels
outside the exported boxes are unchanged in PNG outputs, and no face is found afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sganon.cli.main import cli

from tests.conftest import shared_path


def haar_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Faces (x0, y0, x1, y1) found by OpenCV's frontal-face Haar cascade and confirmed by
    its eye cascade (at least one eye inside; this drops the cascade's false faces in foliage)."""
    folder = Path(cv2.data.haarcascades)
    faces = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
    eyes = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    confirmed = []
    for x, y, w, h in faces.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)):
        face = cv2.resize(gray[y : y + h, x : x + w], (max(int(w), 96), max(int(h), 96)))
        if len(eyes.detectMultiScale(face, scaleFactor=1.1, minNeighbors=3)):
            confirmed.append((int(x), int(y), int(x + w), int(y + h)))
    return confirmed


def anonymize_png(source_rgb: np.ndarray, folder: Path) -> tuple[np.ndarray, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(source_rgb).save(folder / "photo.png")
    result = CliRunner().invoke(
        cli,
        [
            "anonymize",
            str(folder / "photo.png"),
            "-o",
            str(folder / "out"),
            "--export-detections",
            str(folder / "d.json"),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    output = np.asarray(Image.open(folder / "out" / "photo.png"))
    return output, json.loads((folder / "d.json").read_text())["images"][0]


def check_photo(source: np.ndarray, folder: Path, expected_persons: int) -> None:
    faces_before = haar_faces(source)
    assert faces_before, "the independent face detector should see a face in the original"
    output, exported = anonymize_png(source, folder)
    assert output.shape == source.shape
    boxes = [found["box"] for found in exported["persons"] + exported["faces"]]
    assert len(exported["persons"]) >= expected_persons
    for x0, y0, x1, y1 in faces_before:
        assert any(b[0] <= x0 and b[1] <= y0 and x1 <= b[2] and y1 <= b[3] for b in boxes), (
            f"face {x0, y0, x1, y1} not covered"
        )
    inside = np.zeros(source.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    assert np.array_equal(output[~inside], source[~inside])
    assert haar_faces(output) == [], "a face is still detectable after anonymization"


def test_astronaut_is_detected_and_anonymized(tmp_path):
    """A real photo of a person shipped with scikit-image."""
    from skimage import data

    check_photo(data.astronaut(), tmp_path, expected_persons=1)


@pytest.mark.parametrize("name,persons", [("erling.jpg", 1), ("coco_val2017_000000001000.jpg", 6)])
def test_shared_photos(tmp_path, name, persons):
    source = np.asarray(Image.open(shared_path(f"data/{name}")).convert("RGB"))
    check_photo(source, tmp_path, expected_persons=persons)
