"""``sganon anonymize`` on images, folders and COCO datasets; broken inputs fail closed."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sganon.cli.main import cli
from sganon.core.rle import encode_rle

HEIGHT, WIDTH = 48, 64


def run(*args: str):
    return CliRunner().invoke(cli, ["anonymize", *args, "--quiet"], catch_exceptions=False)


def random_rgb(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def person_mask(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[8:44, 20:40] = True
    return mask


def detections_file(path: Path, names: list[str], height: int = HEIGHT, width: int = WIDTH, face: bool = True) -> Path:
    mask = person_mask(height, width)
    entry = {"persons": [{"box": [20, 8, 40, 44], "score": 0.9, "mask": encode_rle(mask)}], "faces": []}
    if face:
        entry["faces"] = [{"box": [48, 2, 60, 14], "score": 0.8}]
    path.write_text(json.dumps({"images": [{"file": name, **entry} for name in names]}))
    return path


def exported_boxes(path: Path, name: str, height: int, width: int) -> np.ndarray:
    data = json.loads(path.read_text())
    entry = next(e for e in data["images"] if e["file"] == name)
    inside = np.zeros((height, width), bool)
    for found in entry["persons"] + entry["faces"]:
        x0, y0, x1, y1 = found["box"]
        inside[y0:y1, x0:x1] = True
    return inside


def test_png_pixels_outside_the_exported_boxes_are_unchanged_byte_for_byte(tmp_path):
    source = random_rgb()
    Image.fromarray(source).save(tmp_path / "photo.png")
    given = detections_file(tmp_path / "given.json", ["photo.png"])
    result = run(
        str(tmp_path / "photo.png"),
        "-o",
        str(tmp_path / "out"),
        "--generator",
        "mask-out",
        "--detections",
        str(given),
        "--export-detections",
        str(tmp_path / "found.json"),
    )
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output
    output = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert output.shape == source.shape
    inside = exported_boxes(tmp_path / "found.json", "photo.png", HEIGHT, WIDTH)
    assert np.array_equal(output[~inside], source[~inside])
    assert (output[person_mask()] == 0).all()  # mask-out paints the person black
    assert (output[2:14, 48:60] != source[2:14, 48:60]).any()  # the face without a body is anonymized
    exported = json.loads((tmp_path / "found.json").read_text())["images"][0]
    assert set(exported["persons"][0]) >= {"box", "score", "mask"} and exported["faces"][0]["box"]


def test_reusing_exported_detections_reproduces_the_output(tmp_path):
    Image.fromarray(random_rgb(seed=5)).save(tmp_path / "photo.png")
    given = detections_file(tmp_path / "given.json", ["photo.png"])
    assert (
        run(
            str(tmp_path / "photo.png"),
            "-o",
            str(tmp_path / "a"),
            "--detections",
            str(given),
            "--export-detections",
            str(tmp_path / "found.json"),
        ).exit_code
        == 0
    )
    assert (
        run(
            str(tmp_path / "photo.png"), "-o", str(tmp_path / "b"), "--detections", str(tmp_path / "found.json")
        ).exit_code
        == 0
    )
    assert (tmp_path / "a" / "photo.png").read_bytes() == (tmp_path / "b" / "photo.png").read_bytes()


def save_16bit(path: Path, values: np.ndarray) -> None:
    image = Image.fromarray(values.astype(np.uint16))
    assert image.mode == "I;16"
    image.save(path)


def test_folders_are_mirrored_and_modes_kept(tmp_path):
    tree = tmp_path / "in"
    (tree / "sub" / "deeper").mkdir(parents=True)
    rgb = random_rgb(seed=1)
    gray = random_rgb(seed=2)[..., 0]
    rgba = np.concatenate([random_rgb(seed=3), np.full((HEIGHT, WIDTH, 1), 128, np.uint8)], axis=2)
    deep = np.random.default_rng(4).integers(0, 65536, (HEIGHT, WIDTH)).astype(np.uint16)
    Image.fromarray(rgb).save(tree / "rgb.png")
    Image.fromarray(gray).save(tree / "sub" / "gray.png")
    Image.fromarray(rgba).save(tree / "sub" / "alpha.png")
    save_16bit(tree / "sub" / "deeper" / "deep.png", deep)
    (tree / "notes.txt").write_text("not an image")
    names = ["rgb.png", "sub/gray.png", "sub/alpha.png", "sub/deeper/deep.png"]
    given = detections_file(tmp_path / "given.json", names, face=False)
    result = run(str(tree), "-o", str(tmp_path / "out"), "--generator", "mask-out", "--detections", str(given))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([*names, "manifest.jsonl"])
    inside = person_mask()
    for name, source in zip(names, [rgb, gray, rgba, deep]):
        image = Image.open(out / name)
        assert image.size == (WIDTH, HEIGHT)
        values = np.asarray(image)
        assert values.dtype == source.dtype and values.shape == source.shape, name
        # A thin dilation ring around the mask may change too; far from it nothing does.
        far = np.ones((HEIGHT, WIDTH), bool)
        far[4:48, 16:44] = False
        assert np.array_equal(values[far], source[far]), name
        assert (values[inside][..., :3] == 0).all() if values.ndim == 3 else (values[inside] == 0).all(), name
    assert (np.asarray(Image.open(out / "sub/alpha.png"))[..., 3] == 128).all()  # alpha kept


@pytest.mark.parametrize(
    ("name", "mode", "ext", "written_mode"),
    [
        ("print.tif", "CMYK", None, "CMYK"),
        ("print.jpg", "CMYK", None, "CMYK"),
        ("print.tif", "CMYK", "png", "RGB"),  # PNG cannot hold CMYK
        ("palette.png", "P", None, "P"),
        ("bilevel.png", "1", None, "1"),
    ],
)
def test_cmyk_palette_and_bilevel_images_keep_their_mode(tmp_path, name, mode, ext, written_mode):
    """Issue 21: a CMYK TIFF was written as RGB (the docs promise the input's mode)."""
    rgb = random_rgb(seed=5)
    source = Image.fromarray(rgb)
    source = source.quantize(64) if mode == "P" else source.convert(mode)
    source.save(tmp_path / name)
    stored = Image.open(tmp_path / name)
    given = detections_file(tmp_path / "given.json", [name], face=False)
    extra = ["--ext", ext] if ext else []
    result = run(str(tmp_path / name), "-o", str(tmp_path / "out"), "--generator", "mask-out", "--detections",
                 str(given), *extra)
    assert result.exit_code == 0, result.output
    written = Image.open(tmp_path / "out" / (Path(name).stem + "." + ext if ext else name))
    assert written.mode == written_mode and written.size == (WIDTH, HEIGHT)
    far = np.ones((HEIGHT, WIDTH), bool)
    far[4:48, 16:44] = False
    if written.format != "JPEG":  # lossless: every pixel far from the person keeps its value
        expected = np.asarray(stored if written_mode == mode else stored.convert("RGB"))
        assert np.array_equal(np.asarray(written)[far], expected[far])
    masked = np.asarray(written.convert("RGB"))[person_mask()]
    if mode == "P":  # the palette colour nearest to black, everywhere
        assert len(np.unique(masked, axis=0)) == 1
    else:
        assert (masked <= 32).all()


def test_exif_orientation_is_applied_and_ext_changes_the_format(tmp_path):
    stored = random_rgb(seed=7)  # 48 x 64 as stored; orientation 6 = rotate 90 degrees to view
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    result = run(str(tmp_path / "turned.jpg"), "-o", str(tmp_path / "out"), "--ext", "png")
    assert result.exit_code == 0, result.output
    output = Image.open(tmp_path / "out" / "turned.png")
    assert output.format == "PNG" and output.size == (HEIGHT, WIDTH)  # upright: width and height swapped
    result = run(str(tmp_path / "turned.jpg"), "-o", str(tmp_path / "out2"))
    assert Image.open(tmp_path / "out2" / "turned.jpg").format == "JPEG"


def zero_size_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def broken_inputs(folder: Path) -> dict[str, bytes]:
    buffer = folder / "whole.jpg"
    Image.fromarray(random_rgb(seed=9)).save(buffer, quality=90)
    whole = buffer.read_bytes()
    buffer.unlink()
    return {
        "truncated.jpg": whole[: len(whole) // 2],
        "empty.png": b"",
        "text.jpg": b"this is not a picture\n",
        "zero.png": zero_size_png(),
        "corrupt.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4,
    }


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.png", "text.jpg", "zero.png", "corrupt.mp4"])
def test_broken_inputs_give_a_clear_error_and_no_output(tmp_path, name):
    source = tmp_path / name
    source.write_bytes(broken_inputs(tmp_path)[name])
    result = run(str(source), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"FAILED {source}" in result.output and "no output was written" in result.output
    # Only the run manifest (which records the failure) may be there.
    out = tmp_path / "out"
    assert [p.name for p in out.rglob("*")] in ([], ["manifest.jsonl"]) if out.exists() else True


def test_continue_on_error_processes_the_good_inputs_and_still_fails(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_empty.png").write_bytes(b"")
    Image.fromarray(random_rgb()).save(tmp_path / "in" / "b_good.png")
    stopped = run(str(tmp_path / "in"), "-o", str(tmp_path / "stop"))
    assert stopped.exit_code == 1 and not (tmp_path / "stop" / "b_good.png").exists()
    assert "1 input(s) not processed" in stopped.output
    going = run(str(tmp_path / "in"), "-o", str(tmp_path / "go"), "--continue-on-error")
    assert going.exit_code == 1 and (tmp_path / "go" / "b_good.png").exists()
    assert sorted(p.name for p in (tmp_path / "go").iterdir()) == ["b_good.png", "manifest.jsonl"]  # no temp files


def test_unknown_flags_and_missing_inputs_are_usage_errors(tmp_path):
    assert run("x.png", "-o", str(tmp_path), "--no-such-flag").exit_code == 2
    missing = run(str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"))
    assert missing.exit_code == 2 and "no such file" in missing.output
    assert not (tmp_path / "out").exists()


def test_coco_dataset_keeps_its_annotations_and_anonymizes_annotated_persons(tmp_path):
    images = tmp_path / "dataset" / "images"
    images.mkdir(parents=True)
    first, second = random_rgb(seed=11), random_rgb(seed=12)
    Image.fromarray(first).save(images / "000001.png")
    Image.fromarray(second).save(images / "000002.png")
    polygon = [20, 8, 40, 8, 40, 44, 20, 44]
    annotations = {
        "images": [{"id": 1, "file_name": "000001.png", "height": HEIGHT, "width": WIDTH},
                   {"id": 2, "file_name": "000002.png", "height": HEIGHT, "width": WIDTH}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": [polygon], "bbox": [20, 8, 20, 36],
                         "area": 720, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    (tmp_path / "dataset" / "instances.json").write_text(json.dumps(annotations))
    result = run(
        str(tmp_path / "dataset" / "instances.json"),
        "--coco-images",
        str(images),
        "-o",
        str(tmp_path / "out"),
        "--generator",
        "mask-out",
        "--detector",
        "none",
        "--face-detector",
        "none",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "instances.json").read_text()) == annotations
    anonymized = np.asarray(Image.open(tmp_path / "out" / "images" / "000001.png"))
    assert (anonymized[10:42, 22:38] == 0).all()
    assert np.array_equal(anonymized[:, :10], first[:, :10])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "images" / "000002.png")), second)
