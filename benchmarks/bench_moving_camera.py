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

``--lens`` chooses the camera: ``flat`` (above), ``fisheye`` (a wearable camera with an
equidistant lens, 150 degrees across, turning, nodding and tilting the head in front of the
photo: faces squeezed and bent near the lens's edge, as at a table filmed from a chest or
head mount) or ``phone`` (a 720x1280 portrait frame close on the photo's largest face, as in
a video of someone talking: from 4 face heights to an extreme close-up that cuts the face,
swinging the face half out of the picture, shaking and tilting). The clips are made from
still photos: the people do not move, the camera does.

``--photos FILE ...`` adds real photos; ``--truth mtcnn`` takes the faces to hide from a
detector that is not the project's instead: the MTCNN of ``facenet-pytorch`` on every frame
(see benchmarks/independent_face_check.py for how to make it importable).

``--clips FILE ...`` measures real videos as they are (no camera is simulated), with the faces
MTCNN finds in every frame (``--truth mtcnn`` is then required: a real clip has no still to
take the faces from); ``--end-to-end`` runs ``sganon anonymize`` on the file itself.

Usage::

    python benchmarks/bench_moving_camera.py                      # tracking only
    python benchmarks/bench_moving_camera.py --frames 60 --end-to-end --json /tmp/moving.json
    PYTHONPATH=/tmp/fnp python benchmarks/bench_moving_camera.py --end-to-end --truth mtcnn --photos t1.jpg
    PYTHONPATH=/tmp/fnp python benchmarks/bench_moving_camera.py --lens fisheye --end-to-end --truth mtcnn --photos t1.jpg
    PYTHONPATH=/tmp/fnp python benchmarks/bench_moving_camera.py --truth mtcnn --clips bikes.mp4 --end-to-end
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

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detection_recall import photos  # noqa: E402
from bench_pedestrians import read_frames  # noqa: E402
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
    """A camera panning and zooming over the photo: frame ``t`` shows a window of it (its pixels)."""

    height: int
    width: int
    frames: int
    frame: tuple[int, int] = FRAME

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

    def render(self, photo: np.ndarray, t: int) -> np.ndarray:
        """The 720p frame ``t`` (outside the photo: mid gray)."""
        canvas = Image.fromarray(photo)
        frame = canvas.transform((FRAME[1], FRAME[0]), Image.Transform.EXTENT, self.window(t),
                                 Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
        return np.asarray(frame)

    def face_box(self, face: Box, t: int) -> Box:
        """Where ``face`` (photo pixels) lies in frame ``t`` (frame pixels, unclipped)."""
        x0, y0, x1, y1 = self.window(t)
        sx, sy = FRAME[1] / (x1 - x0), FRAME[0] / (y1 - y0)
        return Box(math.floor((face.x0 - x0) * sx), math.floor((face.y0 - y0) * sy),
                   math.ceil((face.x1 - x0) * sx), math.ceil((face.y1 - y0) * sy))


class FisheyeCamera:
    """A wearable fisheye camera (equidistant lens: 150 degrees across the frame's width, 207 across
    its diagonal) facing the photo as a wall, the wearer turning the head across it and back
    (yaw +-35 degrees), nodding (pitch +-10) and tilting it (roll +-20). At rest the photo's width
    spans 130 degrees: people at the sides are seen obliquely, squeezed and bent by the lens near
    the frame's edge, and move out of the picture as the head turns."""

    HALF_WIDTH_ANGLE = math.radians(75)
    PHOTO_HALF_ANGLE = math.radians(65)

    frame = FRAME

    def __init__(self, height: int, width: int, frames: int) -> None:
        self.height, self.width, self.frames = height, width, frames
        self.focal = (FRAME[1] / 2) / self.HALF_WIDTH_ANGLE  # frame pixels per radian
        self.scale = (width / 2) / math.tan(self.PHOTO_HALF_ANGLE)  # photo pixels per unit on the wall
        v, u = np.mgrid[0 : FRAME[0], 0 : FRAME[1]].astype(np.float64) + 0.5
        x, y = (u - FRAME[1] / 2) / self.focal, (v - FRAME[0] / 2) / self.focal
        theta, phi = np.hypot(x, y), np.arctan2(y, x)
        # The ray of every frame pixel, in the camera's coordinates (z: the optical axis). (H, W, 3)
        self.rays = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)

    def rotation(self, t: int) -> np.ndarray:
        """Camera-to-world rotation of frame ``t`` (3x3)."""
        phase = t / max(self.frames - 1, 1)
        yaw = math.radians(35) * math.sin(2 * math.pi * phase)
        pitch = math.radians(10) * math.sin(4 * math.pi * phase)
        roll = math.radians(20) * math.sin(3 * math.pi * phase)
        cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                                  math.cos(roll), math.sin(roll))
        turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        nod = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        tilt = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return turn @ nod @ tilt

    def render(self, photo: np.ndarray, t: int) -> np.ndarray:
        world = self.rays @ self.rotation(t).T
        facing = world[..., 2] > 0.05  # rays that reach the wall
        z = np.where(facing, world[..., 2], 1.0)
        map_x = np.where(facing, self.width / 2 + world[..., 0] / z * self.scale, -1e4).astype(np.float32)
        map_y = np.where(facing, self.height / 2 + world[..., 1] / z * self.scale, -1e4).astype(np.float32)
        return cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(128, 128, 128))

    def face_box(self, face: Box, t: int) -> Box:
        """The frame box around ``face``'s outline as the lens bends it (frame pixels, unclipped)."""
        steps = np.linspace(0, 1, 9)
        xs = np.concatenate([face.x0 + steps * face.width, np.full(9, face.x1), face.x0 + steps * face.width,
                             np.full(9, face.x0)])
        ys = np.concatenate([np.full(9, face.y0), face.y0 + steps * face.height, np.full(9, face.y1),
                             face.y0 + steps * face.height])
        world = np.stack([(xs - self.width / 2) / self.scale, (ys - self.height / 2) / self.scale,
                          np.ones_like(xs)], axis=-1)
        camera = world @ self.rotation(t)  # world to camera: the rotation's inverse (its transpose)
        camera /= np.linalg.norm(camera, axis=-1, keepdims=True)
        theta = np.arccos(np.clip(camera[:, 2], -1, 1))
        phi = np.arctan2(camera[:, 1], camera[:, 0])
        u = FRAME[1] / 2 + self.focal * theta * np.cos(phi)
        v = FRAME[0] / 2 + self.focal * theta * np.sin(phi)
        return Box(math.floor(u.min()), math.floor(v.min()), math.ceil(u.max()), math.ceil(v.max()))


class PhoneCamera:
    """A phone held upright (a 720x1280 portrait frame) filming the photo's largest face, as in a
    video of someone talking: it moves in from 4 face heights to an extreme close-up (the face as
    tall as the frame, cut at its sides) and back, swings sideways so the face leaves the picture
    by half, shakes (2-4 % of the view) and tilts (+-10 degrees)."""

    frame = (1280, 720)

    def __init__(self, frames: int, face: Box) -> None:
        self.frames, self.face = frames, face

    def pose(self, t: int) -> tuple[float, float, float, float]:
        """Centre (photo pixels), photo pixels per frame pixel and tilt (radians) of frame ``t``."""
        phase = t / max(self.frames - 1, 1)
        face = self.face
        window_h = face.height * (4.0 - 3.0 * math.sin(math.pi * phase))
        cx = (face.x0 + face.x1) / 2 + 0.6 * face.width * math.sin(2 * math.pi * phase)
        cy = (face.y0 + face.y1) / 2
        cx += 0.02 * window_h * math.sin(2 * math.pi * t * 0.11) + 0.01 * window_h * math.sin(2 * math.pi * t * 0.37)
        cy += 0.02 * window_h * math.cos(2 * math.pi * t * 0.13)
        return cx, cy, window_h / self.frame[0], math.radians(10) * math.sin(3 * math.pi * phase)

    def to_photo(self, t: int) -> np.ndarray:
        """The affine map of frame pixels to photo pixels (2x3)."""
        cx, cy, scale, tilt = self.pose(t)
        turn = scale * np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
        middle = np.array([self.frame[1] / 2, self.frame[0] / 2])
        return np.hstack([turn, (np.array([cx, cy]) - turn @ middle)[:, None]])

    def render(self, photo: np.ndarray, t: int) -> np.ndarray:
        return cv2.warpAffine(photo, self.to_photo(t), (self.frame[1], self.frame[0]),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(128, 128, 128))

    def face_box(self, face: Box, t: int) -> Box:
        to_frame = cv2.invertAffineTransform(self.to_photo(t))
        corners = np.array([[face.x0, face.y0, 1], [face.x1, face.y0, 1], [face.x0, face.y1, 1], [face.x1, face.y1, 1]])
        u, v = (corners @ to_frame.T).T
        return Box(math.floor(u.min()), math.floor(v.min()), math.ceil(u.max()), math.ceil(v.max()))


#: The cameras by ``--lens``, made from the photo's size, the clip's length and the photo's faces.
LENSES = {
    "flat": lambda height, width, frames, faces: Camera(height, width, frames),
    "fisheye": lambda height, width, frames, faces: FisheyeCamera(height, width, frames),
    "phone": lambda height, width, frames, faces: PhoneCamera(frames, max(faces, key=lambda box: box.area)),
}


def clip(photo: np.ndarray, faces: list[Box], frames: int,
         lens: str = "flat") -> tuple[list[np.ndarray], list[list[Box]]]:
    """Frames and, per frame, the faces to hide in it (frame pixels, unclipped)."""
    camera = LENSES[lens](photo.shape[0], photo.shape[1], frames, faces)
    images, truth = [], []
    for t in range(frames):
        images.append(camera.render(photo, t))
        boxes = [camera.face_box(face, t) for face in faces]
        truth.append([box for box in boxes if box.clip(*camera.frame).area >= VISIBLE * box.area])
    return images, truth


def replaced_region(found: Detections, frame: tuple[int, int]) -> np.ndarray:
    """What the pipeline replaces for these detections: person masks, faces' heads (boxes.head_box)."""
    region = np.zeros(frame, dtype=bool)
    for person in found.persons:
        region |= person.mask_in_image(*frame)
    for face in found.faces:
        grown = head_box(face.box, FACE_MARGIN).clip(*frame)
        region[grown.y0 : grown.y1, grown.x0 : grown.x1] = True
    return region


def left_faces(region: np.ndarray, faces: list[Box]) -> int:
    left = 0
    for face in faces:
        inside = face.clip(*region.shape)
        if region[inside.y0 : inside.y1, inside.x0 : inside.x1].mean() < COVERED:
            left += 1
    return left


def score(per_frame: list[Detections], truth: list[list[Box]], frame: tuple[int, int]) -> dict[str, float]:
    """Faces left, and the share of each frame replaced (mean: what the clip loses to privacy)."""
    regions = [replaced_region(found, frame) for found in per_frame]
    lefts = [left_faces(region, faces) for region, faces in zip(regions, truth)]
    return {
        "frames": len(truth),
        "face_frames": sum(len(faces) for faces in truth),
        "faces_left": sum(lefts),
        "frames_with_a_face_left": sum(1 for n in lefts if n),
        "replaced_share": round(float(np.mean([region.mean() for region in regions])), 3),
    }


def tracked(raw: list[Detections], timeline: Timeline, frame: tuple[int, int]) -> list[Detections]:
    done = []
    for index, found in enumerate(raw):
        done += timeline.push(index, *frame, found)
    done += timeline.drain()
    return [Detections(frame.persons, frame.faces) for frame in done]


def end_to_end(
    name: str, images: list[np.ndarray], truth: list[list[Box]], folder: Path, source: Path | None = None
) -> dict[str, float]:
    """``sganon anonymize`` on ``source`` (default: ``images`` encoded as H.264), scored on
    the regions it reports as anonymized."""
    if source is None:
        source = folder / f"{name}.mp4"
        write_clip(source, images, FPS, crf=18)
    exported = folder / f"{name}.json"
    sganon = Path(sys.executable).with_name("sganon")
    started = time.perf_counter()
    subprocess.run([str(sganon), "anonymize", str(source), "-o", str(folder / "out"), "--quiet",
                    "--export-detections", str(exported), "--overwrite"], check=True)
    seconds = time.perf_counter() - started
    recorded = DetectionFile.read(exported)
    frame = images[0].shape[:2]
    per_frame = [recorded.lookup(source.name, t, *frame) for t in range(len(images))]
    return {**score(per_frame, truth, frame), "fps": round(len(images) / seconds, 2)}


def measure(anonymizer, images: list[np.ndarray], truth: list[list[Box]],  # type: ignore[no-untyped-def]
            settings: dict[str, tuple[int, int]]) -> dict[str, dict]:
    """The offline detectors once on every frame, then :class:`Timeline` with each setting
    (``(look_ahead, max_gap)``), scored against ``truth``; with the detection's speed."""
    started = time.perf_counter()
    raw = [anonymizer.detect(image) for image in images]
    detect_fps = len(images) / (time.perf_counter() - started)
    frame = images[0].shape[:2]
    report = {label: score(tracked(raw, Timeline(*values), frame), truth, frame) for label, values in settings.items()}
    report["detection"] = {"fps": round(detect_fps, 2)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per clip")
    parser.add_argument("--only", default=None, help="only photos whose name contains this")
    parser.add_argument("--end-to-end", action="store_true", help="also run `sganon anonymize` on each clip")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more real photos to film")
    parser.add_argument("--lens", choices=tuple(LENSES), default="flat",
                        help="flat: pans and zooms (720p); fisheye: a wearable fisheye camera turning its head (720p); "
                             "phone: a phone in portrait close on the largest face (720x1280)")
    parser.add_argument("--write-frames", type=Path, default=None, help="write every 10th frame here (to look at)")
    parser.add_argument("--truth", choices=("own", "mtcnn"), default="own",
                        help="faces to hide: the project's face ensemble on the still (own) or MTCNN on every frame")
    parser.add_argument("--clips", type=Path, nargs="*", default=[],
                        help="real videos to measure as they are (needs --truth mtcnn); the built-in photos are then not filmed")
    args = parser.parse_args()
    if args.clips and args.truth != "mtcnn":
        parser.error("--clips needs --truth mtcnn (the faces to hide come from MTCNN on every frame)")
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
        for path in args.clips:
            images = read_frames(path)
            truth = [[Box(x, y, x + w, y + h) for x, y, w, h in mtcnn(image)] for image in images]
            report[path.name] = measure(anonymizer, images, truth, settings)
            if args.end_to_end:
                report[path.name]["end to end (sganon anonymize)"] = end_to_end(
                    path.stem, images, truth, Path(temporary), source=path)
            print(f"{path.name}: {len(images)} frames of {images[0].shape[1]}x{images[0].shape[0]}", flush=True)
            for label, figures in report[path.name].items():
                print(f"  {label}: {json.dumps(figures)}", flush=True)
        stills = {} if args.clips else photos()
        face_detector = build_component("detector", "offline-face")
        for path in args.photos:
            photo = np.asarray(Image.open(path).convert("RGB"))
            stills[path.stem] = (photo, [d.box for d in face_detector.detect(photo)])
        for name, (photo, faces) in stills.items():
            if args.only and args.only not in name:
                continue
            images, truth = clip(photo, faces, args.frames, args.lens)
            if args.write_frames:
                args.write_frames.mkdir(parents=True, exist_ok=True)
                for t in range(0, len(images), 10):
                    Image.fromarray(images[t]).save(args.write_frames / f"{name}-{args.lens}-{t:03d}.png")
            if mtcnn is not None:
                truth = [[Box(x, y, x + w, y + h) for x, y, w, h in mtcnn(image)] for image in images]
            report[name] = measure(anonymizer, images, truth, settings)
            if args.end_to_end:
                report[name]["end to end (sganon anonymize)"] = end_to_end(name, images, truth, Path(temporary))
            print(f"{name}: {len(faces)} faces in the still", flush=True)
            for label, figures in report[name].items():
                print(f"  {label}: {json.dumps(figures)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
