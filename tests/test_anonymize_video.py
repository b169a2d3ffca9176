"""Videos through ``sganon anonymize``: frames, rate, rotation and the AAC track are kept;
tracked persons are anonymized in frames where the detections miss them."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from click.testing import CliRunner
from sganon.cli.main import cli
from sganon.core.video import probe_video
from sganon.core.rle import encode_rle

WIDTH, HEIGHT, FPS, SECONDS = 160, 120, 10, 2


def frame_pixels(index: int) -> np.ndarray:
    """A bright frame with a moving dark bar (so frames differ)."""
    image = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    image[:, (index * 7) % (WIDTH - 10) :][:, :10] = 30
    return image


def make_video(path: Path, rotation: int = 90) -> None:
    """H.264 + AAC (a 440 Hz tone), made with PyAV."""
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.set_display_rotation(rotation)
    audio = container.add_stream("aac", rate=44100)
    audio.layout = "mono"
    for index in range(FPS * SECONDS):
        for packet in video.encode(av.VideoFrame.from_ndarray(frame_pixels(index), format="rgb24")):
            container.mux(packet)
    samples = 44100 * SECONDS
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
    for start in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, start
        for packet in audio.encode(frame):
            container.mux(packet)
    for stream in (audio, video):
        for packet in stream.encode(None):
            container.mux(packet)
    container.close()


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def run(*args: str):
    return CliRunner().invoke(cli, ["anonymize", *args, "--quiet"], catch_exceptions=False)


def test_video_keeps_frames_rate_rotation_and_the_audio_track(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source)
    result = run(str(source), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    before, after = probe_video(source), probe_video(tmp_path / "out" / "clip.mp4")
    assert after.frames == before.frames == FPS * SECONDS
    assert after.fps == before.fps == Fraction(FPS)
    assert (after.width, after.height, after.rotation) == (WIDTH, HEIGHT, 90)
    assert after.audio_streams == 1
    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_packets(tmp_path / "out" / "clip.mp4") == audio_packets(source)  # copied, not re-encoded


def test_a_person_missed_in_one_frame_is_still_anonymized_there(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, rotation=0)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[20:100, 60:100] = True
    person = {"box": [60, 20, 100, 100], "score": 0.9, "mask": encode_rle(mask)}
    missed = {7}
    entries = [
        {"file": "clip.mp4", "frame": i, "persons": [] if i in missed else [person], "faces": []} for i in range(20)
    ]
    (tmp_path / "given.json").write_text(json.dumps({"images": entries}))
    result = run(
        str(source),
        "-o",
        str(tmp_path / "out"),
        "--preset",
        "baseline.mask-black",
        "--detections",
        str(tmp_path / "given.json"),
        "--export-detections",
        str(tmp_path / "found.json"),
    )
    assert result.exit_code == 0, result.output
    frames = decoded_frames(tmp_path / "out" / "clip.mp4")
    assert len(frames) == 20
    for index, frame in enumerate(frames):
        assert frame[30:90, 70:90].mean() < 20, f"frame {index} shows the person"
        assert frame[:, :40].mean() > 150 or frame[:, 120:].mean() > 150  # the background stays
    exported = json.loads((tmp_path / "found.json").read_text())["images"]
    assert [e["frame"] for e in exported] == list(range(20))
    assert len(exported[7]["persons"]) == 1  # carried over the gap


def test_start_and_end_select_a_span(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, rotation=0)
    result = run(
        str(source),
        "-o",
        str(tmp_path / "out"),
        "--start",
        "0.5",
        "--end",
        "1.5",
        "--detector",
        "none",
        "--face-detector",
        "none",
    )
    assert result.exit_code == 0, result.output
    info = probe_video(tmp_path / "out" / "clip.mp4")
    assert info.frames == 10 and info.audio_streams == 1
    kept = audio_packets(tmp_path / "out" / "clip.mp4")
    assert 0 < len(kept) < len(audio_packets(source))


def test_a_truncated_video_fails_without_output(tmp_path):
    source = tmp_path / "clip.mp4"
    make_video(source, rotation=0)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(source.read_bytes()[:2000])
    result = run(str(broken), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and f"FAILED {broken}" in result.output
    assert not (tmp_path / "out" / "broken.mp4").exists()
    out = tmp_path / "out"
    assert not [p for p in out.rglob("*") if p.is_file() and p.name != "manifest.jsonl"] if out.exists() else True
