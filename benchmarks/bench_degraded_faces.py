"""Do degraded copies and other containers of a photo lose faces? (issue 19, items 3 and 6)

Ground truth: the faces ``offline-face`` finds on each original photo at full resolution
(the project's own detectors, as the issue defines it). Each photo is then degraded
(grayscale, dark, low contrast, noise, JPEG quality 15, pixels turned by 90 degrees without
EXIF) and stored in other containers (PNG, JPEG q90, WebP q90, AVIF q80; HEIC when Pillow
can write it), and each copy goes through the pipeline's detection exactly as ``sganon
anonymize`` runs it (a copy of at most ``--detect-max-side`` pixels, persons and faces). A
true face counts as found when a face box matches it (its centre in the face, or IoU >= 0.2)
or a person mask covers half of it (both are replaced).

Photos: ``docs/examples/astronaut.jpg``, ``../shared/data/*.jpg``, every image of
``--extra DIR`` (e.g. OpenCV's sample photos: ``apt-get download opencv-doc && dpkg-deb -x
opencv-doc_*.deb x`` then ``x/usr/share/doc/opencv-doc/examples/data/{messi5.jpg,
basketball1.png}``), and a wide group strip (2.6-4.7:1) made of all of them at one height
of 683 rows, so its faces are 15-60 pixels and it is wider than ``--detect-max-side``.

Usage::

    python benchmarks/bench_degraded_faces.py --extra /work/realdata [--detect-max-side 1920] [--json out.json]

``--rolled`` adds copies turned by 45, 60, 135 and 180 degrees about their centre (the
canvas grown to hold the whole picture, black corners); a true face's box there is the
bounding box of the middle 60 % of the face turned with it (so a face box of a turned copy
is not inflated by its corners).

``--write-copies DIR`` writes each photo (the strip aside) and its degraded copies as PNG
into ``DIR`` instead, for ``sganon anonymize`` and a detector that is not the project's
(``benchmarks/independent_face_check.py``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detection_recall import jpeg, matched, pil_roundtrip, rotate_box  # noqa: E402

import sganon.plugins.offline  # noqa: E402,F401  (registered also without installed entry points)
from sganon.core.components import build_component  # noqa: E402
from sganon.core.detections import downscaled, scale_detection  # noqa: E402
from sganon.core.structures import Box  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


#: The longest side a WebP file can have.
WEBP_MAX_SIDE = 16383


def container(image: np.ndarray, fmt: str, **options) -> np.ndarray:
    """``image`` written as ``fmt`` and read back as Pillow reads it (RGB)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def copies(image: np.ndarray, faces: list[Box]) -> dict[str, tuple[np.ndarray, list[Box]]]:
    height, width = image.shape[:2]
    rng = np.random.default_rng(0)
    out = {
        "grayscale": (pil_roundtrip(image, lambda im: im.convert("L")), faces),
        "dark": ((image * 0.3).astype(np.uint8), faces),
        "low-contrast": ((128 + (image.astype(np.float32) - 128) * 0.4).astype(np.uint8), faces),
        "noisy": (np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8), faces),
        "jpeg15": (jpeg(image, 15), faces),
        "rot90": (np.ascontiguousarray(np.rot90(image, 1)), [rotate_box(b, 1, height, width) for b in faces]),
        "png": (container(image, "PNG"), faces),
        "jpeg90": (container(image, "JPEG", quality=90), faces),
        "avif80": (container(image, "AVIF", quality=80), faces),
    }
    if max(height, width) <= WEBP_MAX_SIDE:  # a strip of many photos can be wider than WebP allows
        out["webp90"] = (container(image, "WEBP", quality=90), faces)
    try:
        out["heic"] = (container(image, "HEIF"), faces)
    except (KeyError, OSError):  # Pillow writes HEIC only with a plugin (pillow-heif), not installed
        pass
    return out


ROLLS = (45, 60, 135, 180)


def rolled(image: np.ndarray, faces: list[Box], degrees: float) -> tuple[np.ndarray, list[Box]]:
    """``image`` turned counter-clockwise by ``degrees`` on a canvas that holds all of it,
    and the faces' boxes there (see the module docstring)."""
    import cv2

    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    turned = cv2.warpAffine(image, matrix, (new_width, new_height), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    boxes = []
    for face in faces:
        cx, cy, hw, hh = (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2, 0.3 * face.width, 0.3 * face.height
        corners = np.array([[cx - hw, cy - hh, 1], [cx + hw, cy - hh, 1], [cx - hw, cy + hh, 1], [cx + hw, cy + hh, 1]])
        points = corners @ matrix.T
        boxes.append(Box(int(points[:, 0].min()), int(points[:, 1].min()), int(np.ceil(points[:, 0].max())),
                         int(np.ceil(points[:, 1].max()))))  # fmt: skip
    return turned, boxes


def photos(extra: list[Path]) -> dict[str, np.ndarray]:
    paths = [ROOT / "docs" / "examples" / "astronaut.jpg", *sorted(SHARED.glob("*.jpg"))]
    for folder in extra:
        paths += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    found = {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in paths}
    strip = []
    for pixels in found.values():
        width = round(pixels.shape[1] * 683 / pixels.shape[0])
        strip.append(np.asarray(Image.fromarray(pixels).resize((width, 683), Image.Resampling.BILINEAR)))
    found["wide-strip"] = np.concatenate(strip, axis=1)
    return found


class Pipeline:
    """The detection of ``sganon anonymize``: persons and faces on a copy of at most ``max_side``."""

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side
        self.persons = build_component("detector", "offline")
        self.faces = build_component("detector", "offline-face")

    def detect(self, image: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Face boxes and the union of person masks, in ``image``'s pixels."""
        height, width = image.shape[:2]
        small, factor = downscaled(image, self.max_side)
        found = self.persons.detect(small) + self.faces.detect(small)
        if factor < 1.0:
            found = [scale_detection(d, factor, height, width) for d in found]
        mask = np.zeros((height, width), bool)
        for person in (d for d in found if d.label == "person"):
            mask |= person.mask_in_image(height, width)
        return [d.box for d in found if d.label == "face"], mask


def replaced(face: Box, boxes: list[Box], mask: np.ndarray) -> bool:
    region = mask[max(face.y0, 0) : max(face.y1, 0), max(face.x0, 0) : max(face.x1, 0)]
    return matched(face, boxes) or bool(region.size and region.mean() >= 0.5)


DEGRADED = ("grayscale", "dark", "low-contrast", "noisy", "jpeg15", "rot90")


def write_copies(found: dict[str, np.ndarray], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in found.items():
        if name == "wide-strip":
            continue
        Image.fromarray(image).save(folder / f"{name}-original.png")
        for variant, (pixels, _) in copies(image, []).items():
            if variant in DEGRADED:
                Image.fromarray(pixels).save(folder / f"{name}-{variant}.png")
    print(f"wrote {len(list(folder.glob('*.png')))} PNG files to {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="folders of more real photos")
    parser.add_argument("--rolled", action="store_true", help="also copies turned by 45, 60, 135, 180 degrees")
    parser.add_argument("--write-copies", type=Path, default=None, help="write the copies as PNG here and stop")
    parser.add_argument("--detect-max-side", type=int, default=1920)
    parser.add_argument("--only", default=None, help="only photos whose name contains this")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    truth_finder = build_component("detector", "offline-face")
    pipeline = Pipeline(args.detect_max_side)
    rows, missed_total, faces_total = [], 0, 0
    if args.write_copies is not None:
        write_copies(photos(args.extra), args.write_copies)
        return
    for name, image in photos(args.extra).items():
        if args.only and args.only not in name:
            continue
        truth = [d.box for d in truth_finder.detect(image)]  # full resolution, no downscaling
        variants = {"original": (image, truth), **copies(image, truth)}
        if args.rolled:
            variants.update({f"rolled{degrees}": rolled(image, truth, degrees) for degrees in ROLLS})
        for variant, (pixels, faces) in variants.items():
            start = time.perf_counter()
            boxes, mask = pipeline.detect(pixels)
            seconds = time.perf_counter() - start
            missed = [f for f in faces if not replaced(f, boxes, mask)]
            missed_total += len(missed)
            faces_total += len(faces)
            rows.append({"photo": name, "variant": variant, "size": f"{pixels.shape[1]}x{pixels.shape[0]}",
                         "faces": len(faces), "missed": [list(f) for f in missed], "seconds": round(seconds, 2)})  # fmt: skip
            sizes = ", ".join(f"{f.width}x{f.height} at ({f.x0},{f.y0})" for f in missed)
            print(f"{name:28s} {variant:13s} {pixels.shape[1]:5d}x{pixels.shape[0]:<5d} faces {len(faces):3d} "
                  f"missed {len(missed):2d} {seconds:5.2f} s {sizes}", flush=True)  # fmt: skip
    print(f"total: {faces_total} true faces over all copies, {missed_total} missed (--detect-max-side {args.detect_max_side})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
