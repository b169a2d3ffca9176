"""The crop dataset format (write, read, check), ``sganon data check`` and the synthetic dataset."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.cli.main import cli
from sganon.core.data.check import check_dataset
from sganon.core.data.dataset import PersonCropDataset
from sganon.core.data.format import BODY, BORDER, KNOWN, CropSample, CropWriter, DatasetMeta
from sganon.core.errors import ConfigError, InputError
from sganon.plugins.synthetic import SyntheticPersonCrops
from sganon.core.crops import dilate, dilation_radius

H, W, K = 16, 8, 10


def sample(seed: int) -> CropSample:
    rng = np.random.default_rng(seed)
    regions = np.full((H, W), KNOWN, np.uint8)
    regions[3:13, 2:6] = BORDER
    regions[4:12, 3:5] = BODY
    vertices = np.where(regions == BODY, rng.integers(0, K, (H, W)), 0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return CropSample(image=image, regions=regions, vertices=vertices, info={"seed": seed})


def write(root: Path, count: int = 5, shard_size: int = 2, shard_format: str = "tar", symmetry: bool = True) -> None:
    table = np.eye(K, 4, dtype=np.float32) + 0.1
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    with CropWriter(root, (H, W), "vertices", 4, table, np.arange(K)[::-1].copy() if symmetry else None,
                    shard_size=shard_size, shard_format=shard_format) as writer:
        for i in range(count):
            writer.add(sample(i))


@pytest.mark.parametrize("shard_format", ["tar", "dir"])
def test_written_samples_read_back_exactly(tmp_path: Path, shard_format: str) -> None:
    write(tmp_path / "d", shard_format=shard_format)
    meta = DatasetMeta.read(tmp_path / "d")
    assert meta.num_samples == 5 and [s["samples"] for s in meta.shards] == [2, 2, 1]
    dataset = PersonCropDataset(str(tmp_path / "d"))
    assert len(dataset) == 5 and dataset.vertex_table.shape == (K, 4)
    for i in range(5):
        expected, item = sample(i), dataset[i]
        assert torch.equal(item["img"], torch.from_numpy(expected.image).permute(2, 0, 1))
        assert torch.equal(item["mask"][0], torch.from_numpy((expected.regions == KNOWN).astype(np.uint8)))
        assert torch.equal(item["border"][0], torch.from_numpy((expected.regions == BORDER).astype(np.uint8)))
        assert torch.equal(item["vertices"], torch.from_numpy(expected.vertices))
    assert check_dataset(tmp_path / "d").ok


def test_check_finds_each_kind_of_problem(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root, count=4, shard_size=4, shard_format="dir", symmetry=False)
    shard = root / "shard-000000"
    from PIL import Image

    regions = np.asarray(Image.open(shard / "000000000.regions.png")).copy()
    regions[0, 0] = 7
    Image.fromarray(regions).save(shard / "000000000.regions.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(shard / "000000001.regions.png")  # no surface, nothing to generate
    Image.fromarray(np.full((H, W), 60000, np.uint16)).save(shard / "000000002.vertices.png")
    (shard / "000000003.image.png").write_bytes(b"not a png")
    report = check_dataset(root)
    text = "\n".join(report.errors)
    assert not report.ok and report.samples == 4
    for expected in ("labels [0, 1, 2, 7]", "no surface pixels", "no pixel to generate", "vertex id 60000",
                     "0 outside the surface", "cannot be decoded"):
        assert expected in text, expected
    assert any("vertex_symmetry" in w for w in report.warnings)


def test_check_cli(tmp_path: Path) -> None:
    write(tmp_path / "good")
    ok = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "good")])
    assert ok.exit_code == 0 and "5 samples OK" in ok.output
    (tmp_path / "bad").mkdir()
    missing = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "bad")])
    assert missing.exit_code == 2 and "meta.json is missing" in missing.output
    write(tmp_path / "short", count=3, shard_size=3)
    meta = json.loads((tmp_path / "short" / "meta.json").read_text())
    meta["shards"][0]["samples"] = 4
    meta["num_samples"] = 4
    (tmp_path / "short" / "meta.json").write_text(json.dumps(meta))
    short = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "short")])
    assert short.exit_code == 2 and "holds 3 samples, meta.json says 4" in short.output


def test_meta_and_writer_refuse_bad_input(tmp_path: Path) -> None:
    write(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    for change, message in (({"format": "other"}, "format must be"), ({"version": 9}, "not supported"),
                            ({"surface": "uv"}, "surface must be"), ({"num_samples": 99}, "sum over shards")):
        (tmp_path / "d" / "meta.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(InputError, match=message):
            DatasetMeta.read(tmp_path / "d")
    with pytest.raises(InputError, match="resolution|crop must be"):
        with CropWriter(tmp_path / "e", (H, W), "vertices", 4, np.ones((K, 4), np.float32)) as writer:
            writer.add(CropSample(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4))))
    with pytest.raises(InputError, match="vertex table"):
        CropWriter(tmp_path / "f", (H, W), "vertices", 4)
    with pytest.raises(ConfigError, match="holds \\[16, 8\\] crops"):
        write(tmp_path / "g")
        PersonCropDataset(str(tmp_path / "g"), resolution=[32, 16])


def test_tar_shards_are_plain_uncompressed_tars(tmp_path: Path) -> None:
    write(tmp_path / "d", count=2, shard_size=2)
    with tarfile.open(tmp_path / "d" / "shard-000000.tar", "r:") as tar:
        names = tar.getnames()
    assert names[:4] == ["000000000.image.png", "000000000.regions.png", "000000000.vertices.png", "000000000.json"]


# ----------------------------------------------------------------------------- synthetic dataset


@settings(max_examples=15, deadline=None)
@given(index=st.integers(0, 63), seed=st.integers(0, 3))
def test_synthetic_crops_are_valid_and_deterministic(index: int, seed: int) -> None:
    dataset = SyntheticPersonCrops(resolution=(48, 24), num_samples=64, grid_height=8, grid_width=4, seed=seed,
                                   num_vertices=40)
    item, again = dataset[index], dataset[index]
    for key in item:
        assert torch.equal(item[key], again[key])
    mask, border = item["mask"][0].bool(), item["border"][0].bool()
    body = ~mask & ~border
    assert body.any() and border.any() and not (mask & border).any()
    assert item["vertices"][~body].eq(0).all() and item["vertices"].max() < 32  # grid vertices only
    # border = the dilation ring of SPEC §7.5
    expected = dilate(body, dilation_radius(int(body.sum())))
    assert torch.equal(expected & ~body, border)


def test_synthetic_table_and_symmetry() -> None:
    dataset = SyntheticPersonCrops(resolution=(32, 16), grid_height=4, grid_width=3, num_vertices=20)
    assert dataset.vertex_table.shape == (20, 16)
    assert np.allclose(np.linalg.norm(dataset.vertex_table, axis=1), 1)
    symmetry = dataset.vertex_symmetry
    assert np.array_equal(symmetry[symmetry], np.arange(20))
    assert list(symmetry[:3]) == [2, 1, 0] and list(symmetry[12:]) == list(range(12, 20))
    with pytest.raises(ConfigError):
        SyntheticPersonCrops(grid_height=8, grid_width=8, num_vertices=10)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_synthetic_dataset_differs_across_samples_and_seeds() -> None:
    a = SyntheticPersonCrops(resolution=(32, 16), num_samples=4, seed=0)
    b = SyntheticPersonCrops(resolution=(32, 16), num_samples=4, seed=1)
    assert not torch.equal(a[0]["img"], a[1]["img"])
    assert not torch.equal(a[0]["img"], b[0]["img"])
