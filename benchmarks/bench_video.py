"""Benchmark of the video path: frames per second with and without overlapped stages.

A synthetic 1280x720 H.264 clip (default 60 frames) with 1 to 3 people (the person of
scikit-image's astronaut photo, a real photo region) walking sideways, anonymized by the
same runner as ``sganon anonymize`` (baseline generator), once with every stage in turn
on one thread (``overlap=False``) and once with decoding and encoding on threads of their
own (``overlap=True``). Two detection modes: given detections (``--detections``, the
detector's cost removed) and the offline detector.

Usage::

    python benchmarks/bench_video.py                 # both modes, 60 frames
    python benchmarks/bench_video.py --frames 30 --modes given

Prints, per mode and setting: seconds, frames per second and CPU use (process CPU
seconds / wall seconds; above 1.0 means more than one core was busy).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import sganon.plugins.baselines  # noqa: F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: F401

WIDTH, HEIGHT = 1280, 720
PERSON_SIZE = (240, 360)  # (width, height) of one person


def person_patch() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's upper body, resized, and an elliptic mask of the person in it."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()[20:512, 80:420]).resize(PERSON_SIZE, Image.Resampling.BILINEAR)
    ys, xs = np.mgrid[0 : PERSON_SIZE[1], 0 : PERSON_SIZE[0]]
    half_width, half_height = PERSON_SIZE[0] / 2, PERSON_SIZE[1] / 2
    mask = ((ys - half_height) / half_height) ** 2 + ((xs - half_width) / half_width) ** 2 <= 1
    return np.asarray(photo), mask


def people_at(index: int) -> list[tuple[int, int]]:
    """Top-left corners of the people in frame ``index``: 1 person, a 2nd from frame 20, a 3rd from 40."""
    count = 1 + (index >= 20) + (index >= 40)
    return [(40 + 300 * i + 4 * index, 300 - 100 * (i % 2)) for i in range(count)]


def make_clip(path: Path, frames: int, detections: Path) -> None:
    import av
    from sganon.core.rle import encode_rle

    patch, mask = person_patch()
    background = np.tile(np.linspace(60, 190, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
    entries = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            image = background.copy()
            persons = []
            for x, y in people_at(index):
                region = image[y : y + PERSON_SIZE[1], x : x + PERSON_SIZE[0]]
                region[mask] = patch[mask]
                full = np.zeros((HEIGHT, WIDTH), bool)  # the file holds image-sized masks
                full[y : y + PERSON_SIZE[1], x : x + PERSON_SIZE[0]] = mask
                persons.append(
                    {"box": [x, y, x + PERSON_SIZE[0], y + PERSON_SIZE[1]], "score": 0.9, "mask": encode_rle(full)}
                )
            entries.append({"file": path.name, "frame": index, "persons": persons, "faces": []})
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    detections.write_text(json.dumps({"images": entries}))


def run_once(source: Path, output: Path, given: Path | None, overlap: bool) -> dict:
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble
    from sganon.core.detections import DetectionFile
    from sganon.core.jobs import collect_jobs
    from sganon.core.runners import FileAnonymizer, RunSettings

    parts = assemble(
        None, None, None, "none" if given else None, "none" if given else None, detections_given=given is not None
    )
    settings = RunSettings(reuse=DetectionFile.read(given) if given else None, overlap=overlap)
    runner = FileAnonymizer(Anonymizer(parts), output, settings)
    wall, cpu = time.perf_counter(), time.process_time()
    result = runner.run(collect_jobs([source], None, []))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if result.failed:
        raise SystemExit(f"video failed: {result.failed}")
    return {"seconds": wall, "cpu_seconds": cpu, "frames": len(result.timings), "generator": parts.generator_label}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--modes", nargs="+", choices=["given", "detector"], default=["given", "detector"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source, given = Path(folder) / "clip.mp4", Path(folder) / "clip.json"
        make_clip(source, args.frames, given)
        for mode in args.modes:
            for overlap in (False, True):
                output = Path(folder) / f"out-{mode}-{overlap}"
                figures = run_once(source, output, given if mode == "given" else None, overlap)
                row = {"mode": mode, "overlap": overlap, **figures, "fps": figures["frames"] / figures["seconds"]}
                row["cpu_use"] = figures["cpu_seconds"] / figures["seconds"]
                rows.append(row)
                print(
                    f"{mode:8s} overlap={str(overlap):5s}: {row['frames']} frames in {row['seconds']:.1f} s = "
                    f"{row['fps']:.2f} fps, CPU use {row['cpu_use']:.2f} cores ({row['generator']})",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
