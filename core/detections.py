"""The detections of one image, their JSON format, and detections files.

``Detections`` holds the persons and faces of one image. Its JSON form (what
``--export-detections`` writes and ``--detections`` reads) is::

    {"persons": [{"box": [x0, y0, x1, y1], "score": s, "mask": COCO RLE (image size),
                  "keypoints": [[x, y, c], ...]?}],
     "faces":   [{"box": [x0, y0, x1, y1], "score": s}]}

A detections file is ``{"images": [{"file": NAME, "size": [H, W], "sha256": HEX?,
"frame": N?, **detections}]}``: what each entry belongs to is recorded (``size``; for
images ``sha256`` of the decoded RGB pixels; for video frames the absolute frame number)
and an entry is applied only to exactly that (:meth:`DetectionFile.lookup`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .boxes import unrotate_box
from .crops import resize_nearest
from .errors import InputError
from .rle import decode_rle, encode_rle
from .structures import Box, Detection


@dataclass
class Detections:
    """Persons and faces of one image (image pixels)."""

    persons: list[Detection] = field(default_factory=list)
    faces: list[Detection] = field(default_factory=list)

    def to_json(self, image_height: int, image_width: int) -> dict[str, Any]:
        """The JSON form (module docstring); masks as COCO RLE of the whole image."""
        persons = []
        for person in self.persons:
            entry: dict[str, Any] = {
                "box": person.box.to_list(),
                "score": round(float(person.score), 4),
                "mask": encode_rle(person.mask_in_image(image_height, image_width)),
            }
            if person.keypoints is not None:
                entry["keypoints"] = np.round(person.keypoints.astype(float), 2).tolist()
            persons.append(entry)
        faces = [{"box": face.box.to_list(), "score": round(float(face.score), 4)} for face in self.faces]
        return {"persons": persons, "faces": faces}

    @classmethod
    def from_json(cls, data: dict[str, Any], image_height: int, image_width: int) -> "Detections":
        """Inverse of :meth:`to_json`; boxes are clipped to the image."""
        if not isinstance(data, dict):
            raise InputError(f"detections must be an object with persons/faces, got {type(data).__name__}")
        try:
            return cls.parse(data, image_height, image_width)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InputError(f"malformed detections entry ({type(error).__name__}: {error})") from error

    @classmethod
    def parse(cls, data: dict[str, Any], image_height: int, image_width: int) -> "Detections":
        persons = []
        for entry in data.get("persons") or []:
            box = Box.from_list(entry["box"]).clip(image_height, image_width)
            if box.is_empty():
                continue
            mask = None
            if entry.get("mask") is not None:
                full = decode_rle(entry["mask"])
                if full.shape != (image_height, image_width):
                    raise InputError(
                        f"a person mask is {full.shape[0]}x{full.shape[1]} but the image is {image_height}x{image_width}"
                    )
                mask = full[box.y0 : box.y1, box.x0 : box.x1]
            keypoints = np.asarray(entry["keypoints"], np.float32) if entry.get("keypoints") else None
            persons.append(Detection(box, float(entry.get("score", 1.0)), mask, keypoints, "person"))
        faces = []
        for entry in data.get("faces") or []:
            box = Box.from_list(entry["box"]).clip(image_height, image_width)
            if not box.is_empty():
                faces.append(Detection(box, float(entry.get("score", 1.0)), label="face"))
        return cls(persons, faces)


def downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` (uint8 RGB) downscaled to at most the pixels of a ``max_side`` x ``2/3 max_side``
    picture (a 3:2 photo gets ``max_side`` as its longest side, a 4:3 one 0.94 of it) and at
    most ``4 max_side`` long, or itself; and the scale factor (detections found on it map back
    with :func:`scale_detection`).

    A pixel budget, not a longest side: a wide group photo (2771x683, faces of 30-40 pixels)
    keeps its full resolution, where a longest side of 1920 would shrink its faces by 0.7.
    (A budget of 3/4 max_side squared took a 96 MP photo's peak memory past 3 GB:
    benchmarks/bench_large_image.py.)"""
    height, width = image.shape[:2]
    factor = min(1.0, math.sqrt(max_side * max_side * 2 / 3 / (height * width)), 4 * max_side / max(height, width))
    if factor >= 1.0:
        return image, 1.0
    from PIL import Image

    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
    return small, small.shape[1] / width


def scale_detection(detection: Detection, factor: float, image_height: int, image_width: int) -> Detection:
    """A detection found on an image scaled by ``factor``, mapped back to the full image."""
    box = detection.box
    full = Box(
        math.floor(box.x0 / factor), math.floor(box.y0 / factor), math.ceil(box.x1 / factor), math.ceil(box.y1 / factor)
    ).clip(image_height, image_width)
    mask = None
    if detection.mask is not None:
        mask = resize_nearest(detection.mask.astype(np.uint8), (full.height, full.width)).astype(bool)
    keypoints = None
    if detection.keypoints is not None:
        keypoints = detection.keypoints.copy()
        keypoints[:, :2] /= factor
    return Detection(full, detection.score, mask, keypoints, detection.label)


def unrotate_detection(detection: Detection, turns: int, height: int, width: int) -> Detection:
    """A detection found on ``np.rot90(image, turns)`` mapped back to ``image`` (``height x
    width``): its box, mask (turned back) and keypoints (continuous pixel coordinates)."""
    turns %= 4
    box = unrotate_box(detection.box, turns, height, width)
    mask = None if detection.mask is None else np.ascontiguousarray(np.rot90(detection.mask, -turns))
    keypoints = None
    if detection.keypoints is not None:
        keypoints = detection.keypoints.copy()
        x, y = detection.keypoints[:, 0], detection.keypoints[:, 1]
        if turns == 1:  # rotated[y, x] = image[x, width - 1 - y]
            keypoints[:, 0], keypoints[:, 1] = width - y, x
        elif turns == 2:
            keypoints[:, 0], keypoints[:, 1] = width - x, height - y
        elif turns == 3:  # rotated[y, x] = image[height - 1 - x, y]
            keypoints[:, 0], keypoints[:, 1] = y, height - x
    return Detection(box, detection.score, mask, keypoints, detection.label)


@dataclass
class DetectionFile:
    """Detections read from a ``--detections`` file, looked up by file name (and frame)."""

    entries: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "DetectionFile":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read the detections file: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputError(f'{path}: a detections file holds {{"images": [{{"file": ..., "persons": [...]}}]}}')
        found = cls()
        for entry in data["images"]:
            if not isinstance(entry, dict) or "file" not in entry:
                raise InputError(f'{path}: every entry of images needs a "file"')
            frame = entry.get("frame")
            if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
                raise InputError(f'{path}: "frame" must be a frame number (integer >= 0), got {frame!r}')
            found.entries[(str(entry["file"]), frame)] = entry
        return found

    def find(self, name: str, frame: int | None) -> dict[str, Any] | None:
        """The entry of ``name`` (exact relative name, else the bare file name) and frame."""
        entry = self.entries.get((name, frame))
        if entry is None:
            bare = Path(name).name
            entry = next((e for (file, f), e in self.entries.items() if Path(file).name == bare and f == frame), None)
        return entry

    def frames_of(self, name: str) -> list[int]:
        """The frame numbers that have an entry for video ``name`` (exact name, else bare name)."""
        exact = [f for (file, f) in self.entries if file == name and f is not None]
        if exact:
            return sorted(exact)
        bare = Path(name).name
        return sorted(f for (file, f) in self.entries if Path(file).name == bare and f is not None)

    def lookup(self, name: str, frame: int | None, height: int, width: int, pixels: str | None = None) -> Detections:
        """The detections of image ``name`` (``frame`` None) or of one video frame.

        Fails closed: a missing entry, or one recorded for another image (``size``, or
        ``sha256`` against ``pixels`` when both are known), raises :class:`InputError`.
        """
        entry = self.find(name, frame)
        what = repr(name) if frame is None else f"frame {frame} of {name!r}"
        if entry is None:
            raise InputError(f"the detections file has no entry for {what}; nothing was written for it")
        size = entry.get("size")
        if size is not None and size != [height, width]:
            raise InputError(f"the detections of {what} are for an image of size {size}, this one is {[height, width]}")
        if pixels is not None and entry.get("sha256") not in (None, pixels):
            raise InputError(f"the detections of {what} were recorded for other pixels (sha256 differs); re-detect it")
        return Detections.from_json(entry, height, width)


@dataclass(frozen=True)
class ExportedDetections:
    """What was anonymized in one image or video frame: one entry of an ``--export-detections``
    file (module docstring).

    Attributes:
        file: The output's name relative to the output folder (a video: its name).
        height: Image height in pixels.
        width: Image width in pixels.
        persons: Persons in the file's JSON form (box, score, COCO RLE mask, keypoints).
        faces: Faces in the file's JSON form (box, score).
        frame: Video frame index, or ``None`` for an image.
        sha256: sha256 of the decoded pixels the detections were made on (images), or ``None``.
    """

    file: str
    height: int
    width: int
    persons: list[dict[str, Any]]
    faces: list[dict[str, Any]]
    frame: int | None = None
    sha256: str | None = None

    @classmethod
    def of(
        cls, file: str, detections: Detections, height: int, width: int, frame: int | None = None,
        sha256: str | None = None,
    ) -> "ExportedDetections":
        encoded = detections.to_json(height, width)
        return cls(file, height, width, encoded["persons"], encoded["faces"], frame, sha256)

    def to_json(self) -> dict[str, Any]:
        """The entry as the file holds it (its keys in this order)."""
        entry: dict[str, Any] = {"file": self.file}
        if self.frame is not None:
            entry["frame"] = self.frame
        entry["size"] = [self.height, self.width]
        if self.sha256 is not None:
            entry["sha256"] = self.sha256
        return {**entry, "persons": self.persons, "faces": self.faces}

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> "ExportedDetections":
        height, width = entry["size"]
        return cls(entry["file"], height, width, entry["persons"], entry["faces"], entry.get("frame"),
                   entry.get("sha256"))


def pixels_sha256(rgb: np.ndarray) -> str:
    """sha256 of decoded uint8 RGB pixels (what an exported image entry is recorded for)."""
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()


def write_detections(path: Path, entries: list[ExportedDetections] | list[dict[str, Any]]) -> None:
    """Write ``{"images": entries}`` atomically (entries as :class:`ExportedDetections`, or
    already in their JSON form)."""
    images = [entry.to_json() if isinstance(entry, ExportedDetections) else entry for entry in entries]
    try:
        with atomic_output(Path(path)) as temporary:
            temporary.write_text(json.dumps({"images": images}), encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot write the detections file: {error}") from error
