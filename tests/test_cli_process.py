"""The command line as its own process, with the default offline detectors (issue 21).

What only shows outside pytest's process: standard error as the user sees it (MediaPipe's
graphs run on threads of their own), real signals, and the files a run leaves in the
user's home. Inputs are made here from the repository's photo docs/examples/astronaut.jpg.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "docs" / "examples" / "astronaut.jpg"


def sganon(*args: object, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``sganon ARGS`` in a new process; stdout and stderr kept apart."""
    return subprocess.run(
        [sys.executable, "-m", "sganon.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def make_video(path: Path, frames: int, size: tuple[int, int] = (192, 128), faststart: bool = True) -> Path:
    """H.264 of the astronaut photo sliding sideways (a person in every frame)."""
    width, height = size
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((height, height)))
    canvas = np.full((height, width, 3), 90, np.uint8)
    options = {"movflags": "faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libvpx-vp9" if path.suffix == ".webm" else "libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = canvas.copy()
            x = index * 2 % (width - height)
            frame[:, x : x + height] = photo
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def cut(path: Path, fraction: float = 0.6) -> Path:
    """The first ``fraction`` of the file's bytes (its index is at the front: faststart)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_failures_and_notices_of_a_video_run_reach_stderr(tmp_path) -> None:
    """Several multi-frame videos with the offline detectors: the reason of the cut video's
    failure, the WebM notice and the skipped file all reach standard error."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    cut(make_video(inputs / "cut.mp4", frames=30))
    make_video(inputs / "clip.webm", frames=8)
    (inputs / "notes.txt").write_text("not a video")
    result = sganon("anonymize", inputs, "-o", tmp_path / "out", "--continue-on-error", "--quiet")
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "cut.mp4" in failed[0] and ("truncated" in failed[0] or "corrupt" in failed[0])
    assert "written as H.264 MP4 (clip.mp4)" in result.stderr
    assert "skipped 1 file(s) of the input folders" in result.stderr and "notes.txt" in result.stderr
    assert "1 input(s) failed" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "manifest.jsonl"]


@pytest.mark.parametrize(("signum", "delay"), [(signal.SIGTERM, 0.0), (signal.SIGTERM, 2.0), (signal.SIGINT, 1.0)])
def test_a_signal_during_a_video_is_an_interruption(tmp_path, signum, delay) -> None:
    """A real SIGTERM/SIGINT while the video's stages run: exit 128 + signal, the video and the
    input after it recorded as interrupted, no output and no temporary file left."""
    video = make_video(tmp_path / "long.mp4", frames=300)
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "sganon.cli.main", "anonymize", video, ASTRONAUT, "-o", output, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        # The video's temporary output appears when its stages start.
        while not any(output.glob(".long.*.part.mp4")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(delay)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in stderr and "Error" not in stderr and "FAILED" not in stderr
    records = manifest(output)
    assert [(r["name"], r["status"]) for r in records] == [("long.mp4", "interrupted"), ("astronaut.jpg", "interrupted")]
    assert name in records[0]["error"]
    assert [p.name for p in output.iterdir()] == ["manifest.jsonl"]  # no output, no temporary file


def test_a_run_leaves_nothing_in_home_but_the_sganon_cache(tmp_path) -> None:
    """HOME is an empty folder (no XDG variables): after a run with the offline detectors,
    only ``~/.cache/sganon`` exists there (no onnxruntime device id, no matplotlib or YAPF cache)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "SGANON_", "MPL", "ORT_")) and key != "HOME"
    }
    env["HOME"] = str(home)
    result = sganon("anonymize", ASTRONAUT, "-o", tmp_path / "out", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "astronaut.jpg").is_file()
    cache = home / ".cache" / "sganon"
    outside = [p for p in home.rglob("*") if not (p == cache.parent or p.is_relative_to(cache))]
    assert outside == []
