"""People without faces on real surveillance footage: the offline detector with and without
its HOG pedestrians (``OfflinePersonDetector(pedestrians=...)``), or another of its parts
(``--toggle bodies``: NanoDet; ``--toggle segmentation``: the selfie segmentation).

Footage: OpenCV's sample clip ``vtest.avi`` (768x576, 795 frames, 10 fps, static camera,
people 35-155 pixels tall walking across and away). It is not in the repository; get it
from Debian's ``opencv-doc`` package (licence: its ``copyright`` file, BSD-3-Clause)::

    apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb /tmp/opencv-doc
    find /tmp/opencv-doc -name vtest.avi     # .../samples/data/vtest.avi (also messi5.jpg, basketball1.png)

Ground truth, independent of the project's detectors: the clip's per-pixel median
background (every 4th frame); foreground = pixels differing from it by more than 30 in a
channel, opened 3x3, closed 7x5; people = connected components of plausible size (at least
150 pixels, 20 rows, taller than 0.8x their width; people walking together are one blob).
A person counts as anonymized when at least 70 % of the blob's pixels, or of its head
region (the blob's pixels in the top sixth of its box), are replaced.

* **stills**: every ``--every``-th frame through ``Anonymizer`` (default pipeline, offline
  detectors, verification pass): replaced = pixels that changed, or ``result.replaced``;
* **video**: frames ``--cut START:COUNT`` as an H.264 clip through the runner of ``sganon
  anonymize`` (tracking, look-back, encoding), detections exported: replaced = the exported
  person masks and face regions (the output is lossy);
* **utility**: the share of each frame replaced (mean and largest), with and without;
* **cost**: seconds per frame of the HOG finder alone, and of the person detector with and
  without it (medians over the still frames);
* **crowds** (``--only crowds``): mosaics of 2x2 and 4x4 still frames (1536x1152 and
  3072x2304: many small walkers in one large picture, as in a street crowd) through
  ``Anonymizer``, judged as the stills;
* **masks** (``--only masks``): the share of every ``--every``-th frame under the person
  detector's masks (no ground truth: what a clip loses, e.g. a hand-held street clip), with
  the toggled part off and on;
* **false boxes**: HOG boxes and box-only persons (no Pose mask: a kept pedestrian box) on
  photos without small pedestrians (``docs/examples/astronaut.jpg``, ``../shared/data/*``,
  and any ``--photos``).

``--out DIR`` writes the stills (original with the ground-truth boxes beside the output,
every frame of the stills run) and every 25th frame of the video outputs as PNG, to look at.

Usage::

    python benchmarks/bench_pedestrians.py /tmp/opencv-doc/.../vtest.avi --out /tmp/ped --json /tmp/ped.json
    python benchmarks/bench_pedestrians.py vtest.avi --every 25 --cut 250:150 --photos messi5.jpg basketball1.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_surveillance import replaced_by, write_clip  # noqa: E402

import sganon.plugins.baselines  # noqa: E402,F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: E402,F401
from sganon.core.structures import Box  # noqa: E402
from sganon.plugins.offline import detectors  # noqa: E402
from sganon.plugins.offline.detectors import OfflinePersonDetector, scan_tiles  # noqa: E402
from sganon.core.boxes import non_maximum_suppression  # noqa: E402
from sganon.plugins.offline.pedestrians import WINDOW, PedestrianFinder, PedestrianSettings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


@dataclasses.dataclass
class Blob:
    """A person of the ground truth: box and foreground pixels (bool ``[box.height, box.width]``)."""

    box: Box
    mask: np.ndarray



def people_figures(per_frame: list, shares: list[float]) -> dict:
    """People anonymized of all (``per_frame``: [index, anonymized, people]) and the replaced share."""
    return {
        "anonymized": sum(found for _, found, _ in per_frame),
        "people": sum(total for _, _, total in per_frame),
        "frames_missing_someone": sum(found < total for _, found, total in per_frame),
        "frames": len(per_frame),
        "replaced_share": statistics.mean(shares),
        "replaced_share_max": max(shares),
    }

def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as uint8 RGB; a missing, unreadable or empty video ends the
    benchmark with a message naming it."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (OSError, av.error.FFmpegError) as error:
        raise SystemExit(f"cannot read the video {path}: {error}")
    if not frames:
        raise SystemExit(f"the video {path} has no frames")
    return frames


def median_background(frames: list[np.ndarray]) -> np.ndarray:
    return np.median(np.stack(frames[::4]), axis=0).astype(np.uint8)


def people(frame: np.ndarray, background: np.ndarray) -> list[Blob]:
    """Foreground blobs of plausible size (the module docstring says how)."""
    difference = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    foreground = (difference > 30).astype(np.uint8)
    foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, np.ones((7, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground)
    blobs = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area >= 150 and h >= 20 and h >= 0.8 * w:
            blobs.append(Blob(Box(x, y, x + w, y + h), labels[y : y + h, x : x + w] == label))
    return blobs


def is_anonymized(replaced: np.ndarray, blob: Blob, share: float = 0.7) -> bool:
    box = blob.box
    replaced_here = replaced[box.y0 : box.y1, box.x0 : box.x1]
    head = np.zeros_like(blob.mask)
    head[: max(1, box.height // 6)] = True
    head &= blob.mask
    return bool(replaced_here[blob.mask].mean() >= share or (head.any() and replaced_here[head].mean() >= share))


#: Settings of the pedestrian finder in every detector built here (``--keep-score``, ``--min-score``).
SETTINGS = PedestrianSettings()
#: The part of the person detector each run turns off and on (``--toggle``).
TOGGLE = "pedestrians"
#: NanoDet thresholds of every detector built here (``--body-min-score``, ``--body-keep-score``).
BODY_SCORES: dict[str, float] = {}


def person_detector(pedestrians: bool = True) -> OfflinePersonDetector:
    """The offline person detector with the ``TOGGLE`` part on or off (``pedestrians``)."""
    detector = OfflinePersonDetector(**{TOGGLE: pedestrians}, **BODY_SCORES)
    if detector.pedestrian_finder is not None:
        detector.pedestrian_finder = PedestrianFinder(SETTINGS)
    return detector


def pipeline(pedestrians: bool):  # type: ignore[no-untyped-def]
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble

    parts = assemble()
    return Anonymizer(dataclasses.replace(parts, detector=person_detector(pedestrians)))


def side_by_side(frame: np.ndarray, blobs: list[Blob], output: np.ndarray, replaced: np.ndarray) -> np.ndarray:
    """The frame with the ground truth (green: anonymized, red: not) beside the output."""
    left = frame.copy()
    for blob in blobs:
        colour = (0, 200, 0) if is_anonymized(replaced, blob) else (255, 0, 0)
        cv2.rectangle(left, (blob.box.x0, blob.box.y0), (blob.box.x1 - 1, blob.box.y1 - 1), colour, 1)
    return np.hstack([left, output])


def check_stills(frames: list[np.ndarray], background: np.ndarray, every: int, pedestrians: bool, out: Path | None) -> dict:
    pictures = [(index, frames[index], people(frames[index], background)) for index in range(0, len(frames), every)]
    return check_pictures(pictures, pedestrians, out, "still")


def check_pictures(pictures: list[tuple[int, np.ndarray, list[Blob]]], pedestrians: bool, out: Path | None,
                   label: str) -> dict:
    """Each picture (index, pixels, its people) through ``Anonymizer``: people anonymized, replaced share."""
    anonymizer = pipeline(pedestrians)
    per_frame, shares = [], []
    start = time.perf_counter()
    for index, picture, blobs in pictures:
        result = anonymizer.anonymize(picture)
        replaced = np.any(result.image != picture, axis=2) | result.replaced
        per_frame.append([index, sum(is_anonymized(replaced, blob) for blob in blobs), len(blobs)])
        shares.append(float(replaced.mean()))
        if out is not None:
            name = f"{label}-{'on' if pedestrians else 'off'}-{index:04d}.png"
            Image.fromarray(side_by_side(picture, blobs, result.image, replaced)).save(out / name)
    seconds = (time.perf_counter() - start) / len(per_frame)
    return {
        **people_figures(per_frame, shares),
        "seconds_per_frame": seconds,
        "per_frame": per_frame,
    }


def mosaic(frames: list[np.ndarray], blobs: list[list[Blob]], side: int) -> tuple[np.ndarray, list[Blob]]:
    """``side`` x ``side`` frames (row by row) as one picture, and their people moved with them."""
    height, width = frames[0].shape[:2]
    rows = [np.hstack(frames[row * side : (row + 1) * side]) for row in range(side)]
    moved = [Blob(blob.box.shifted((k % side) * width, (k // side) * height), blob.mask)
             for k, frame_blobs in enumerate(blobs) for blob in frame_blobs]
    return np.vstack(rows), moved


def check_crowds(frames: list[np.ndarray], background: np.ndarray, every: int, side: int, out: Path | None) -> dict:
    """A crowd of small walkers in a large picture: mosaics of ``side`` x ``side`` still frames
    (4x4: 3072x2304, detected on a 1810x1358 copy, the pixel budget of ``--detect-max-side``,
    so the people are 21-91 pixels tall there)
    through the whole pipeline, people judged as in the stills."""
    sampled = frames[::every]
    blobs = [people(frame, background) for frame in sampled]
    count = side * side
    pictures = []
    for start in range(0, len(sampled) - count + 1, count):
        picture, moved = mosaic(sampled[start : start + count], blobs[start : start + count], side)
        pictures.append((start // count, picture, moved))
    return check_pictures(pictures, True, out, f"crowd{side}x{side}")


def check_video(frames: list[np.ndarray], background: np.ndarray, pedestrians: bool, folder: Path, out: Path | None) -> dict:
    from sganon.core.jobs import collect_jobs
    from sganon.core.runners import FileAnonymizer, RunSettings

    source = folder / "cut.mp4"
    if not source.exists():
        write_clip(source, frames, fps=10)
    target = folder / ("on" if pedestrians else "off")
    start = time.perf_counter()
    result = FileAnonymizer(pipeline(pedestrians), target, RunSettings(export=True)).run(collect_jobs([source], None, []))
    seconds = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"video failed: {result.failed}")
    height, width = frames[0].shape[:2]
    by_frame = {entry.frame: entry.to_json() for entry in result.detections}
    outputs = read_frames(next(target.rglob("*.mp4"))) if out is not None else []
    per_frame, shares = [], []
    for index, frame in enumerate(frames):
        replaced = replaced_by(by_frame[index], height, width) if index in by_frame else np.zeros((height, width), bool)
        blobs = people(frame, background)
        per_frame.append([index, sum(is_anonymized(replaced, blob) for blob in blobs), len(blobs)])
        shares.append(float(replaced.mean()))
        missed = per_frame[-1][1] < per_frame[-1][2]
        if out is not None and (index % 25 == 0 or missed) and index < len(outputs):  # every 25th and every miss
            name = f"video-{'on' if pedestrians else 'off'}-{index:04d}.png"
            Image.fromarray(side_by_side(frame, blobs, outputs[index], replaced)).save(out / name)
    return {
        **people_figures(per_frame, shares),
        "fps": len(frames) / seconds,
        "per_frame": per_frame,
    }


def mask_share(frames: list[np.ndarray], every: int, pedestrians: bool) -> dict:
    """The mean (and largest) share of every ``every``-th frame under the person masks."""
    detector = person_detector(pedestrians)
    shares = []
    for frame in frames[::every]:
        height, width = frame.shape[:2]
        covered = np.zeros((height, width), dtype=bool)
        for person in detector.detect(frame):
            covered |= person.mask_in_image(height, width)
        shares.append(float(covered.mean()))
    return {"frames": len(shares), "person_mask_share": round(statistics.mean(shares), 3),
            "person_mask_share_max": round(max(shares), 3)}


def cost(frames: list[np.ndarray], every: int) -> dict:
    """Median seconds per frame: HOG alone, the person detector without and with it."""
    finder = PedestrianFinder(SETTINGS)
    detectors = {flag: person_detector(flag) for flag in (False, True)}
    times: dict[str, list[float]] = {"hog": [], "persons_without": [], "persons_with": []}
    for frame in frames[::every]:
        start = time.perf_counter()
        finder.find(frame)
        times["hog"].append(time.perf_counter() - start)
        for flag, key in ((False, "persons_without"), (True, "persons_with")):  # alternately
            detectors[flag].faces._recent.clear()  # the shared face ensemble keeps results for a repeat
            start = time.perf_counter()
            detectors[flag].detect(frame)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def false_boxes(paths: list[Path], out: Path | None) -> dict:
    """HOG boxes, persons and kept boxes (persons without keypoints) per photo; persons also
    with the ``--toggle`` part off (``persons_off``, ``box_only_off``)."""
    finder = PedestrianFinder(SETTINGS)
    detector, without = person_detector(), person_detector(False)
    figures = {}
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        boxes = finder.find(image)
        persons = detector.detect(image)
        kept = [p for p in persons if p.keypoints is None]
        persons_off = without.detect(image)
        figures[path.name] = {"size": f"{image.shape[1]}x{image.shape[0]}", "hog_boxes": len(boxes),
                              "persons": len(persons), "box_only_persons": len(kept),
                              "persons_off": len(persons_off),
                              "box_only_off": sum(p.keypoints is None for p in persons_off)}
        if out is not None:
            shown = image.copy()
            for box, _ in boxes:
                cv2.rectangle(shown, (box.x0, box.y0), (box.x1 - 1, box.y1 - 1), (255, 0, 0), 2)
            for person in kept:
                cv2.rectangle(shown, (person.box.x0, person.box.y0), (person.box.x1 - 1, person.box.y1 - 1), (255, 255, 0), 2)
            Image.fromarray(shown).save(out / f"photo-{path.stem}.png")
    return figures


def raw_recall(frames: list[np.ndarray], background: np.ndarray, every: int) -> dict:
    """OpenCV's two HOG people models alone, by scales and SVM margin: blobs with a box
    around their centre (at most 3x their height), boxes touching no blob (20 % of its box),
    seconds per frame (gray image, boxes merged as the finder merges them)."""
    default = cv2.HOGDescriptor()
    default.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    daimler = PedestrianFinder().hog
    models = {"default-64x128": (default, (64, 128)), "daimler-48x96": (daimler, WINDOW)}
    runs = [("default-64x128", (1.0,)), ("default-64x128", (1.0, 1.5, 2.0)), ("default-64x128", (1.0, 1.25, 1.5)),
            ("daimler-48x96", (1.0,)), ("daimler-48x96", (0.8, 1.0, 1.25, 1.5)),
            ("daimler-48x96", tuple(round(s, 2) for s in PedestrianFinder(SETTINGS).scales(*frames[0].shape[:2])))]
    margins = (0.0, 0.5, 1.0, 1.5, 2.0)
    figures = {}
    sampled = [(frame, people(frame, background)) for frame in frames[::every]]
    for name, scales in runs:
        hog, (window_w, window_h) = models[name]
        counts = {margin: [0, 0] for margin in margins}
        start = time.perf_counter()
        for frame, blobs in sampled:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            found = []
            for scale in scales:
                scaled = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
                corners, weights = hog.detect(scaled, hitThreshold=0.0, winStride=(8, 8), padding=(0, 0))
                for (x, y), weight in zip(np.reshape(corners, (-1, 2)), np.reshape(weights, -1)):
                    box = Box(int(x / scale), int(y / scale), int((x + window_w) / scale), int((y + window_h) / scale))
                    found.append((box, float(weight)))
            for margin in margins:
                kept = [box for box, _ in non_maximum_suppression([f for f in found if f[1] >= margin], 0.3, inside=0.7)]
                counts[margin][0] += sum(is_found(blob.box, kept) for blob in blobs)
                counts[margin][1] += sum(all(b.intersect(blob.box).area <= 0.2 * blob.box.area for blob in blobs) for b in kept)
        seconds = (time.perf_counter() - start) / len(sampled)
        key = f"{name} x{'/'.join(map(str, scales))}"
        figures[key] = {"people": sum(len(blobs) for _, blobs in sampled), "seconds_per_frame": seconds,
                        **{f"margin {m}": {"found": c[0], "boxes_off_people": c[1]} for m, c in counts.items()}}
    return figures


def is_found(person: Box, boxes: list[Box]) -> bool:
    """Whether a box lies around the person's centre, at most 3x the person's height (a
    detector alone; the anonymized share is judged by :func:`is_anonymized`)."""
    cx, cy = (person.x0 + person.x1) / 2, (person.y0 + person.y1) / 2
    return any(b.x0 <= cx < b.x1 and b.y0 <= cy < b.y1 and b.height < 3 * person.height for b in boxes)


def body_recall(frames: list[np.ndarray], background: np.ndarray, every: int) -> dict:
    """NanoDet alone (boxes of at least ``body_min_score``): people found on the still frames
    and on mosaics of 2x2 of them (1536x1152: real people at half the scale), by the whole
    picture only, by the detector's views (whole picture + tiles) and by the whole picture +
    finer tiles (3 across the short side: 240 pixels, 1.73x for a still), with seconds each."""
    detector = person_detector()
    assert detector.body_finder is not None
    stills = frames[::every]
    blobs = [people(frame, background) for frame in stills]
    sampled = [(frame, [blob.box for blob in frame_blobs]) for frame, frame_blobs in zip(stills, blobs)]
    mosaics = []
    for start in range(0, len(stills) - 3, 4):
        picture, moved = mosaic(stills[start : start + 4], blobs[start : start + 4], 2)
        mosaics.append((picture, [blob.box for blob in moved]))
    views = {
        "whole picture": lambda image: detector.body_finder.find(image),
        "whole picture + tiles": lambda image: detector.body_boxes_batch([image])[0],
        "whole picture + 3 tiles across": lambda image: non_maximum_suppression(
            detector.body_finder.find(image) + scan_tiles(detector.body_finder.find_batch, image, 3), 0.5),
    }
    figures = {}
    for name, pictures in (("stills", sampled), ("mosaics", mosaics)):
        for label, find in views.items():
            find(pictures[0][0])  # warm-up
            found, start = 0, time.perf_counter()
            for picture, persons in pictures:
                boxes = [box for box, _ in find(picture)]
                found += sum(is_found(person, boxes) for person in persons)
            figures[f"{name}, {label}"] = {
                "size": f"{pictures[0][0].shape[1]}x{pictures[0][0].shape[0]}",
                "found": found, "people": sum(len(persons) for _, persons in pictures),
                "seconds_per_picture": (time.perf_counter() - start) / len(pictures),
            }
    return figures


def cost_on_photos(repeats: int = 3) -> dict:
    """The person detector without and with pedestrians on the 720p photos of
    ``bench_vs_deface.py`` (1-20 people): seconds for all of them (median of ``repeats``,
    alternately) and box-only persons per photo."""
    from bench_vs_deface import write_photos

    with tempfile.TemporaryDirectory() as folder:
        write_photos(Path(folder))
        paths = sorted(Path(folder).iterdir())
        images = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    detectors = {flag: person_detector(flag) for flag in (False, True)}
    seconds: dict[bool, list[float]] = {False: [], True: []}
    box_only = {}
    for _ in range(repeats):
        for flag, detector in detectors.items():
            total = 0.0
            for path, image in zip(paths, images):
                detector.faces._recent.clear()
                start = time.perf_counter()
                persons = detector.detect(image)
                total += time.perf_counter() - start
                if flag:
                    box_only[path.name] = sum(person.keypoints is None for person in persons)
            seconds[flag].append(total)
    return {"photos": len(images), "seconds_without": statistics.median(seconds[False]),
            "seconds_with": statistics.median(seconds[True]), "box_only_persons": box_only}


def summary(figures: dict) -> dict:
    return {key: value for key, value in figures.items() if key != "per_frame"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path, help="vtest.avi (see the module docstring)")
    parser.add_argument("--every", type=int, default=25, help="stills: every N-th frame")
    parser.add_argument("--cut", default="250:150", help="video: START:COUNT frames")
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="more photos for false boxes")
    parser.add_argument("--only", choices=("stills", "video", "cost", "photos", "models", "bodies", "photos720",
                                           "crowds", "masks"),
                        nargs="*", default=None, help="parts to run (default: all but models, the raw HOG recall by "
                        "model and scales, bodies, NanoDet alone on stills and mosaics, photos720, the cost on "
                        "bench_vs_deface.py's photos, and crowds, the whole pipeline on mosaics of 2x2 and 4x4 stills)")
    parser.add_argument("--toggle", choices=("pedestrians", "bodies", "segmentation"), default="pedestrians",
                        help="the part of the person detector the stills and video runs turn off and on "
                        "(the figures' 'pedestrians off/on' then mean this part)")
    parser.add_argument("--states", choices=("both", "off", "on"), default="both",
                        help="the states of the toggled part the stills and video runs measure")
    parser.add_argument("--body-min-score", type=float, default=None, help="OfflinePersonDetector.body_min_score")
    parser.add_argument("--body-keep-score", type=float, default=None, help="OfflinePersonDetector.body_keep_score")
    parser.add_argument("--keep-score", type=float, default=None, help="PedestrianSettings.keep_score")
    parser.add_argument("--min-score", type=float, default=None, help="PedestrianSettings.min_score")
    parser.add_argument("--out", type=Path, default=None, help="write PNGs to look at here")
    parser.add_argument("--small-picture-tiles", type=int, default=None,
                        help="detectors.SMALL_PICTURE_TILES: NanoDet's tiles across the short side of pictures up to 832 pixels")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.small_picture_tiles is not None:
        detectors.SMALL_PICTURE_TILES = args.small_picture_tiles
    parts = set(args.only or ("stills", "video", "cost", "photos"))
    global SETTINGS, TOGGLE
    TOGGLE = args.toggle
    bodies = {"body_min_score": args.body_min_score, "body_keep_score": args.body_keep_score}
    BODY_SCORES.update({key: value for key, value in bodies.items() if value is not None})
    changed = {"keep_score": args.keep_score, "min_score": args.min_score}
    SETTINGS = dataclasses.replace(SETTINGS, **{key: value for key, value in changed.items() if value is not None})
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    frames = read_frames(args.video)
    background = median_background(frames)
    figures: dict = {}
    states = {"both": (False, True), "off": (False,), "on": (True,)}[args.states]
    if "stills" in parts:
        for flag in states:
            figures[f"stills_pedestrians_{'on' if flag else 'off'}"] = found = check_stills(frames, background, args.every, flag, args.out)
            print(f"stills, pedestrians {'on' if flag else 'off'}: {summary(found)}", flush=True)
    if "video" in parts:
        start, count = (int(v) for v in args.cut.split(":"))
        with tempfile.TemporaryDirectory() as folder:
            for flag in states:
                found = check_video(frames[start : start + count], background, flag, Path(folder), args.out)
                figures[f"video_pedestrians_{'on' if flag else 'off'}"] = found
                print(f"video {args.cut}, pedestrians {'on' if flag else 'off'}: {summary(found)}", flush=True)
    if "masks" in parts:
        for flag in states:
            figures[f"masks_pedestrians_{'on' if flag else 'off'}"] = found = mask_share(frames, args.every, flag)
            print(f"person masks, pedestrians {'on' if flag else 'off'}: {found}", flush=True)
    if "cost" in parts:
        figures["seconds_per_frame"] = cost(frames, args.every)
        print(f"seconds per frame (medians): {figures['seconds_per_frame']}", flush=True)
    if "models" in parts:
        figures["models"] = raw_recall(frames, background, args.every)
        for name, found in figures["models"].items():
            print(f"{name}: {found}", flush=True)
    if "bodies" in parts:
        figures["bodies"] = body_recall(frames, background, args.every)
        for name, found in figures["bodies"].items():
            print(f"NanoDet alone, {name}: {found}", flush=True)
    if "crowds" in parts:
        for side in (2, 4):
            figures[f"crowds_{side}x{side}"] = found = check_crowds(frames, background, args.every, side, args.out)
            print(f"crowds of {side}x{side} stills: {summary(found)}", flush=True)
    if "photos720" in parts:
        figures["photos720"] = cost_on_photos()
        print(f"720p photos: {figures['photos720']}", flush=True)
    if "photos" in parts:
        photos = [ROOT / "docs" / "examples" / "astronaut.jpg"] + sorted(SHARED.glob("*.jpg")) + list(args.photos)
        figures["photos"] = false_boxes([p for p in photos if p.exists()], args.out)
        for name, found in figures["photos"].items():
            print(f"{name}: {found}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
