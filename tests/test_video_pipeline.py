"""The video pipeline's stages: overlapped decode/anonymize/encode, seeking to --start,
truncated videos, streams that are not copied. Tiny clips made here (baseline generator)."""

from __future__ import annotations

import hashlib
import json
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from sganon.cli.main import cli
from sganon.core.anonymizer import Anonymizer
from sganon.core.assembly import assemble
from sganon.core.detections import DetectionFile
from sganon.core.jobs import collect_jobs
from sganon.core.video import VideoTranscoder
from sganon.core.rle import encode_rle
from sganon.core.runners import FileAnonymizer, RunSettings
from sganon.core.runners.stages import StageThreads

WIDTH, HEIGHT, RATE = 64, 48, 10
NO_DETECTORS = ("--generator", "mask-out", "--detector", "none", "--face-detector", "none")


def frame_pixels(index: int) -> np.ndarray:
    """Noise plus a brightness that says the frame's number (index * 6)."""
    noise = np.random.default_rng(index).integers(0, 20, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return (noise + index * 6).astype(np.uint8)


def make_video(
    path: Path,
    frames: int = 40,
    gop: int = 5,
    faststart: bool = False,
    language: str | None = None,
    subtitle: bool = False,
) -> None:
    """H.264 (a key frame every ``gop`` frames), optionally AAC audio with a language tag and
    a mov_text subtitle track holding a name."""
    container = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {})
    key_frames = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    video = container.add_stream("libx264", rate=RATE, options=key_frames)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    audio = None
    if language is not None:
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "mono"
        audio.metadata["language"] = language
    if subtitle:
        text_stream = container.add_mux_stream("mov_text")
        text_stream.time_base = Fraction(1, 1000)
    for index in range(frames):
        for packet in video.encode(av.VideoFrame.from_ndarray(frame_pixels(index), format="rgb24")):
            container.mux(packet)
    if audio is not None:
        samples = 44100 * frames // RATE
        tone = (0.2 * np.sin(np.arange(samples) / 10)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, start
            for packet in audio.encode(frame):
                container.mux(packet)
    if subtitle:
        text = b"Alice Example, Main Street 1"
        packet = av.Packet(len(text).to_bytes(2, "big") + text)
        packet.stream, packet.pts, packet.dts, packet.duration = text_stream, 0, 0, 1000
        packet.time_base = Fraction(1, 1000)
        container.mux(packet)
    for stream in (video, audio):
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
    container.close()


def person_detections(path: Path, name: str, frames: int) -> Path:
    """A detections file with one moving person per frame."""
    entries = []
    for index in range(frames):
        x0 = 4 + index % 30
        mask = np.zeros((HEIGHT, WIDTH), bool)
        mask[8:40, x0 : x0 + 16] = True
        entries.append(
            {
                "file": name,
                "frame": index,
                "persons": [{"box": [x0, 8, x0 + 16, 40], "score": 0.9, "mask": encode_rle(mask)}],
                "faces": [],
            }
        )
    path.write_text(json.dumps({"images": entries}))
    return path


def anonymize_api(source: Path, output: Path, detections: Path, **settings):
    """The video through the library (not the CLI), with settings the CLI does not expose."""
    parts = assemble(preset="baseline.pixelate-8", detector="none", face_detector="none", detections_given=True)
    runner = FileAnonymizer(Anonymizer(parts), output, RunSettings(reuse=DetectionFile.read(detections), **settings))
    return runner.run(collect_jobs([source], None, []))


def packets(path: Path, kind: str = "video") -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.size]


def frames_to_encoder(monkeypatch) -> dict[str, list[str]]:
    """Records the sha256 of every frame each video run hands to the H.264 encoder (one list
    per output, in run order). Runs are compared on these: libx264 was seen to encode
    identical frames into different bytes on a heavily loaded machine."""
    from sganon.core.video import VideoTranscoder

    runs: dict[str, list[str]] = {}
    write = VideoTranscoder.write

    def recording_write(self, rgb):
        runs.setdefault(str(self.destination), []).append(hashlib.sha256(np.ascontiguousarray(rgb)).hexdigest())
        return write(self, rgb)

    monkeypatch.setattr(VideoTranscoder, "write", recording_write)
    return runs


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def sganon_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("sganon-")]


def run_cli(*args):
    return CliRunner().invoke(cli, ["anonymize", *map(str, args), "--quiet"], catch_exceptions=False)


# ------------------------------------------------------------------ A. overlapped stages
def test_overlapped_stages_write_the_same_frames_as_one_thread(tmp_path, monkeypatch):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=30, language="eng")
    detections = person_detections(tmp_path / "given.json", "clip.mp4", 30)
    encoded = frames_to_encoder(monkeypatch)
    one = anonymize_api(source, tmp_path / "one", detections, overlap=False)
    overlapped = anonymize_api(source, tmp_path / "overlapped", detections, overlap=True)
    assert not one.failed and not overlapped.failed
    first, second = encoded.values()
    assert len(first) == 30 and first == second  # the same frames, in the same order
    assert packets(tmp_path / "overlapped" / "clip.mp4", "audio") == packets(tmp_path / "one" / "clip.mp4", "audio")
    frames = decoded(tmp_path / "overlapped" / "clip.mp4")
    assert len(frames) == 30
    original = decoded(source)
    assert not np.array_equal(frames[3][8:40, 7:23], original[3][8:40, 7:23])  # the person was replaced
    assert not sganon_threads()


@pytest.mark.parametrize("failing", ["anonymize", "encode"])
def test_an_error_in_any_stage_stops_all_and_writes_nothing(tmp_path, monkeypatch, failing):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=30)
    detections = person_detections(tmp_path / "given.json", "clip.mp4", 30)
    calls = []

    def fail_at_frame_12(original):
        def wrapped(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 12:
                raise RuntimeError(f"{failing} broke")
            return original(self, *args, **kwargs)

        return wrapped

    if failing == "anonymize":
        monkeypatch.setattr(Anonymizer, "anonymize", fail_at_frame_12(Anonymizer.anonymize))
    else:
        monkeypatch.setattr(VideoTranscoder, "write", fail_at_frame_12(VideoTranscoder.write))
    result = anonymize_api(source, tmp_path / "out", detections)
    assert result.failed and f"{failing} broke" in result.failed[0][1]
    assert not result.written
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert not sganon_threads()


def test_a_decoder_error_stops_the_other_stages(tmp_path):
    def frames():
        yield 1
        yield 2
        raise ValueError("decode broke")

    stages = StageThreads(queue_size=1)
    written: list[int] = []
    write = stages.consume(written.append)
    with pytest.raises(ValueError, match="decode broke"):
        try:
            for item in stages.produce(frames()):
                write(item)
            stages.finish()
        except BaseException:
            stages.abort()
            raise
    assert not sganon_threads()


# ------------------------------------------------------------------ B. seeking to --start
def test_start_seeks_to_the_key_frame_before_and_keeps_absolute_indices(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=40, gop=5)
    everything = decoded(source)
    with VideoTranscoder(source, tmp_path / "out.mp4", start=2.2, end=3.0) as video:
        seen = []
        for index, rgb in video.frames():
            seen.append(index)
            assert np.array_equal(rgb, everything[index])
            video.write(rgb)
        assert video.seeked
    assert seen == list(range(22, 30))
    assert len(decoded(tmp_path / "out.mp4")) == 8


def test_detections_exported_with_one_span_are_reused_with_another(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=40, gop=5)
    no_detectors = ("--preset", "baseline.pixelate-8", "--detector", "none", "--face-detector", "none")
    exported = tmp_path / "span.json"
    first = run_cli(source, "-o", tmp_path / "a", "--start", "1.0", "--export-detections", exported, *no_detectors)
    assert first.exit_code == 0, first.output
    entries = json.loads(exported.read_text())["images"]
    assert [e["frame"] for e in entries] == list(range(10, 40))
    # The frames written are those the indices name (brightness = index * 6).
    for entry, frame in zip(entries, decoded(tmp_path / "a" / "clip.mp4")):
        assert abs(float(frame.mean()) - float(frame_pixels(entry["frame"]).mean())) < 3
    inside = run_cli(source, "-o", tmp_path / "b", "--start", "1.5", "--end", "3.0", "--detections", exported)
    assert inside.exit_code == 0, inside.output
    assert len(decoded(tmp_path / "b" / "clip.mp4")) == 15
    before = run_cli(source, "-o", tmp_path / "c", "--start", "0.5", "--detections", exported)
    assert before.exit_code == 1 and "FAILED" in before.output
    assert not (tmp_path / "c" / "clip.mp4").exists()


# ------------------------------------------------------------------ C. truncation, streams
@pytest.mark.parametrize("kept", [0.6, 0.75, 0.9])
def test_a_faststart_video_cut_mid_stream_fails_without_output(tmp_path, kept):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=40, faststart=True)
    data = source.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index is at the front
    broken = tmp_path / "in" / "cut.mp4"
    broken.parent.mkdir()
    broken.write_bytes(data[: int(len(data) * kept)])
    result = run_cli(broken, "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 1 and f"FAILED {broken}" in result.output
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != "manifest.jsonl"]
    assert not written  # only the run manifest, which lists the input as failed
    entries = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [entry["status"] for entry in entries] == ["failed"]


def test_subtitles_are_dropped_with_a_notice_and_audio_keeps_its_language(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, frames=10, language="deu", subtitle=True)
    with av.open(str(source)) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle"]
    result = run_cli(source, "-o", tmp_path / "out", *NO_DETECTORS)
    assert result.exit_code == 0, result.output
    assert "not copied: subtitle" in result.output
    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].metadata.get("language") == "deu"
    assert b"Alice Example" not in (tmp_path / "out" / "clip.mp4").read_bytes()


def test_frame_batches_give_the_frames_of_single_frame_runs(tmp_path, monkeypatch):
    """--frame-batch: the same frames as frame by frame (an any-size generator runs per
    frame inside a batch, so even its random draws keep their order)."""
    source = tmp_path / "clip.mp4"
    make_video(source, frames=12)
    detections = person_detections(tmp_path / "d.json", "clip.mp4", 12)
    encoded = frames_to_encoder(monkeypatch)
    one = anonymize_api(source, tmp_path / "one", detections)
    batched = anonymize_api(source, tmp_path / "batched", detections, frame_batch=5)
    assert not one.failed and not batched.failed
    first, second = encoded.values()
    assert len(first) == 12 and first == second  # the same frames, in the same order
    assert len(batched.timings) == 12


def test_detection_frames_of_a_batch_go_through_the_detector_together(tmp_path):
    """With --frame-batch 4 and --detect-every 2 the detector gets the chunk's detection frames
    in one detect_batch call; every frame is written, in order."""
    from sganon.core.interfaces import Detector
    from sganon.core.structures import Box, Detection

    calls: list[int] = []

    class CountingDetector(Detector):
        name = "counting"
        description = "test"

        def detect(self, image):
            box = Box(4, 8, 20, 40)
            return [Detection(box, 0.9, np.ones((box.height, box.width), bool))]

        def detect_batch(self, images):
            calls.append(len(images))
            return super().detect_batch(images)

    source = tmp_path / "clip.mp4"
    make_video(source, frames=10)
    parts = assemble(preset="baseline.pixelate-8", detector="none", face_detector="none")
    from dataclasses import replace

    parts = replace(parts, detector=CountingDetector())
    runner = FileAnonymizer(Anonymizer(parts), tmp_path / "out", RunSettings(frame_batch=4, detect_every=2))
    result = runner.run(collect_jobs([source], None, []))
    assert not result.failed and len(result.timings) == 10
    assert calls == [2, 2, 1]  # frames 0,2 | 4,6 | 8
    assert len(decoded(tmp_path / "out" / "clip.mp4")) == 10


def test_the_detectors_see_a_rotated_video_upright(tmp_path):
    """A phone's portrait video is stored sideways with a display rotation: the detectors get
    each frame turned as players show it (people upright), and what they find is mapped back
    onto the stored frame; the output keeps the rotation."""
    from dataclasses import replace

    from sganon.core.interfaces import Detector
    from sganon.core.structures import Box, Detection

    seen: list[tuple[int, int]] = []
    upright_box = Box(2, 4, 12, 40)  # a tall person at the left of the upright picture

    class UprightDetector(Detector):
        name = "upright"
        description = "test"

        def detect(self, image):
            seen.append(image.shape[:2])
            keypoints = np.array([[5.5, 6.5, 1.0]], np.float32)  # the nose, near the top
            return [Detection(upright_box, 0.9, np.ones((upright_box.height, upright_box.width), bool), keypoints)]

    source = tmp_path / "portrait.mp4"
    container = av.open(str(source), "w", format="mp4")
    video = container.add_stream("libx264", rate=RATE)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.set_display_rotation(-90)  # shown turned a quarter clockwise, as ffmpeg's autorotate does
    for index in range(4):
        for packet in video.encode(av.VideoFrame.from_ndarray(frame_pixels(index), format="rgb24")):
            container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
    container.close()
    parts = replace(assemble(preset="baseline.pixelate-8", detector="none", face_detector="none"), detector=UprightDetector())
    runner = FileAnonymizer(Anonymizer(parts), tmp_path / "out", RunSettings(export=True))
    result = runner.run(collect_jobs([source], None, []))
    assert not result.failed
    assert seen and set(seen) == {(WIDTH, HEIGHT)}  # upright: as tall as the stored frame is wide
    # Upright = np.rot90(stored, -1): upright pixel (x, y) is stored pixel (y, HEIGHT - 1 - x).
    stored_box = Box(upright_box.y0, HEIGHT - upright_box.x1, upright_box.y1, HEIGHT - upright_box.x0)
    exported = result.detections[0].persons[0]
    x0, y0, x1, y1 = exported["box"]  # what was anonymized: the mask grown by a pixel
    assert 0 <= stored_box.x0 - x0 <= 1 and 0 <= stored_box.y0 - y0 <= 1
    assert 0 <= x1 - stored_box.x1 <= 1 and 0 <= y1 - stored_box.y1 <= 1
    assert exported["keypoints"][0][:2] == [6.5, HEIGHT - 5.5]
    with av.open(str(tmp_path / "out" / "portrait.mp4")) as output:
        assert next(output.decode(video=0)).rotation == -90
