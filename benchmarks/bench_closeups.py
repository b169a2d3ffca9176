"""Faces larger than the frame: the face ensemble with and without its close-up views (issue 19).

A phone held close to someone's face shows the face larger than the usual views of the
ensemble expect, often cut by the frame's edge: MediaPipe sees square tiles across the short
side (a 720x1280 portrait close-up puts a 900-pixel face into a 720-pixel tile), CenterFace a
copy of about 0.6 MP (the face stays 700+ pixels, larger than the faces it learnt).
``FaceSettings.closeups`` adds MediaPipe on the whole image inside a black border and
CenterFace on a copy 320 pixels long. This compares the detection of ``sganon anonymize``
(persons and faces) with them off and on:

* **phone clips**: ``bench_moving_camera.py --lens phone`` clips (a 720x1280 portrait frame
  from 4 face heights to an extreme close-up, swinging the face half out of the picture) over
  each photo; the faces to hide are those the ensemble finds in the still, mapped through the
  camera; a face is left in a frame when under 70 % of it lies in the replaced regions of
  that frame's detections (each frame alone: no tracks, no verification pass);
* **fixed close-ups**: the largest face of each photo filling the portrait frame, the frame
  ``K`` face heights tall (K = 0.7: brows to mouth; 1.0; 1.5): share of the face replaced;
* **new boxes** on photos: face boxes found only with the close-up views (no box of the run
  without them has its centre in them or IoU >= 0.3), as crops in ``--out`` to look at;
* **cost**: median over the photos of the face ensemble's seconds per photo (the fastest of
  three runs, off and on alternately).

Usage::

    python benchmarks/bench_closeups.py --photos obama.jpg biden.jpg --false-photos DIR... --out /tmp/closeups
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detection_recall import photos  # noqa: E402
from bench_moving_camera import PhoneCamera, clip, left_faces, replaced_region  # noqa: E402

import sganon.plugins.baselines  # noqa: E402,F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: E402,F401
from sganon.core.boxes import box_iou  # noqa: E402
from sganon.core.structures import Box  # noqa: E402
from sganon.plugins.offline.detectors import face_finder  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def use_closeups(on: bool) -> None:
    """Turn the close-up views of the shared face ensemble (the person and face detectors') on or off."""
    finder = face_finder()
    finder.settings = dataclasses.replace(finder.settings, closeups=on)
    finder._recent.clear()  # results kept for the other detector were found with the other setting


class FixedCloseup(PhoneCamera):
    """The portrait frame ``k`` face heights tall, centred on the face, still."""

    def __init__(self, face: Box, k: float) -> None:
        super().__init__(1, face)
        self.k = k

    def pose(self, t: int) -> tuple[float, float, float, float]:
        face = self.face
        return (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2, face.height * self.k / self.frame[0], 0.0


def phone_clips(anonymizer, stills: dict, frames: int) -> dict:  # type: ignore[no-untyped-def]
    figures = {}
    for name, (photo, faces) in stills.items():
        images, truth = clip(photo, faces, frames, "phone")
        row = {"face_frames": sum(len(t) for t in truth)}
        for on in (False, True):
            use_closeups(on)
            left = [left_faces(replaced_region(anonymizer.detect(image), image.shape[:2]), boxes)
                    for image, boxes in zip(images, truth)]
            row[f"left_closeups_{'on' if on else 'off'}"] = sum(left)
        figures[name] = row
        print(f"phone clip {name}: {row}", flush=True)
    return figures


def fixed_closeups(anonymizer, stills: dict) -> dict:  # type: ignore[no-untyped-def]
    figures = {}
    for name, (photo, faces) in stills.items():
        if not faces:
            continue
        face = max(faces, key=lambda box: box.area)
        row = {}
        for k in (0.7, 1.0, 1.5):
            camera = FixedCloseup(face, k)
            image = camera.render(photo, 0)
            inside = camera.face_box(face, 0).clip(*camera.frame)
            for on in (False, True):
                use_closeups(on)
                region = replaced_region(anonymizer.detect(image), camera.frame)
                row[f"K={k}, closeups {'on' if on else 'off'}"] = round(
                    float(region[inside.y0 : inside.y1, inside.x0 : inside.x1].mean()), 2)
        figures[name] = row
        print(f"fixed close-ups {name}: {row}", flush=True)
    return figures


def is_same(box: Box, others: list[Box]) -> bool:
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    return any((o.x0 <= cx < o.x1 and o.y0 <= cy < o.y1) or box_iou(box, o) >= 0.3 for o in others)


def new_boxes_and_cost(paths: list[Path], out: Path | None) -> dict:
    finder = face_finder()
    figures, seconds = {}, {False: [], True: []}
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        found, best = {}, {False: math.inf, True: math.inf}
        for _ in range(3):  # alternately, the fastest of three each: the machine's load varies
            for on in (False, True):
                use_closeups(on)
                start = time.perf_counter()
                found[on] = [box for box, _ in finder.find(image)]
                best[on] = min(best[on], time.perf_counter() - start)
        for on in (False, True):
            seconds[on].append(best[on])
        new = [box for box in found[True] if not is_same(box, found[False])]
        figures[path.name] = {"size": f"{image.shape[1]}x{image.shape[0]}", "faces_off": len(found[False]),
                              "faces_on": len(found[True]), "new": [list(box) for box in new]}
        if out is not None:
            for k, box in enumerate(new):
                inside = box.clip(*image.shape[:2])
                Image.fromarray(image[inside.y0 : inside.y1, inside.x0 : inside.x1]).save(out / f"{path.stem}-new{k}.png")
        print(f"{path.name}: {figures[path.name]}", flush=True)
    return {"photos": figures, "new_boxes": sum(len(f["new"]) for f in figures.values()),
            "median_seconds_off": statistics.median(seconds[False]), "median_seconds_on": statistics.median(seconds[True])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more real photos to film close")
    parser.add_argument("--false-photos", type=Path, nargs="*", default=[],
                        help="photos or folders of photos for the new boxes and the cost")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--only", choices=("clips", "fixed", "boxes"), nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None, help="write crops of the new boxes here")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    parts = set(args.only or ("clips", "fixed", "boxes"))
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble

    anonymizer = Anonymizer(assemble())
    stills = photos()
    for path in args.photos:
        photo = np.asarray(Image.open(path).convert("RGB"))
        use_closeups(True)
        stills[path.stem] = (photo, [box for box, _ in face_finder().find(photo)])
    report: dict = {}
    if "clips" in parts:
        report["phone_clips"] = phone_clips(anonymizer, stills, args.frames)
    if "fixed" in parts:
        report["fixed_closeups"] = fixed_closeups(anonymizer, stills)
    if "boxes" in parts:
        paths = []
        for entry in args.false_photos:
            paths += sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if entry.is_dir() else [entry]
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        report["new_boxes"] = new_boxes_and_cost(paths, args.out)
        print(f"new boxes: {report['new_boxes']['new_boxes']}, face ensemble median "
              f"{report['new_boxes']['median_seconds_off']:.3f} s off, {report['new_boxes']['median_seconds_on']:.3f} s on")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
