"""A second opinion on anonymized images from a face detector that is not the project's.

Detectors (``--detector``):

* ``haar``: OpenCV's Haar cascades (frontal and profile faces, both orientations by
  mirroring), shipped inside the ``opencv-python`` wheel; they find many false faces.
* ``mtcnn``: the MTCNN of ``facenet-pytorch`` (MIT; its weights ship inside the wheel), a
  CNN face detector trained on other data than any model of sganon. It is not a dependency:
  ``pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/w && unzip -q /tmp/w/*.whl -d
  /tmp/fnp`` and run with ``PYTHONPATH=/tmp/fnp`` (its pinned torch is not needed).

Each original/anonymized pair (same stem in two folders; write the anonymized copies as PNG,
``--ext png``, so unchanged pixels compare equal) is looked at: a face found in the original
counts as *replaced* when at least 70 % of its box changed; the others are listed (look at
the crops ``--crops`` writes). Faces found only in the anonymized image, away from changed
pixels, are listed too.

Usage::

    python benchmarks/bench_detection_recall.py --write-variants /tmp/e2e/variants
    sganon anonymize /tmp/e2e/variants -o /tmp/e2e/anon --ext png
    python benchmarks/independent_face_check.py /tmp/e2e/variants /tmp/e2e/anon --crops /tmp/e2e/haar
    PYTHONPATH=/tmp/fnp python benchmarks/independent_face_check.py /tmp/e2e/variants /tmp/e2e/anon --detector mtcnn
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")


def haar_faces(rgb: np.ndarray, detectors: list) -> list[tuple[int, int, int, int]]:
    """``(x, y, w, h)`` of every face any cascade finds in ``rgb`` or its mirror image."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = []
    for detector in detectors:
        for mirrored in (False, True):
            pixels = np.ascontiguousarray(gray[:, ::-1]) if mirrored else gray
            for x, y, w, h in detector.detectMultiScale(pixels, scaleFactor=1.1, minNeighbors=6, minSize=(12, 12)):
                found.append((int(gray.shape[1] - x - w) if mirrored else int(x), int(y), int(w), int(h)))
    return found


class Mtcnn:
    """facenet-pytorch's MTCNN: ``(x, y, w, h)`` of the faces it finds with probability >= 0.9."""

    def __init__(self) -> None:
        try:
            from facenet_pytorch.models.mtcnn import MTCNN
        except ImportError as error:
            raise SystemExit(f"--detector mtcnn needs facenet_pytorch importable (see the module docstring): {error}")
        self.model = MTCNN(keep_all=True, device="cpu")

    def __call__(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes, probabilities = self.model.detect(Image.fromarray(rgb))
        if boxes is None:
            return []
        found = []
        for (x0, y0, x1, y1), probability in zip(boxes, probabilities):
            if float(probability) >= 0.9:
                x, y = max(0, int(round(float(x0)))), max(0, int(round(float(y0))))
                found.append((x, y, int(round(float(x1))) - x, int(round(float(y1))) - y))
        return found


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".tif", ".tiff", ".bmp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("originals", type=Path)
    parser.add_argument("anonymized", type=Path)
    parser.add_argument("--crops", type=Path, default=None, help="write a crop of each face not replaced here")
    parser.add_argument("--detector", choices=("haar", "mtcnn"), default="haar")
    args = parser.parse_args()
    if args.detector == "mtcnn":
        find_faces = Mtcnn()
    else:
        cascades = [cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name)) for name in CASCADES]
        find_faces = lambda rgb: haar_faces(rgb, cascades)  # noqa: E731
    if args.crops:
        args.crops.mkdir(parents=True, exist_ok=True)
    total = replaced = 0
    for original_path in sorted(p for p in args.originals.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        anonymized_path = args.anonymized / f"{original_path.stem}.png"
        if not anonymized_path.is_file():
            anonymized_path = args.anonymized / original_path.name
        if not anonymized_path.is_file():
            print(f"MISSING output for {original_path.name}")
            continue
        original = np.asarray(Image.open(original_path).convert("RGB"))
        anonymized = np.asarray(Image.open(anonymized_path).convert("RGB"))
        changed = (original != anonymized).any(axis=2)
        if anonymized.shape != original.shape:
            print(f"SIZE differs for {original_path.name}")
            continue
        faces = find_faces(original)
        for number, (x, y, w, h) in enumerate(faces):
            total += 1
            share = float(changed[y : y + h, x : x + w].mean())
            if share >= 0.7:
                replaced += 1
                continue
            print(f"not replaced: {original_path.name} box {(x, y, w, h)} changed {share:.0%}")
            if args.crops:
                crop = original[max(0, y - h // 2) : y + h + h // 2, max(0, x - w // 2) : x + w + w // 2]
                Image.fromarray(crop).save(args.crops / f"{original_path.stem}-{number}.png")
        for x, y, w, h in find_faces(anonymized):
            near_original = any(abs(x - ox) < w / 2 and abs(y - oy) < h / 2 for ox, oy, _, _ in faces)
            if changed[y : y + h, x : x + w].mean() < 0.3 and not near_original:
                print(f"only in the anonymized image: {original_path.name} box {(x, y, w, h)}")
    print(f"{args.detector} faces in the originals: {total}, replaced: {replaced}, not replaced: {total - replaced}")


if __name__ == "__main__":
    main()
