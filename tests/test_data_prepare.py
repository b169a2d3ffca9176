"""``sganon data prepare``: person crops from a small COCO-format dataset made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sganon.core.data.check import check_dataset
from sganon.core.data.dataset import PersonCropDataset
from sganon.core.data.format import BODY, BORDER, KNOWN, DatasetMeta
from sganon.core.data.prepare import prepare_from_coco
from sganon.core.errors import ConfigError, InputError
from sganon.core.interfaces import SurfaceEmbedder
from sganon.core.structures import SurfaceMap

RESOLUTION = (64, 32)
GRID = 4  # the stand-in mesh: a GRID x GRID chart over each person's box


class BoxChartEmbedder(SurfaceEmbedder):
    """Test stand-in (not a real model): a pixel's vertex is its cell on a 4x4 chart of the box.

    Its vertex table is 16 fixed unit vectors; the embedding of a pixel is its vertex's row,
    valid wherever the detection's mask is. Enough to follow ids and masks through prepare.
    """

    name = "test-box-chart"

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        table = rng.normal(size=(GRID * GRID, 16))
        self.vertex_table = (table / np.linalg.norm(table, axis=1, keepdims=True)).astype(np.float32)
        self.calls = 0

    def embed(self, image, detections):
        self.calls += 1
        surfaces = []
        for detection in detections:
            h, w = detection.box.height, detection.box.width
            rows = np.minimum(np.arange(h) * GRID // h, GRID - 1)
            cols = np.minimum(np.arange(w) * GRID // w, GRID - 1)
            vertices = rows[:, None] * GRID + cols[None, :]
            valid = detection.full_mask()
            embedding = self.vertex_table[vertices].transpose(2, 0, 1) * valid
            surfaces.append(SurfaceMap(detection.box, embedding, valid, np.where(valid, vertices, 0)))
        return surfaces


def polygon(cx: float, cy: float, rx: float, ry: float) -> list[float]:
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return [float(v) for a in angles for v in (cx + rx * np.cos(a), cy + ry * np.sin(a))]


@pytest.fixture
def coco(tmp_path: Path) -> tuple[Path, Path]:
    """Two 120x160 images: one large person, a tiny person, a crowd region and a dog; and a missing image."""
    images = tmp_path / "images"
    images.mkdir()
    annotations = []
    for image_id, name in ((1, "a.png"), (2, "b.jpg")):
        canvas = Image.new("RGB", (160, 120), (30 * image_id, 90, 140))
        draw = ImageDraw.Draw(canvas)
        person = polygon(60 + 20 * image_id, 60, 18, 45)
        draw.polygon(person, fill=(200, 120, 80))
        canvas.save(images / name)
        annotations.append({"id": 10 * image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "segmentation": [person], "bbox": [0, 0, 1, 1], "area": 1})
    annotations += [
        {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [polygon(10, 10, 3, 6)]},
        {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": [polygon(130, 60, 20, 40)]},
        {"id": 13, "image_id": 2, "category_id": 18, "iscrowd": 0, "segmentation": [polygon(130, 60, 20, 40)]},
    ]
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 120, "width": 160},
                   {"id": 2, "file_name": "b.jpg", "height": 120, "width": 160},
                   {"id": 3, "file_name": "missing.png", "height": 120, "width": 160}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


@pytest.mark.parametrize("shard_format", ["tar", "dir"])
def test_prepare_from_annotation_masks(coco, tmp_path: Path, shard_format: str) -> None:
    annotations, images = coco
    symmetry = tmp_path / "symmetry.npy"
    mirror = (np.arange(16) // GRID) * GRID + (GRID - 1 - np.arange(16) % GRID)
    np.save(symmetry, mirror)
    out = tmp_path / f"crops-{shard_format}"
    summary = prepare_from_coco(annotations, images, out, BoxChartEmbedder(), None, RESOLUTION, 16,
                                use_annotation_masks=True, vertex_symmetry=symmetry, shard_size=1,
                                shard_format=shard_format)
    # two persons kept; the tiny one skipped; crowd and dog ignored; the missing image reported
    assert (summary.images, summary.persons, summary.written, summary.too_small) == (2, 3, 2, 1)
    assert [name for name, _ in summary.failed_images] == ["missing.png"]
    meta = DatasetMeta.read(out)
    assert meta.num_samples == 2 and len(meta.shards) == 2 and meta.num_vertices == 16
    report = check_dataset(out)
    assert report.ok, report.errors

    dataset = PersonCropDataset(str(out), resolution=list(RESOLUTION), surface_channels=16)
    np.testing.assert_array_equal(dataset.vertex_symmetry, mirror)
    for item in (dataset[0], dataset[1]):
        assert item["img"].shape == (3, *RESOLUTION)
        mask, border = item["mask"][0].bool(), item["border"][0].bool()
        body = ~mask & ~border
        assert body.any() and border.any() and mask.any() and not (mask & border).any()
        assert item["vertices"][~body].eq(0).all()
        # the person is orange: the body pixels are orange, the known ones are not
        colour = item["img"].float()
        assert colour[0][body].mean() > 150 and colour[0][mask].mean() < 100
        # the crop keeps the paper's aspect ratio around a centred person: it spans the height
        rows = body.any(dim=1).nonzero()
        assert rows.min() < RESOLUTION[0] * 0.2 and rows.max() > RESOLUTION[0] * 0.8
        # vertex ids follow the chart: the top rows of the body are in the chart's first row
        top = item["vertices"][rows.min()][body[rows.min()]]
        assert (top < GRID).all()


def test_prepare_with_a_detector_uses_its_persons(coco, tmp_path: Path) -> None:
    from sganon.core.runners.coco import coco_person

    annotations, images = coco

    class OnePerson:
        """Test detector: always the same large ellipse (and a face, which is not a person)."""

        def detect(self, image):
            person = coco_person({"segmentation": [polygon(80, 60, 18, 45)]}, *image.shape[:2])
            face = coco_person({"segmentation": [polygon(80, 20, 5, 5)]}, *image.shape[:2])
            face.label = "face"
            return [person, face]

    summary = prepare_from_coco(annotations, images, tmp_path / "out", BoxChartEmbedder(), OnePerson(),
                                RESOLUTION, 16, limit=2)
    assert (summary.images, summary.persons, summary.written) == (2, 2, 2)


def test_prepare_refuses_bad_inputs(coco, tmp_path: Path) -> None:
    annotations, images = coco
    with pytest.raises(ConfigError, match="detector"):
        prepare_from_coco(annotations, images, tmp_path / "x", BoxChartEmbedder(), None, RESOLUTION, 16)
    with pytest.raises(ConfigError, match="channels"):
        prepare_from_coco(annotations, images, tmp_path / "y", BoxChartEmbedder(), None, RESOLUTION, 8,
                          use_annotation_masks=True)
    not_coco = tmp_path / "not-coco.json"
    not_coco.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="not a COCO"):
        prepare_from_coco(not_coco, images, tmp_path / "z", BoxChartEmbedder(), None, RESOLUTION, 16,
                          use_annotation_masks=True)
    prepare_from_coco(annotations, images, tmp_path / "done", BoxChartEmbedder(), None, RESOLUTION, 16,
                      use_annotation_masks=True)
    with pytest.raises(InputError, match="already holds"):
        prepare_from_coco(annotations, images, tmp_path / "done", BoxChartEmbedder(), None, RESOLUTION, 16,
                          use_annotation_masks=True)


def test_region_labels_are_the_documented_ones() -> None:
    assert (KNOWN, BORDER, BODY) == (0, 1, 2)


def test_prepare_cli_explains_a_missing_or_unsuitable_config(coco, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from mmengine.config import Config

    from sganon.cli.main import cli

    annotations, images = coco
    base = ["data", "prepare", "--coco", str(annotations), "--images", str(images), "-o", str(tmp_path / "out")]
    missing = CliRunner().invoke(cli, [*base, "--config", str(tmp_path / "nope.py")])
    assert missing.exit_code == 2 and "sganon build" in missing.output
    plain = tmp_path / "plain.py"
    Config({"model": {"type": "X"}}).dump(str(plain))
    unsuitable = CliRunner().invoke(cli, [*base, "--config", str(plain)])
    assert unsuitable.exit_code == 2 and "no anonymizer section" in unsuitable.output
