"""Moving-camera check: does a face missed in single frames stay hidden in a video?

Makes 720p clips of a camera panning and zooming over real group photos (scikit-image's
astronaut and the photos of ``../shared/data``): the window slides across the photo and back
while zooming in and out, so faces move 10-40 pixels a frame, change size, and enter and
leave the picture across its edges (cut by the frame's edge). The faces to hide are those
the offline face ensemble finds in the still photo at full resolution, mapped into each
frame through the camera's known path; a face counts where at least 40 % of it is in the
frame.

1. **Tracking** (cheap to compare): the offline detectors run once on every frame; their raw
   detections then go through :class:`~sganon.core.tracking.Timeline` with each setting
   compared (each frame alone; the default look-ahead window). A face is *left* in a frame
   when less than 70 % of it lies in a replaced region (person masks and the faces' heads as
   the pipeline replaces them); the verification pass is not part of this count.
2. **End to end** (``--end-to-end``): each clip is encoded (H.264) and run through
   ``sganon anonymize --export-detections``; a face is left where less than 70 % of it lies
   in the regions the run reports as anonymized.

``--photos FILE ...`` adds real photos; ``--truth mtcnn`` takes the faces to hide from a
detector that is not the project's instead: the MTCNN of ``facenet-pytorch`` on every frame
(see benchmarks/independent_face_check.py for how to make it importable).

Usage::

    python benchmarks/bench_moving_camera.py                      # tracking only
    python benchmarks/bench_moving_camera.py --frames 60 --end-to-end --json /tmp/moving.json
    PYTHONPATH=/tmp/fnp python benchmarks/bench_moving_camera.py --end-to-end --truth mtcnn --photos t1.jpg
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detection_recall import photos  # noqa: E402
from bench_surveillance import write_clip  # noqa: E402

import sganon.plugins.baselines  # noqa: E402,F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: E402,F401
from sganon.core.boxes import head_box  # noqa: E402
from sganon.core.components import build_component  # noqa: E402
from sganon.core.detections import DetectionFile, Detections  # noqa: E402
from sganon.core.structures import Box  # noqa: E402
from sganon.core.tracking import Timeline  # noqa: E402

FRAME = (720, 1280)  # (height, width)
FPS = 25
FACE_MARGIN = 0.2  # PipelineOptions.face_margin's default
VISIBLE = 0.4  # a face counts in a frame when this much of it is inside
COVERED = 0.7  # ... and is left when less than this much of it is replaced


@dataclass
class Camera:
    """The window of the photo (in its pixels) that frame ``t`` shows."""

    height: int
    width: int
    frames: int

    def window(self, t: int) -> tuple[float, float, float, float]:
        phase = t / max(self.frames - 1, 1)  # 0 .. 1: across and back
        zoom = 1.15 + 0.55 * math.sin(math.pi * phase)  # in, then out
        window_h = self.height / zoom
        window_w = window_h * FRAME[1] / FRAME[0]
        # Slide from beyond the left edge to beyond the right one and back (people enter and leave).
        sweep = 1 - abs(2 * phase - 1)
        cx = -0.15 * window_w + sweep * (self.width + 0.3 * window_w)
        cy = self.height / 2 + 0.08 * self.height * math.sin(3 * math.pi * phase)
        return cx - window_w / 2, cy - window_h / 2, cx + window_w / 2, cy + window_h / 2


def render(photo: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """The 720p frame of ``window`` (outside the photo: mid gray)."""
    canvas = Image.fromarray(photo)
    frame = canvas.transform((FRAME[1], FRAME[0]), Image.Transform.EXTENT, window, Image.Resampling.BILINEAR,
                             fillcolor=(128, 128, 128))
    return np.asarray(frame)


def face_in_frame(face: Box, window: tuple[float, float, float, float]) -> Box:
    x0, y0, x1, y1 = window
    sx, sy = FRAME[1] / (x1 - x0), FRAME[0] / (y1 - y0)
    return Box(math.floor((face.x0 - x0) * sx), math.floor((face.y0 - y0) * sy),
               math.ceil((face.x1 - x0) * sx), math.ceil((face.y1 - y0) * sy))


def clip(photo: np.ndarray, faces: list[Box], frames: int) -> tuple[list[np.ndarray], list[list[Box]]]:
    """Frames and, per frame, the faces to hide in it (frame pixels, unclipped)."""
    camera = Camera(photo.shape[0], photo.shape[1], frames)
    images, truth = [], []
    for t in range(frames):
        window = camera.window(t)
        images.append(render(photo, window))
        boxes = [face_in_frame(face, window) for face in faces]
        truth.append([box for box in boxes if box.clip(*FRAME).area >= VISIBLE * box.area])
    return images, truth


def replaced_region(found: Detections) -> np.ndarray:
    """What the pipeline replaces for these detections: person masks, faces' heads (boxes.head_box)."""
    region = np.zeros(FRAME, dtype=bool)
    for person in found.persons:
        region |= person.mask_in_image(*FRAME)
    for face in found.faces:
        grown = head_box(face.box, FACE_MARGIN).clip(*FRAME)
        region[grown.y0 : grown.y1, grown.x0 : grown.x1] = True
    return region


def left_faces(region: np.ndarray, faces: list[Box]) -> int:
    left = 0
    for face in faces:
        inside = face.clip(*FRAME)
        if region[inside.y0 : inside.y1, inside.x0 : inside.x1].mean() < COVERED:
            left += 1
    return left


def score(per_frame: list[Detections], truth: list[list[Box]]) -> dict[str, int]:
    lefts = [left_faces(replaced_region(found), faces) for found, faces in zip(per_frame, truth)]
    return {
        "frames": len(truth),
        "face_frames": sum(len(faces) for faces in truth),
        "faces_left": sum(lefts),
        "frames_with_a_face_left": sum(1 for n in lefts if n),
    }


def tracked(raw: list[Detections], timeline: Timeline) -> list[Detections]:
    done = []
    for index, found in enumerate(raw):
        done += timeline.push(index, *FRAME, found)
    done += timeline.drain()
    return [Detections(frame.persons, frame.faces) for frame in done]


def end_to_end(name: str, images: list[np.ndarray], truth: list[list[Box]], folder: Path) -> dict[str, float]:
    source = folder / f"{name}.mp4"
    write_clip(source, images, FPS, crf=18)
    exported = folder / f"{name}.json"
    sganon = Path(sys.executable).with_name("sganon")
    started = time.perf_counter()
    subprocess.run([str(sganon), "anonymize", str(source), "-o", str(folder / "out"), "--quiet",
                    "--export-detections", str(exported), "--overwrite"], check=True)
    seconds = time.perf_counter() - started
    recorded = DetectionFile.read(exported)
    per_frame = [recorded.lookup(source.name, t, *FRAME) for t in range(len(images))]
    return {**score(per_frame, truth), "fps": round(len(images) / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per clip")
    parser.add_argument("--only", default=None, help="only photos whose name contains this")
    parser.add_argument("--end-to-end", action="store_true", help="also run `sganon anonymize` on each clip")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more real photos to film")
    parser.add_argument("--truth", choices=("own", "mtcnn"), default="own",
                        help="faces to hide: the project's face ensemble on the still (own) or MTCNN on every frame")
    args = parser.parse_args()
    mtcnn = None
    if args.truth == "mtcnn":
        from independent_face_check import Mtcnn

        mtcnn = Mtcnn()
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble

    anonymizer = Anonymizer(assemble())
    settings = {"each frame alone": (0, 0), "timeline (default: 5 ahead, gap 5)": (5, 5)}
    report: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        stills = photos()
        face_detector = build_component("detector", "offline-face")
        for path in args.photos:
            photo = np.asarray(Image.open(path).convert("RGB"))
            stills[path.stem] = (photo, [d.box for d in face_detector.detect(photo)])
        for name, (photo, faces) in stills.items():
            if args.only and args.only not in name:
                continue
            images, truth = clip(photo, faces, args.frames)
            if mtcnn is not None:
                truth = [[Box(x, y, x + w, y + h) for x, y, w, h in mtcnn(image)] for image in images]
            started = time.perf_counter()
            raw = [anonymizer.detect(image) for image in images]
            detect_fps = len(images) / (time.perf_counter() - started)
            report[name] = {label: score(tracked(raw, Timeline(*values)), truth) for label, values in settings.items()}
            if args.end_to_end:
                report[name]["end to end (sganon anonymize)"] = end_to_end(name, images, truth, Path(temporary))
            print(f"{name}: {len(faces)} faces in the still, detection {detect_fps:.2f} fps", flush=True)
            for label, figures in report[name].items():
                print(f"  {label}: {json.dumps(figures)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
