"""Surveillance-style check: small walking people in an SD video, as still frames and as a video.

Makes a 768x576 H.264 clip (default 36 frames, 12 fps) of six real people (the persons the
offline detector finds in scikit-image's astronaut and in the photos of ``../shared/data``,
cut out by their masks) 80-115 pixels tall, walking sideways at 2-5 pixels per frame over a
textured street-like background. Then:

* **still frames**: every ``--still-every``-th frame is anonymized as a PNG image by the
  default pipeline (``Anonymizer`` with the offline detectors and the verification pass);
* **video**: the clip is anonymized by the runner of ``sganon anonymize`` (tracking,
  look-back, H.264 encoding), detections exported.

A person counts as anonymized in a frame when at least 70 % of their face box is replaced
(stills: pixels that changed; video: the exported person masks and face regions, since
both clips are lossy) and at least 30 % of their pasted box is. Prints, per mode, the
people anonymized per frame and the frames where someone was missed.

Usage::

    python benchmarks/bench_surveillance.py                   # needs ../shared/data for 6 distinct people
    python benchmarks/bench_surveillance.py --frames 24 --still-every 6 --json /tmp/surveillance.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detection_recall import photos  # noqa: E402

import sganon.plugins.baselines  # noqa: E402,F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: E402,F401
from sganon.core.detections import Detections  # noqa: E402
from sganon.core.structures import Box  # noqa: E402

SIZE = (576, 768)  # (height, width)
HEIGHTS = (80, 90, 95, 105, 110, 115)
FPS = 12


def cut_out_people() -> list[tuple[np.ndarray, np.ndarray, Box]]:
    """``(rgb, mask, face box in the crop)`` of every upright person with a face found in the photos."""
    from sganon.core.components import build_component

    person_detector = build_component("detector", "offline")
    people = []
    for image, faces in photos().values():
        for person in person_detector.detect(image):
            mask = person.full_mask()
            face = next((f for f in faces if person.box.intersect(f).area >= 0.5 * f.area), None)
            if face is None or person.box.height < 1.2 * person.box.width:
                continue
            crop = image[person.box.y0 : person.box.y1, person.box.x0 : person.box.x1]
            people.append((crop, mask, face.shifted(-person.box.x0, -person.box.y0).clip(*mask.shape)))
    if not people:
        raise SystemExit("no upright person with a face found in the photos")
    return people


class Walker:
    """One person walking sideways: scaled cut-out, start position and speed."""

    def __init__(self, person: tuple[np.ndarray, np.ndarray, Box], tall: int, x: float, y: int, speed: float) -> None:
        crop, mask, face = person
        factor = tall / crop.shape[0]
        width = max(1, round(crop.shape[1] * factor))
        self.rgb = np.asarray(Image.fromarray(crop).resize((width, tall), Image.Resampling.BILINEAR))
        self.mask = np.asarray(Image.fromarray(mask).resize((width, tall), Image.Resampling.NEAREST))
        self.face = Box(*(int(round(v * factor)) for v in face.to_list()))
        self.x, self.y, self.speed = x, y, speed

    def at(self, frame: int) -> tuple[int, int]:
        return int(round(self.x + self.speed * frame)), self.y


def background(seed: int = 0) -> np.ndarray:
    """A street-like frame: brightness ramp, paving lines, noise."""
    rng = np.random.default_rng(seed)
    height, width = SIZE
    frame = np.linspace(80, 170, height)[:, None, None] + rng.normal(0, 10, (height, width, 3))
    frame[::48] -= 40
    frame[:, ::96] -= 30
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_frames(people: list, frames: int) -> tuple[list[np.ndarray], list[list[tuple[Box, Box]]]]:
    """Frames and, per frame, each visible walker's (pasted box, face box)."""
    height, width = SIZE
    rng = np.random.default_rng(1)
    walkers = []
    for i, tall in enumerate(HEIGHTS):
        direction = 1 if i % 2 == 0 else -1
        x = (i + 0.5) * width / len(HEIGHTS) - 30 * direction
        y = int(height * 0.35 + rng.integers(0, int(height * 0.55) - tall))
        walkers.append(Walker(people[i % len(people)], tall, x, y, direction * (2 + 3 * rng.random())))
    base = background()
    images, truth = [], []
    for index in range(frames):
        image = base.copy()
        boxes = []
        for walker in walkers:
            x, y = walker.at(index)
            h, w = walker.mask.shape
            pasted = Box(x, y, x + w, y + h).clip(height, width)
            if pasted.is_empty() or pasted.width < w:  # only whole people (none leave the frame)
                continue
            region = image[y : y + h, x : x + w]
            region[walker.mask] = walker.rgb[walker.mask]
            boxes.append((pasted, walker.face.shifted(x, y)))
        images.append(image)
        truth.append(boxes)
    return images, truth


def anonymized(replaced: np.ndarray, pasted: Box, face: Box) -> bool:
    face_part = replaced[face.y0 : face.y1, face.x0 : face.x1]
    body_part = replaced[pasted.y0 : pasted.y1, pasted.x0 : pasted.x1]
    return bool(face_part.size and face_part.mean() >= 0.7 and body_part.mean() >= 0.3)


def replaced_by(entry: dict, height: int, width: int) -> np.ndarray:
    """The pixels an exported detections entry says were replaced: person masks and face regions."""
    detections = Detections.parse(entry, height, width)
    replaced = np.zeros((height, width), bool)
    for person in detections.persons:
        replaced |= person.mask_in_image(height, width)
    for face in detections.faces:
        box = face.box.clip(height, width)
        replaced[box.y0 : box.y1, box.x0 : box.x1] = True
    return replaced


def write_clip(path: Path, images: list[np.ndarray], fps: int = FPS, crf: int = 16) -> None:
    """``images`` (uint8 RGB, one size, even sides) as an H.264 clip."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.options = {"crf": str(crf)}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def check_stills(images: list, truth: list, every: int) -> dict:
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble

    anonymizer = Anonymizer(assemble())
    found = total = 0
    missed = []
    start = time.perf_counter()
    for index in range(0, len(images), every):
        result = anonymizer.anonymize(images[index])
        replaced = np.any(result.image != images[index], axis=2) | result.replaced
        hits = sum(anonymized(replaced, pasted, face) for pasted, face in truth[index])
        found, total = found + hits, total + len(truth[index])
        if hits < len(truth[index]):
            missed.append(index)
    return {"people": total, "anonymized": found, "frames_missing_someone": missed,
            "seconds_per_frame": (time.perf_counter() - start) / len(range(0, len(images), every))}


def check_video(images: list, truth: list, folder: Path) -> dict:
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble
    from sganon.core.jobs import collect_jobs
    from sganon.core.runners import FileAnonymizer, RunSettings

    source = folder / "street.mp4"
    write_clip(source, images)
    start = time.perf_counter()
    result = FileAnonymizer(Anonymizer(assemble()), folder / "out", RunSettings(export=True)).run(
        collect_jobs([source], None, [])
    )
    seconds = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"video failed: {result.failed}")
    height, width = SIZE
    by_frame = {entry.frame: entry.to_json() for entry in result.detections}
    found = total = 0
    missed = []
    for index, boxes in enumerate(truth):
        replaced = replaced_by(by_frame[index], height, width) if index in by_frame else np.zeros(SIZE, bool)
        hits = sum(anonymized(replaced, pasted, face) for pasted, face in boxes)
        found, total = found + hits, total + len(boxes)
        if hits < len(boxes):
            missed.append(index)
    return {"people": total, "anonymized": found, "frames_missing_someone": missed, "fps": len(images) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--still-every", type=int, default=6, help="anonymize every N-th frame as a still image")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images, truth = make_frames(cut_out_people(), args.frames)
    figures = {"stills": check_stills(images, truth, args.still_every)}
    print(f"stills: {figures['stills']}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        figures["video"] = check_video(images, truth, Path(folder))
    print(f"video:  {figures['video']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
