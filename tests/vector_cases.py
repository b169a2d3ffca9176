"""The photos on which MediaPipe's outputs were recorded (benchmarks/record_mediapipe_vectors.py)
and the torch engine is compared with them (tests/test_blaze.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

#: case name -> (image source, transform). Sources: ``skimage:astronaut``, a path under the
#: repository, or ``shared:NAME`` (../shared/data). Transforms: ``none``, ``gray`` (luma in
#: three equal channels), ``dark`` (x0.3), ``rot90`` (turned counter-clockwise), ``crop:x0,y0,x1,y1``
#: (a square tile, as the detectors scan).
CASES = {
    "astronaut": ("skimage:astronaut", "none"),
    "astronaut-docs-gray": ("docs/examples/astronaut.jpg", "gray"),
    "astronaut-docs-dark": ("docs/examples/astronaut.jpg", "dark"),
    "astronaut-rot90": ("skimage:astronaut", "rot90"),
    "coco1000": ("shared:coco_val2017_000000001000.jpg", "none"),
    "coco1000-gray": ("shared:coco_val2017_000000001000.jpg", "gray"),
    "erling": ("shared:erling.jpg", "none"),
    "erling-dark": ("shared:erling.jpg", "dark"),
    "erling-tile": ("shared:erling.jpg", "crop:500,200,1175,875"),
    "coco1000-tile": ("shared:coco_val2017_000000001000.jpg", "crop:300,60,600,360"),
}


def source_path(source: str) -> Path | None:
    if source.startswith("shared:"):
        return SHARED / source.split(":", 1)[1]
    if source.startswith("skimage:"):
        return None
    return ROOT / source


def case_image(name: str) -> np.ndarray | None:
    """The uint8 RGB image of a case, or ``None`` when its file is missing."""
    source, transform = CASES[name]
    if source == "skimage:astronaut":
        from skimage import data

        image = np.asarray(data.astronaut())
    else:
        from PIL import Image

        path = source_path(source)
        if path is None or not path.is_file():
            return None
        image = np.asarray(Image.open(path).convert("RGB"))
    if transform == "gray":
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        image = np.repeat(np.round(luma).astype(np.uint8)[..., None], 3, axis=2)
    elif transform == "dark":
        image = np.round(image * 0.3).astype(np.uint8)
    elif transform == "rot90":
        image = np.rot90(image)
    elif transform.startswith("crop:"):
        x0, y0, x1, y1 = (int(v) for v in transform.split(":", 1)[1].split(","))
        image = image[y0:y1, x0:x1]
    return np.ascontiguousarray(image)


def pose_crops(image: np.ndarray, poses: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Crops ``(x0, y0, x1, y1)`` on which the pose is recorded: the whole image, and each
    proposal's body square (radius x1.5 around the hip centre) clipped to the image."""
    height, width = image.shape[:2]
    crops = [(0, 0, width, height)]
    for row in poses:
        cx, cy, ex, ey = row[5] * width, row[6] * height, row[7] * width, row[8] * height
        half = 1.5 * float(np.hypot(ex - cx, ey - cy))
        box = (max(0, int(cx - half)), max(0, int(cy - half)), min(width, int(cx + half)), min(height, int(cy + half)))
        if box[2] - box[0] >= 16 and box[3] - box[1] >= 16:
            crops.append(box)
    return crops
