"""Audit of anonymized images: is every face of the original replaced?

For each pair (original, anonymized) of images of the same size:

* the *replaced* pixels are those that differ (exactly for lossless outputs; by more than
  a tolerance for JPEG/WebP, whose re-encoding changes every pixel a little), closed so
  that pixelated blocks count whole;
* every face the face detectors find in the original is checked: the fraction of its
  head that was replaced (the face box grown to hair, forehead and ears as the pipeline's
  face regions are, :func:`~sganon.core.boxes.head_box`: a person recognizes a head, and
  detectors box only the eyes-to-mouth area), and whether the detectors still find a face
  there in the anonymized image;
* faces the detectors find in the anonymized image outside replaced pixels are faces
  left too (:func:`find_faces_left`, also usable as a verification pass in the pipeline).

A face is *left* when less than ``min_replaced`` of its head was replaced. The result is a
self-contained HTML report (thumbnails inline as base64, no external assets) and a JSON
summary (:func:`write_report`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_output
from .boxes import box_iou, head_box
from .detections import downscaled, scale_detection
from .errors import InputError
from .interfaces import Detector
from .images import image_extensions, read_image
from .structures import Box, Detection

#: Default fraction of a face's head that must be replaced for the face to count as anonymized.
MIN_REPLACED = 0.7
#: The head judged for a face: its box grown as the pipeline's default face region is.
HEAD_MARGIN = 0.2
#: Per-channel difference above which a pixel counts as replaced, when the anonymized image
#: is lossy (JPEG, WebP): absorbs re-encoding noise. Lossless outputs are compared exactly
#: (any difference), so a pixelated dark, blurred or low-contrast face still counts as replaced.
TOLERANCE = 12
LOSSY_FORMATS = frozenset({"JPEG", "WEBP", "MPO"})
#: Default closing radius of the replaced-pixel mask (see :func:`replaced_pixels`).
CLOSE_RADIUS = 4
#: Faces found only in the anonymized image (not in the original) count as left from this score:
#: weaker ones appear next to replaced pixels on textures (shoes, folds) the original hid.
NEW_FACE_SCORE = 0.8
THUMBNAIL_SIDE = 360


def replaced_pixels(
    original: np.ndarray, anonymized: np.ndarray, tolerance: int = TOLERANCE, close_radius: int = CLOSE_RADIUS
) -> np.ndarray:
    """Bool ``[H, W]``: the replaced region, pixels where some channel differs by more than
    ``tolerance``, closed by ``close_radius`` (a pixelated block keeps pixels near its mean
    colour; closing counts them as replaced with the rest of the block)."""
    if original.shape != anonymized.shape:
        raise InputError(
            f"the anonymized image is {anonymized.shape[1]}x{anonymized.shape[0]} but the original is "
            f"{original.shape[1]}x{original.shape[0]}; an audit compares images of the same size"
        )
    difference = np.abs(original.astype(np.int16) - anonymized.astype(np.int16)).max(axis=2)
    return close_mask(difference > tolerance, close_radius)


def close_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological closing (dilate, then erode) of a bool mask by a square of side ``2 radius + 1``."""
    if radius <= 0 or not mask.any():
        return mask
    import torch
    import torch.nn.functional as F

    size = 2 * radius + 1
    pixels = torch.from_numpy(mask).float()[None, None]
    grown = F.max_pool2d(pixels, size, stride=1, padding=radius)
    # Erosion = 1 - dilation of the complement; outside the image counts as replaced here so
    # that closing does not shrink the region at the borders.
    closed = 1 - F.max_pool2d(F.pad(1 - grown, (radius,) * 4, value=0.0), size, stride=1)
    return closed[0, 0].numpy() > 0.5


def replaced_fraction(box: Box, replaced: np.ndarray) -> float:
    """Fraction of the box's pixels (inside the image) that are replaced."""
    inside = box.clip(*replaced.shape)
    if inside.is_empty():
        return 1.0
    return float(replaced[inside.y0 : inside.y1, inside.x0 : inside.x1].mean())


def detect_faces(detectors: Sequence[Detector], image: np.ndarray) -> list[Detection]:
    """Faces from every detector (detections labelled ``face``), in one list."""
    return [d for detector in detectors for d in detector.detect(image) if d.label == "face"]


def find_faces_left(
    detectors: Sequence[Detector],
    anonymized: np.ndarray,
    replaced: np.ndarray,
    min_replaced: float = MIN_REPLACED,
    max_side: int | None = None,
) -> list[Detection]:
    """Faces the detectors find in ``anonymized`` (uint8 RGB) that are not inside replaced pixels.

    Args:
        detectors: Face detectors (only detections labelled ``face`` are used).
        anonymized: The anonymized image ``[H, W, 3]``.
        replaced: Bool ``[H, W]``, the pixels the anonymizer replaced.
        min_replaced: A face whose box is replaced at least this much is a generated one.
        max_side: Detect on a copy downscaled to at most this longest side (``None``: as it is);
            boxes are mapped back to the image.

    Returns:
        The faces left (boxes in image pixels); empty when every face found is replaced.
    """
    if replaced.shape != anonymized.shape[:2]:
        raise InputError(f"replaced mask {replaced.shape} does not match the image {anonymized.shape[:2]}")
    small, factor = downscaled(anonymized, max_side) if max_side else (anonymized, 1.0)
    faces = detect_faces(detectors, small)
    if factor < 1.0:
        faces = [scale_detection(face, factor, *replaced.shape) for face in faces]
    return [face for face in faces if replaced_fraction(face.box, replaced) < min_replaced]


def same_place(a: Box, b: Box) -> bool:
    """Two face boxes are one face: IoU >= 0.3 or one's centre lies in the other."""
    if box_iou(a, b) >= 0.3:
        return True
    for one, other in ((a, b), (b, a)):
        cx, cy = (one.x0 + one.x1) / 2, (one.y0 + one.y1) / 2
        if other.x0 <= cx < other.x1 and other.y0 <= cy < other.y1:
            return True
    return False


@dataclass
class FaceCheck:
    """One face of the original (or one found only in the anonymized image).

    Attributes:
        box: ``[x0, y0, x1, y1]`` in image pixels.
        score: Detector confidence.
        replaced: Fraction of the head (the box grown to the head, see the module) replaced.
        still_detected: The detectors find a face there in the anonymized image.
        left: The face is not anonymized (``replaced < min_replaced``).
        where: ``"original"`` or ``"anonymized"`` (found only after anonymization).
    """

    box: list[int]
    score: float
    replaced: float
    still_detected: bool
    left: bool
    where: str = "original"


@dataclass
class PairAudit:
    """The audit of one pair of images (``error`` set when they could not be compared)."""

    name: str
    original: str
    anonymized: str
    width: int = 0
    height: int = 0
    replaced_fraction: float = 0.0
    tolerance: int = 0
    faces: list[FaceCheck] = field(default_factory=list)
    error: str | None = None

    @property
    def faces_left(self) -> int:
        return sum(face.left for face in self.faces)


@dataclass
class AuditReport:
    pairs: list[PairAudit]
    detectors: list[str]
    min_replaced: float
    tolerance: int | None

    @property
    def faces(self) -> int:
        return sum(1 for pair in self.pairs for face in pair.faces if face.where == "original")

    @property
    def faces_left(self) -> int:
        return sum(pair.faces_left for pair in self.pairs)

    @property
    def errors(self) -> int:
        return sum(pair.error is not None for pair in self.pairs)

    @property
    def passed(self) -> bool:
        """No face left and every pair compared (privacy fails closed)."""
        return self.faces_left == 0 and self.errors == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "pairs": len(self.pairs),
            "faces": self.faces,
            "faces_left": self.faces_left,
            "errors": self.errors,
            "detectors": self.detectors,
            "min_replaced": self.min_replaced,
            "tolerance": self.tolerance,
            "images": [
                {**{k: v for k, v in asdict(pair).items() if k != "faces"}, "faces_left": pair.faces_left,
                 "faces": [asdict(face) for face in pair.faces]}
                for pair in self.pairs
            ],
        }  # fmt: skip


def pair_paths(originals: Path, anonymized: Path) -> list[tuple[str, Path, Path]]:
    """``(name, original, anonymized)`` pairs: two files, or two folders whose images match by
    relative path without extension (``a/b.jpg`` pairs with ``a/b.png``)."""
    originals, anonymized = Path(originals), Path(anonymized)
    for path in (originals, anonymized):
        if not path.exists():
            raise InputError(f"{path} does not exist")
    if originals.is_file() and anonymized.is_file():
        return [(originals.name, originals, anonymized)]
    if originals.is_file() != anonymized.is_file():
        raise InputError("give two image files or two folders (originals, anonymized)")
    extensions = image_extensions()

    def images(root: Path) -> dict[str, Path]:
        found = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in extensions:
                found.setdefault(str(path.relative_to(root).with_suffix("")), path)
        return found

    left, right = images(originals), images(anonymized)
    pairs = [(name, left[name], right[name]) for name in sorted(left) if name in right]
    if not pairs:
        raise InputError(f"no images in {anonymized} match the names of the images in {originals}")
    return pairs


def audit_images(
    detectors: Sequence[Detector],
    original: np.ndarray,
    anonymized: np.ndarray,
    min_replaced: float = MIN_REPLACED,
    tolerance: int = TOLERANCE,
) -> tuple[list[FaceCheck], np.ndarray]:
    """Face checks of one pair (uint8 RGB images of one size) and its replaced-pixel mask."""
    replaced = replaced_pixels(original, anonymized, tolerance)
    after = detect_faces(detectors, anonymized)
    checks = []
    for face in detect_faces(detectors, original):
        fraction = replaced_fraction(head_box(face.box, HEAD_MARGIN), replaced)
        still = any(same_place(face.box, other.box) for other in after)
        checks.append(FaceCheck(face.box.to_list(), round(float(face.score), 4), round(fraction, 4), still, fraction < min_replaced))
    for face in after:  # found only after anonymization, outside replaced pixels
        fraction = replaced_fraction(face.box, replaced)
        if fraction < min_replaced and not any(same_place(face.box, Box(*c.box)) for c in checks):
            left = face.score >= NEW_FACE_SCORE
            checks.append(FaceCheck(face.box.to_list(), round(float(face.score), 4), round(fraction, 4), True, left, "anonymized"))
    return checks, replaced


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> Any:
    from PIL import Image

    picture = Image.fromarray(image)
    picture.thumbnail((side, side), Image.Resampling.BILINEAR)
    return picture


def data_uri(picture: Any) -> str:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pair_thumbnails(original: np.ndarray, anonymized: np.ndarray, replaced: np.ndarray, faces: list[FaceCheck]) -> list[str]:
    """Data URIs: original with face boxes (green replaced, red left), anonymized, replaced pixels."""
    from PIL import ImageDraw

    before = thumbnail(original)
    factor = before.width / original.shape[1]
    draw = ImageDraw.Draw(before)
    for face in faces:
        box = [round(v * factor) for v in face.box]
        draw.rectangle(box, outline=(230, 30, 30) if face.left else (30, 200, 60), width=2)
    overlay = (original * 0.35).astype(np.uint8)
    overlay[replaced] = (255, 210, 0)
    return [data_uri(before), data_uri(thumbnail(anonymized)), data_uri(thumbnail(overlay))]


def render_html(report: AuditReport, thumbnails: dict[str, list[str]]) -> str:
    """The report page: summary table, then one section per pair (no external assets)."""
    escape = html.escape
    status = "PASSED: no face left" if report.passed else f"FAILED: {report.faces_left} face(s) left, {report.errors} error(s)"
    rows = []
    for pair in report.pairs:
        result = "error" if pair.error else ("ok" if pair.faces_left == 0 else "FACE LEFT")
        rows.append(
            f"<tr class='{'bad' if result != 'ok' else 'good'}'><td><a href='#{escape(pair.name)}'>{escape(pair.name)}</a></td>"
            f"<td>{sum(f.where == 'original' for f in pair.faces)}</td><td>{pair.faces_left}</td>"
            f"<td>{pair.replaced_fraction:.1%}</td><td>{result}</td></tr>"
        )
    sections = []
    for pair in report.pairs:
        head = f"<h2 id='{escape(pair.name)}'>{escape(pair.name)}</h2>"
        if pair.error:
            sections.append(f"{head}<p class='bad'>{escape(pair.error)}</p>")
            continue
        images = "".join(
            f"<figure><img src='{uri}' alt='{label}'><figcaption>{label}</figcaption></figure>"
            for uri, label in zip(thumbnails.get(pair.name, []), ("original (faces)", "anonymized", "replaced pixels"))
        )
        faces = "".join(
            f"<tr class='{'bad' if f.left else 'good'}'><td>{f.where}</td><td>{f.box}</td><td>{f.score:.2f}</td>"
            f"<td>{f.replaced:.0%}</td><td>{'yes' if f.still_detected else 'no'}</td><td>{'LEFT' if f.left else 'replaced'}</td></tr>"
            for f in pair.faces
        ) or "<tr><td colspan='6'>no face found</td></tr>"
        sections.append(
            f"{head}<p>{pair.width}x{pair.height}, {pair.replaced_fraction:.1%} of the pixels replaced. "
            f"{escape(pair.original)} &rarr; {escape(pair.anonymized)}</p><div class='row'>{images}</div>"
            "<table><tr><th>found in</th><th>face box</th><th>score</th><th>replaced</th>"
            f"<th>face still detected</th><th>result</th></tr>{faces}</table>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:3px 8px}.bad{background:#fdd}.good{background:#efe}"
        ".row{display:flex;gap:1em;flex-wrap:wrap}figure{margin:0}img{display:block}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sganon audit</title>"
        f"<style>{style}</style></head><body><h1>sganon audit</h1>"
        f"<p class='{'good' if report.passed else 'bad'}'><b>{status}</b>. {len(report.pairs)} image pair(s), "
        f"{report.faces} face(s) in the originals; detectors: {escape(', '.join(report.detectors))}; a face counts "
        f"as replaced when at least {report.min_replaced:.0%} of its box differs (tolerance "
        f"{'auto: 0 lossless, ' + str(TOLERANCE) + ' lossy' if report.tolerance is None else report.tolerance}).</p>"
        "<table><tr><th>image</th><th>faces</th><th>left</th><th>replaced pixels</th><th>result</th></tr>"
        f"{''.join(rows)}</table>{''.join(sections)}</body></html>"
    )


def audit(
    originals: Path,
    anonymized: Path,
    detectors: Sequence[Detector],
    detector_names: Sequence[str],
    min_replaced: float = MIN_REPLACED,
    tolerance: int | None = None,
) -> tuple[AuditReport, dict[str, list[str]]]:
    """Audit every pair (see :func:`pair_paths`); returns the report and the thumbnails.

    ``tolerance`` ``None``: :data:`TOLERANCE` for lossy anonymized files, 0 for lossless ones.
    """
    pairs, thumbnails = [], {}
    for name, original_path, anonymized_path in pair_paths(originals, anonymized):
        pair = PairAudit(name, str(original_path), str(anonymized_path))
        try:
            original = read_image(original_path).rgb
            loaded = read_image(anonymized_path)
            result = loaded.rgb
            pair.height, pair.width = original.shape[:2]
            pair.tolerance = tolerance if tolerance is not None else (TOLERANCE if loaded.format in LOSSY_FORMATS else 0)
            pair.faces, replaced = audit_images(detectors, original, result, min_replaced, pair.tolerance)
        except InputError as error:
            pair.error = str(error)
        else:
            pair.replaced_fraction = round(float(replaced.mean()), 4)
            thumbnails[name] = pair_thumbnails(original, result, replaced, pair.faces)
        pairs.append(pair)
    return AuditReport(pairs, list(detector_names), min_replaced, tolerance), thumbnails


def write_report(report: AuditReport, thumbnails: dict[str, list[str]], folder: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.json`` into ``folder``; returns their paths."""
    folder = Path(folder)
    page, summary = folder / "report.html", folder / "summary.json"
    with atomic_output(page) as temporary:
        temporary.write_text(render_html(report, thumbnails), encoding="utf-8")
    with atomic_output(summary) as temporary:
        temporary.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    return page, summary
