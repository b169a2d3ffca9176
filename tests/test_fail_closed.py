"""Fail closed (issue 13): no unanonymized, misplaced or destroyed file from any input or flag.

Every case runs the offline path (``--detections`` or ``--detector none``, a baseline
generator) on tiny inputs made here, so the whole file takes seconds.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sganon.cli.main import cli
from sganon.core.rle import encode_rle

HEIGHT, WIDTH = 32, 48
NO_DETECTORS = ("--generator", "mask-out", "--detector", "none", "--face-detector", "none")


def run(*args: str):
    """The CLI; an exception that escapes it fails the test (catch_exceptions=False)."""
    return CliRunner().invoke(cli, ["anonymize", *map(str, args), "--quiet"], catch_exceptions=False)


def rgb(seed: int = 0, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, (height, width, 3), dtype=np.uint8)


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb(seed)).save(path)
    return path


def person_entry(height: int = HEIGHT, width: int = WIDTH) -> dict:
    mask = np.zeros((height, width), bool)
    mask[4:28, 10:30] = True
    return {"persons": [{"box": [10, 4, 30, 28], "score": 0.9, "mask": encode_rle(mask)}], "faces": []}


def files_under(folder: Path) -> list[Path]:
    # The run manifest (which records the failure) is not an output.
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.jsonl") if folder.exists() else []


def make_video(path: Path, frames: int = 6, width: int = 64, height: int = 48, rate: int = 10) -> None:
    container = av.open(str(path), "w", format="mp4" if path.suffix != ".webm" else None)
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for index in range(frames):
        frame = np.full((height, width, 3), 40 * index % 256, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


# ------------------------------------------------------------------ 1. paths
@pytest.mark.parametrize("file_name", ["/etc/evil.png", "../outside.png", "a/../../outside.png"])
def test_coco_file_names_outside_the_image_folder_are_refused(tmp_path, file_name):
    images = tmp_path / "data" / "images"
    photo(images / "a.png")
    photo(tmp_path / "data" / "outside.png")
    coco = {"images": [{"id": 1, "file_name": file_name}], "annotations": [], "categories": []}
    (tmp_path / "data" / "coco.json").write_text(json.dumps(coco))
    result = run(tmp_path / "data" / "coco.json", "--coco-images", images, "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 1 and "relative path inside" in result.output
    assert files_under(tmp_path / "out") == []


def test_output_inside_an_input_folder_and_inputs_inside_the_output_are_refused(tmp_path):
    photo(tmp_path / "in" / "a.png")
    inside_input = run(tmp_path / "in", "-o", tmp_path / "in" / "out", *NO_DETECTORS)
    assert inside_input.exit_code == 2 and "inside the input folder" in inside_input.output
    assert not (tmp_path / "in" / "out").exists()
    photo(tmp_path / "out" / "b.png")
    input_inside = run(tmp_path / "out" / "b.png", "-o", tmp_path / "out", *NO_DETECTORS)
    assert input_inside.exit_code == 2 and "inside the output folder" in input_inside.output
    coco_dir = tmp_path / "out" / "images"
    photo(coco_dir / "c.png")
    (tmp_path / "coco.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "c.png"}], "annotations": []}))
    coco = run(tmp_path / "coco.json", "--coco-images", coco_dir, "-o", tmp_path / "out", *NO_DETECTORS)
    assert coco.exit_code == 2 and "inside the output folder" in coco.output


def test_export_detections_naming_an_input_is_refused_before_anything_is_written(tmp_path):
    source = photo(tmp_path / "a.png")
    before = source.read_bytes()
    result = run(source, "-o", tmp_path / "out", "--export-detections", source, *NO_DETECTORS)
    assert result.exit_code == 2 and "is an input" in result.output
    assert source.read_bytes() == before and not (tmp_path / "out").exists()


def test_an_existing_detections_file_is_replaced_only_with_overwrite(tmp_path):
    """Issue 21: a JPEG beside the photos became JSON (exit 0, no --overwrite given)."""
    source = photo(tmp_path / "in" / "a.png")
    beside = photo(tmp_path / "beside.png", seed=1)
    before = beside.read_bytes()
    refused = run(source, "-o", tmp_path / "out", "--export-detections", beside, *NO_DETECTORS)
    assert refused.exit_code == 2 and "already exists" in refused.output and "--overwrite" in refused.output
    assert beside.read_bytes() == before and not (tmp_path / "out").exists()
    replaced = run(source, "-o", tmp_path / "out", "--export-detections", beside, "--overwrite", *NO_DETECTORS)
    assert replaced.exit_code == 0 and json.loads(beside.read_text())["images"][0]["file"] == "a.png"


@pytest.mark.parametrize("where", ["output", "manifest", "visualization", "folder"])
def test_detections_file_colliding_with_what_the_run_writes_is_refused(tmp_path, where):
    source = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    export = {
        "output": out / "a.png",
        "manifest": out / "manifest.jsonl",
        "visualization": out / "a.visualization.png",
        "folder": tmp_path / "in",
    }[where]
    result = run(source, "-o", out, "--export-detections", export, "--visualize", "--overwrite", *NO_DETECTORS)
    assert result.exit_code == 2 and "--export-detections" in result.output, result.output
    assert not out.exists() and [p.name for p in (tmp_path / "in").iterdir()] == ["a.png"]


def test_unwritable_places_are_refused_before_anything_is_written(tmp_path):
    """Checked by creating a file there (as root, permission bits say yes to everything)."""
    source = photo(tmp_path / "in" / "a.png")
    (tmp_path / "blocker").write_text("a file, not a folder")
    nested = tmp_path / "nested"
    photo(nested / "sub" / "b.png")
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "sub").write_text("a file where the run needs a folder")
    cases = [
        ([source, "-o", tmp_path / "blocker" / "out"], "is a file"),
        ([source, "-o", tmp_path / "out", "--export-detections", "/proc/sganon-test/d.json"], "cannot write"),
        ([nested, "-o", tmp_path / "out2"], "is a file, not a folder"),
    ]
    for args, message in cases:
        result = run(*args, *NO_DETECTORS)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "out").exists() and files_under(tmp_path / "out2") == [tmp_path / "out2" / "sub"]


def test_a_manifest_that_sganon_did_not_write_is_replaced_only_with_overwrite(tmp_path):
    source = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text("my own notes\n")
    refused = run(source, "-o", out, *NO_DETECTORS)
    assert refused.exit_code == 2 and "not a sganon run manifest" in refused.output
    assert (out / "manifest.jsonl").read_text() == "my own notes\n" and files_under(out) == []
    assert run(source, "-o", out, *NO_DETECTORS, "--overwrite").exit_code == 0
    assert run(photo(tmp_path / "in2" / "b.png"), "-o", out, *NO_DETECTORS).exit_code == 0  # sganon's: replaced


@settings(max_examples=50, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=12), max_size=4),
    cut=st.floats(0, 1),
)
def test_every_manifest_sganon_writes_is_recognized_also_when_cut_short(names, cut):
    """Whatever a run wrote, also when killed while appending, counts as sganon's manifest."""
    import tempfile

    from sganon.core.manifest import InputFacts, ManifestRecord, ManifestWriter
    from sganon.core.output_plan import is_sganon_manifest

    with tempfile.TemporaryDirectory() as folder:
        with ManifestWriter(Path(folder)) as writer:
            for name in names:
                writer.add(ManifestRecord(InputFacts(f"in/{name}", name, 1, "0" * 64, ""), "done"))
        path = Path(folder) / "manifest.jsonl"
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        assert is_sganon_manifest(path)


# ------------------------------------------------------------------ 2. detections files
def test_video_without_detections_for_every_frame_fails_and_writes_nothing(tmp_path):
    make_video(tmp_path / "clip.mp4", frames=6)
    none = tmp_path / "none.json"
    none.write_text(json.dumps({"images": [{"file": "other.mp4", "frame": 0, **person_entry()}]}))
    some = tmp_path / "some.json"
    some.write_text(json.dumps({"images": [{"file": "clip.mp4", "frame": i, **person_entry(48, 64)} for i in range(3)]}))
    for detections in (none, some):
        result = run(tmp_path / "clip.mp4", "-o", tmp_path / "out", "--generator", "mask-out", "--detections", detections)
        assert result.exit_code == 1 and "no " in result.output, result.output
        assert files_under(tmp_path / "out") == []
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps({"images": [{"file": "clip.mp4", "frame": i, **person_entry(48, 64)} for i in range(9)]}))
    result = run(tmp_path / "clip.mp4", "-o", tmp_path / "out", "--generator", "mask-out", "--detections", longer)
    assert result.exit_code == 1 and "another video" in result.output
    assert files_under(tmp_path / "out") == []


def test_exported_detections_are_applied_only_to_the_same_pixels(tmp_path):
    source = photo(tmp_path / "in" / "a.png")
    exported = tmp_path / "found.json"
    first = run(source, "-o", tmp_path / "out1", "--generator", "mask-out", "--detections",
                _write(tmp_path / "given.json", [{"file": "a.png", **person_entry()}]), "--export-detections", exported)
    assert first.exit_code == 0, first.output
    entry = json.loads(exported.read_text())["images"][0]
    assert entry["size"] == [HEIGHT, WIDTH] and len(entry["sha256"]) == 64
    again = run(source, "-o", tmp_path / "out2", "--generator", "mask-out", "--detections", exported)
    assert again.exit_code == 0, again.output
    mirrored = tmp_path / "mirror" / "a.png"
    mirrored.parent.mkdir()
    Image.fromarray(rgb(0)[:, ::-1].copy()).save(mirrored)  # same name, same size, other pixels
    result = run(mirrored, "-o", tmp_path / "out3", "--generator", "mask-out", "--detections", exported)
    assert result.exit_code == 1 and "sha256" in result.output
    assert files_under(tmp_path / "out3") == []


def _write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"images": entries}))
    return path


def coco_run(tmp_path: Path, annotation: dict, image_entry: dict, category: str = "person"):
    images = tmp_path / "images"
    photo(images / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", **image_entry}], "annotations": [annotation],
            "categories": [{"id": 1, "name": category}]}  # fmt: skip
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    return run(tmp_path / "coco.json", "--coco-images", images, "-o", tmp_path / "out", *NO_DETECTORS)


def test_coco_person_masks_of_another_size_fail(tmp_path):
    mask = np.ones((HEIGHT * 2, WIDTH * 2), bool)
    annotation = {"id": 5, "image_id": 1, "category_id": 1, "segmentation": encode_rle(mask)}
    result = coco_run(tmp_path, annotation, {"height": HEIGHT, "width": WIDTH})
    assert result.exit_code == 1 and "RLE" in result.output
    assert files_under(tmp_path / "out") == []


def test_coco_persons_without_image_size_and_capitalized_category_are_anonymized(tmp_path):
    annotation = {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[10, 4, 30, 4, 30, 28, 10, 28]]}
    result = coco_run(tmp_path, annotation, {}, category="Person")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out" / "images" / "a.png"))
    assert (out[6:26, 12:28] == 0).all()  # mask-out painted the annotated person


def test_coco_person_with_only_a_bbox_is_anonymized(tmp_path):
    annotation = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [10, 4, 20, 24]}
    result = coco_run(tmp_path, annotation, {"height": HEIGHT, "width": WIDTH})
    assert result.exit_code == 0, result.output
    assert (np.asarray(Image.open(tmp_path / "out" / "images" / "a.png"))[4:28, 10:30] == 0).all()


# ------------------------------------------------------------------ 3. every frame or none
@pytest.mark.parametrize("suffix", [".gif", ".tiff"])
def test_multi_frame_images_are_refused(tmp_path, suffix):
    frames = [Image.fromarray(rgb(seed)) for seed in range(3)]
    frames[0].save(tmp_path / f"many{suffix}", save_all=True, append_images=frames[1:])
    result = run(tmp_path / f"many{suffix}", "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 1 and "3 frames" in result.output
    assert files_under(tmp_path / "out") == []


def test_start_is_measured_from_the_first_timestamp(tmp_path):
    """A stream whose first timestamp is 10 s: --start 0.2 --end 0.4 keeps frames 2 and 3."""
    path = tmp_path / "late.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for index in range(8):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * index, np.uint8), format="rgb24")
        frame.pts = 100 + index  # time base 1/10: 10 s + index / 10
        frame.time_base = Fraction(1, 10)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    result = run(path, "-o", tmp_path / "out", *NO_DETECTORS, "--start", "0.2", "--end", "0.4",
                 "--export-detections", tmp_path / "found.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = [e["frame"] for e in json.loads((tmp_path / "found.json").read_text())["images"]]
    assert frames == [2, 3]  # absolute frame numbers


# ------------------------------------------------------------------ 4. formats
def test_webm_is_written_as_mp4_with_a_notice(tmp_path):
    make_video(tmp_path / "clip.webm", frames=3)
    result = run(tmp_path / "clip.webm", "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 0, result.output
    assert "clip.mp4" in result.output and (tmp_path / "out" / "clip.mp4").exists()


def test_inputs_that_would_share_an_output_name_are_refused(tmp_path):
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "a.jpg", seed=1)
    result = run(tmp_path / "in", "-o", tmp_path / "out", *NO_DETECTORS, "--ext", "png")
    assert result.exit_code == 2 and "would both be written as 'a.png'" in result.output
    assert files_under(tmp_path / "out") == []


def test_folders_report_the_files_they_skip(tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "notes.txt").write_text("hello")
    result = run(tmp_path / "in", "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "notes.txt" in result.output


def test_odd_sized_video_is_written_420_at_an_even_size(tmp_path):
    path = tmp_path / "odd.mkv"
    container = av.open(str(path), "w")
    stream = container.add_stream("ffv1", rate=10)
    stream.width, stream.height, stream.pix_fmt = 33, 21, "yuv444p"
    for index in range(3):
        frame = av.VideoFrame.from_ndarray(np.full((21, 33, 3), 50 * index, np.uint8), format="rgb24")
        for packet in stream.encode(frame.reformat(format="yuv444p")):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    result = run(path, "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out" / "odd.mkv")) as written:
        video = written.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (34, 22)
        assert video.codec_context.pix_fmt == "yuv420p"


# ------------------------------------------------------------------ 5. memory
def test_images_over_max_pixels_fail_before_decoding(tmp_path):
    source = photo(tmp_path / "a.png")
    result = run(source, "-o", tmp_path / "out", *NO_DETECTORS, "--max-pixels", str(HEIGHT * WIDTH - 1))
    assert result.exit_code == 1 and "--max-pixels" in result.output
    assert files_under(tmp_path / "out") == []
    assert run(source, "-o", tmp_path / "out", *NO_DETECTORS, "--max-pixels", str(HEIGHT * WIDTH)).exit_code == 0


# ------------------------------------------------------------------ 6. no tracebacks
def bad_runs(tmp_path: Path) -> list[tuple[list, int]]:
    source = photo(tmp_path / "a.png")
    (tmp_path / "blocker").write_text("a file, not a folder")
    bad_frame = _write(tmp_path / "bad_frame.json", [{"file": "a.png", "frame": "abc", **person_entry()}])
    bad_box = _write(tmp_path / "bad_box.json", [{"file": "a.png", "persons": [{"box": "x"}]}])
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    out = tmp_path / "out"
    return [
        ([source, "-o", out, "--seed", "18446744073709551616"], 2),
        ([source, "-o", out, "--seed", "-1"], 2),
        ([source, "-o", out, "--start", "nan"], 2),
        ([source, "-o", out, "--end", "inf"], 2),
        ([source, "-o", out, "--max-pixels", "0"], 2),
        ([source, "-o", out, "--export-detections", tmp_path / "blocker" / "d.json", *NO_DETECTORS], 2),
        ([source, "-o", out, "--detections", bad_frame, "--generator", "mask-out"], 2),
        ([source, "-o", out, "--detections", not_json, "--generator", "mask-out"], 2),
        ([source, "-o", out, "--detections", bad_box, "--generator", "mask-out"], 1),
        ([tmp_path / "missing.png", "-o", out], 2),
    ]


def test_bad_flags_and_files_give_one_clear_line_and_no_traceback(tmp_path):
    for args, code in bad_runs(tmp_path):
        result = run(*args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output and "Error" in result.output or "FAILED" in result.output, args
        assert files_under(tmp_path / "out") == [], args


# ------------------------------------------------------------------ memory
def test_memory_per_person_is_its_box_not_the_image():
    """Many persons on a large image: no image-sized mask per person (numpy peak traced)."""
    import tracemalloc

    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble
    from sganon.core.detections import Detections
    from sganon.core.structures import Box, Detection

    side, count = 1500, 30
    image = np.full((side, side, 3), 120, np.uint8)
    persons = []
    for i in range(count):
        x, y = 40 + (i % 10) * 140, 60 + (i // 10) * 450
        mask = np.zeros((80, 40), bool)
        mask[5:75, 5:35] = True
        persons.append(Detection(Box(x, y, x + 40, y + 80), 0.9, mask))
    parts = assemble(preset="baseline.mask-black", detector="none", face_detector="none", detections_given=True)
    anonymizer = Anonymizer(parts)
    tracemalloc.start()
    try:
        result = anonymizer.anonymize(image, Detections(persons))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.detections.persons) == count and result.replaced.sum() >= count * 70 * 30
    # The output image and a few image-sized bool masks (replaced, covered, claimed): under
    # 4 x the RGB size; one bool mask per person would add count x side^2 bytes (67 MB).
    assert peak < 4 * image.nbytes, f"peak {peak / 1e6:.1f} MB for a {image.nbytes / 1e6:.1f} MB image"
