"""Recall of the offline detectors per model and per scale, on real photos and variants of them.

Photos: scikit-image's astronaut (1 person) and, when present, ``../shared/data``
(``erling.jpg``: 1 person; ``coco_val2017_000000001000.jpg``: 12 people). The ground-truth
faces of a photo are the ``offline-face`` faces on the original, which were checked by
eye (1, 1 and 12 faces: every person of these photos shows a face); they are carried
through each variant's geometry.

Variants: grayscale, palette (64 colours), half and double size, mirrored, dark (x0.3),
low contrast (x0.4), noisy (sigma 20), blurred (radius 2), pixels turned 90 and 270
degrees (no EXIF), JPEG quality 15; a wide collage of all photos side by side (faces
small in a ~4:1 image); and surveillance-style frames (768x576 and 1280x720) with the
photos' people pasted 60 to 120 pixels tall.

Counted per image: faces found by each model and scale (CenterFace; MediaPipe full range
with 1, 2, 3 square tiles across the short side; MediaPipe on 90/270-degree turned copies),
by the ensemble (``offline-face``), and persons "covered": a ground-truth face whose box is
at least half inside a person mask of ``offline`` (for the pasted people: at least 30 % of
the pasted box inside masks). Images larger than 1920 pixels are detected on a 1920
copy, as the pipeline does.

Usage::

    python benchmarks/bench_detection_recall.py [--json FILE] [--only NAME]
    python benchmarks/bench_detection_recall.py --write-variants variants/   # the images only, then:
    sganon anonymize variants/ -o anonymized/ && sganon audit variants/ anonymized/ -o report/
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

import sganon.plugins.offline  # noqa: F401  (registered also without installed entry points)
from sganon.core.components import build_component
from sganon.core.structures import Box
from sganon.plugins.offline.detectors import (
    non_maximum_suppression,
    scan_tiles,
    tile_scales,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAX_SIDE = 1920


def rotate_box(box: Box, turns: int, height: int, width: int) -> Box:
    """A box of an ``height x width`` image, in ``np.rot90(image, turns)``."""
    turns %= 4
    if turns == 1:
        return Box(box.y0, width - box.x1, box.y1, width - box.x0)
    if turns == 3:
        return Box(height - box.y1, box.x0, height - box.y0, box.x1)
    if turns == 2:
        return Box(width - box.x1, height - box.y1, width - box.x0, height - box.y0)
    return box


def scale_box(box: Box, factor: float) -> Box:
    return Box(*(int(round(v * factor)) for v in box))


def pil_roundtrip(image: np.ndarray, convert: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.asarray(convert(Image.fromarray(image)).convert("RGB"))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def variants(image: np.ndarray, faces: list[Box]) -> dict[str, tuple[np.ndarray, list[Box]]]:
    """Variant name -> (image, its ground-truth face boxes)."""
    height, width = image.shape[:2]
    rng = np.random.default_rng(0)
    half = pil_roundtrip(image, lambda im: im.resize((width // 2, height // 2), Image.Resampling.BILINEAR))
    double = pil_roundtrip(image, lambda im: im.resize((width * 2, height * 2), Image.Resampling.BICUBIC))
    out = {
        "original": (image, faces),
        "grayscale": (pil_roundtrip(image, lambda im: im.convert("L")), faces),
        "palette": (pil_roundtrip(image, lambda im: im.quantize(64)), faces),
        "half": (half, [scale_box(b, 0.5) for b in faces]),
        "double": (double, [scale_box(b, 2.0) for b in faces]),
        "mirrored": (image[:, ::-1].copy(), [Box(width - b.x1, b.y0, width - b.x0, b.y1) for b in faces]),
        "dark": ((image * 0.3).astype(np.uint8), faces),
        "low-contrast": ((128 + (image.astype(np.float32) - 128) * 0.4).astype(np.uint8), faces),
        "noisy": (np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8), faces),
        "blurred": (pil_roundtrip(image, lambda im: im.filter(ImageFilter.GaussianBlur(2))), faces),
        "rot90": (np.ascontiguousarray(np.rot90(image, 1)), [rotate_box(b, 1, height, width) for b in faces]),
        "rot270": (np.ascontiguousarray(np.rot90(image, 3)), [rotate_box(b, 3, height, width) for b in faces]),
        "jpeg15": (jpeg(image, 15), faces),
    }
    return out


def collage(photos: dict[str, tuple[np.ndarray, list[Box]]], height: int = 300) -> tuple[np.ndarray, list[Box]]:
    """All photos side by side at one height (a wide group picture with small faces)."""
    parts, faces, x = [], [], 0
    for image, boxes in photos.values():
        factor = height / image.shape[0]
        width = round(image.shape[1] * factor)
        parts.append(np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)))
        faces += [Box(*(int(round(v)) for v in (b.x0 * factor + x, b.y0 * factor, b.x1 * factor + x, b.y1 * factor))) for b in boxes]
        x += width
    return np.concatenate(parts, axis=1), faces


def surveillance(
    people: list[tuple[np.ndarray, Box]], size: tuple[int, int], heights: list[int], seed: int = 0
) -> tuple[np.ndarray, list[Box], list[Box]]:
    """People (crop, face box in the crop) pasted ``heights`` pixels tall on a textured
    ``size = (height, width)`` frame; returns the frame, face boxes and pasted boxes."""
    rng = np.random.default_rng(seed)
    frame_h, frame_w = size
    ramp = np.linspace(90, 170, frame_h)[:, None, None]
    frame = np.clip(ramp + rng.normal(0, 12, (frame_h, frame_w, 3)), 0, 255).astype(np.uint8)
    faces, pasted = [], []
    slot = frame_w // len(heights)
    for i, tall in enumerate(heights):
        crop, face = people[i % len(people)]
        factor = tall / crop.shape[0]
        width = max(1, round(crop.shape[1] * factor))
        small = np.asarray(Image.fromarray(crop).resize((width, tall), Image.Resampling.BILINEAR))
        x0 = i * slot + int(rng.integers(0, max(1, slot - width)))
        y0 = int(rng.integers(frame_h // 3, frame_h - tall))
        width = min(width, frame_w - x0)
        frame[y0 : y0 + tall, x0 : x0 + width] = small[:, :width]
        pasted.append(Box(x0, y0, x0 + width, y0 + tall))
        faces.append(Box(*(int(round(v)) for v in (x0 + face.x0 * factor, y0 + face.y0 * factor, x0 + face.x1 * factor, y0 + face.y1 * factor))))
    return frame, faces, pasted


def matched(truth: Box, found: list[Box]) -> bool:
    """A found box matches a true face when its centre lies in the face or they overlap (IoU >= 0.2)."""
    for box in found:
        cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        inter = truth.intersect(box).area
        union = truth.area + box.area - inter
        if (truth.x0 <= cx < truth.x1 and truth.y0 <= cy < truth.y1) or (union and inter / union >= 0.2):
            return True
    return False


def covered(box: Box, mask: np.ndarray, fraction: float) -> bool:
    region = mask[max(box.y0, 0) : max(box.y1, 0), max(box.x0, 0) : max(box.x1, 0)]
    return bool(region.size) and float(region.mean()) >= fraction


def measure(name: str, image: np.ndarray, faces: list[Box], person_detector, face_detector, pasted=None) -> dict:
    """Recall of every model/scale on one image (see the module docstring)."""
    factor = min(1.0, MAX_SIDE / max(image.shape[:2]))
    if factor < 1.0:
        size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        faces = [scale_box(b, factor) for b in faces]
        pasted = None if pasted is None else [scale_box(b, factor) for b in pasted]
    finder = face_detector.finder
    height, width = image.shape[:2]
    row: dict = {"image": name, "size": f"{width}x{height}", "faces": len(faces)}
    start = time.perf_counter()
    ensemble = [d.box for d in face_detector.detect(image)]
    row["seconds_faces"] = time.perf_counter() - start
    start = time.perf_counter()
    persons = person_detector.detect(image)
    row["seconds_persons"] = time.perf_counter() - start
    parts: dict[str, list[Box]] = {}
    start = time.perf_counter()
    parts["centerface"] = [b for b, _ in finder.centerface_faces(image)]
    row["seconds_centerface"] = time.perf_counter() - start
    for per_side in tile_scales(height, width, finder.settings.min_tile_side, 3):
        start = time.perf_counter()
        parts[f"mediapipe-{per_side}"] = [b for b, _ in scan_tiles(finder.faces.detect_batch, image, per_side)]
        row[f"seconds_mediapipe-{per_side}"] = time.perf_counter() - start
    start = time.perf_counter()
    turned = finder.mediapipe(image, 1) + finder.mediapipe(image, 3)
    row["seconds_mediapipe-turned"] = time.perf_counter() - start
    parts["mediapipe-turned"] = [b for b, _ in non_maximum_suppression(turned, 0.3)]
    parts["ensemble"] = ensemble
    for model, boxes in parts.items():
        row[f"faces_{model}"] = sum(matched(face, boxes) for face in faces)
    mask = np.zeros((height, width), bool)
    for person in persons:
        mask |= person.mask_in_image(height, width)
    row["persons_detected"] = len(persons)
    if pasted is not None:
        row["persons"] = len(pasted)
        row["persons_covered"] = sum(covered(box, mask, 0.3) for box in pasted)
    else:
        row["persons"] = len(faces)
        row["persons_covered"] = sum(covered(box, mask, 0.5) for box in faces)
    # A face is anonymized when a person mask covers it or the ensemble found it.
    row["faces_anonymized"] = sum(covered(f, mask, 0.5) or matched(f, ensemble) for f in faces)
    for per_side in tile_scales(height, width, person_detector.min_tile_side, person_detector.max_tiles_per_side):
        proposals = [b for b, _ in person_detector.body_proposals(image, per_side)]
        truth = pasted if pasted is not None else faces
        row[f"bodies_pose-{per_side}"] = sum(any(box.intersect(p).area >= 0.5 * box.area for p in proposals) for box in truth)
    return row


def photos() -> dict[str, tuple[np.ndarray, list[Box]]]:
    from skimage import data

    images = {"astronaut": data.astronaut()}
    for name in ("erling.jpg", "coco_val2017_000000001000.jpg"):
        if (SHARED / name).exists():
            images[name.split(".")[0]] = np.asarray(Image.open(SHARED / name).convert("RGB"))
        else:
            print(f"(skipping {SHARED / name}: missing)", file=sys.stderr)
    face_detector = build_component("detector", "offline-face")
    return {name: (image, [d.box for d in face_detector.detect(image)]) for name, image in images.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default=None, help="only images whose name contains this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--write-variants",
        type=Path,
        default=None,
        help="only write the test images as PNG into this folder (for `sganon anonymize` + `sganon audit`)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    person_detector = build_component("detector", "offline")
    face_detector = build_component("detector", "offline-face")
    originals = photos()
    cases: list[tuple[str, np.ndarray, list[Box], list[Box] | None]] = []
    for photo, (image, faces) in originals.items():
        for variant, (pixels, boxes) in variants(image, faces).items():
            cases.append((f"{photo}/{variant}", pixels, boxes, None))
    wide, wide_faces = collage(originals)
    cases.append(("collage", wide, wide_faces, None))
    people = []
    for image, faces in originals.values():
        for person in person_detector.detect(image):
            face = next((f for f in faces if covered(f, person.mask_in_image(*image.shape[:2]), 0.5)), None)
            if face is not None and person.box.height > 2 * person.box.width / 3:
                crop = image[person.box.y0 : person.box.y1, person.box.x0 : person.box.x1]
                people.append((crop, Box(face.x0 - person.box.x0, face.y0 - person.box.y0, face.x1 - person.box.x0, face.y1 - person.box.y0)))
    for size, heights in (((576, 768), [60, 80, 95, 105, 115, 120]), ((720, 1280), [60, 70, 85, 100, 110, 120])):
        frame, faces, pasted = surveillance(people, size, heights)
        cases.append((f"surveillance-{size[1]}x{size[0]}", frame, faces, pasted))
    if args.write_variants:
        for name, image, _, _ in cases:
            path = args.write_variants / f"{name.replace('/', '-')}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
        print(f"wrote {len(cases)} images to {args.write_variants}")
        return
    rows = []
    for name, image, faces, pasted in cases:
        if args.only and args.only not in name:
            continue
        row = measure(name, image, faces, person_detector, face_detector, pasted)
        rows.append(row)
        keys = [k for k in row if k.startswith(("faces_", "bodies_"))]
        print(
            f"{name:34s} {row['size']:>10s} faces {row['faces']:2d} | "
            + " ".join(f"{k.split('_', 1)[1]} {row[k]}" for k in keys)
            + f" | persons covered {row['persons_covered']}/{row['persons']}"
            + f" | {row['seconds_faces']:.2f}+{row['seconds_persons']:.2f} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    """The figures as a markdown table (the one in docs/offline-models.md)."""
    models = ["centerface", "mediapipe-1", "mediapipe-2", "mediapipe-3", "mediapipe-turned", "ensemble"]
    lines = [
        "| image | size | faces | " + " | ".join(models) + " | faces anonymized | persons covered | BlazePose 1/2/3 | s faces + persons |",
        "|---" * (len(models) + 7) + "|",
    ]
    for row in rows:
        cells = [str(row.get(f"faces_{m}", "-")) for m in models]
        pose = "/".join(str(row.get(f"bodies_pose-{n}", "-")) for n in (1, 2, 3))
        lines.append(
            f"| {row['image']} | {row['size']} | {row['faces']} | " + " | ".join(cells)
            + f" | {row['faces_anonymized']} | {row['persons_covered']}/{row['persons']} | {pose}"
            + f" | {row['seconds_faces']:.1f} + {row['seconds_persons']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
