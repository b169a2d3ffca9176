"""People found by the selfie segmentation (``OfflinePersonDetector(segmentation=True)``) on
real photos and video frames, and why it looks at whole pictures only.

* **views**: for each picture, the regions (probability over 0.5, at least 0.5 % of the
  picture) of the segmentation on the whole picture, on square tiles 1 across the short
  side (``--tiles``) or with copies turned by 90 and 270 degrees (``--turned``; the
  maximum of the views), each with its share of the picture, mean probability, the share
  outside the masks the detector finds without segmentation, and whether the rule of
  ``segmented_people`` keeps it;
* **added**: the people the detector gains with segmentation on (masks to look at with
  ``--out DIR``);
* **cost**: seconds of the model (``PersonSegmenter.segment_batch``, one core) and of the
  rule (``segmented_people``) per picture, the median of 5 runs, and their medians over
  all pictures.

Pictures: ``docs/examples/astronaut.jpg``, ``../shared/data/*.jpg``, every ``--photos``
file, and every 25th frame of ``--video`` (e.g. OpenCV's ``vtest.avi``; see
benchmarks/bench_pedestrians.py for where to get it).

Usage::

    python benchmarks/bench_segmentation.py --photos messi5.jpg basketball1.png --video vtest.avi --out /tmp/seg
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pedestrians import read_frames  # noqa: E402

from sganon.plugins.offline.blaze import PersonSegmenter  # noqa: E402
from sganon.plugins.offline.detectors import OfflinePersonDetector, segmented_people, square_tiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pictures(photos: list[Path], video: Path | None, every: int) -> list[tuple[str, np.ndarray]]:
    paths = [ROOT / "docs" / "examples" / "astronaut.jpg", *sorted((ROOT.parent / "shared" / "data").glob("*.jpg")), *photos]
    found = [(path.stem, np.asarray(Image.open(path).convert("RGB"))) for path in paths]
    if video is not None:
        found += [(f"{video.stem}-{k}", frame) for k, frame in enumerate(read_frames(video)) if k % every == 0]
    return found


def probability(segmenter: PersonSegmenter, image: np.ndarray, view: str) -> np.ndarray:
    height, width = image.shape[:2]
    result = segmenter.segment_batch([image])[0]
    if view == "tiles":
        tiles = square_tiles(height, width, 1)
        crops = [np.ascontiguousarray(image[t.y0 : t.y1, t.x0 : t.x1]) for t in tiles]
        for tile, part in zip(tiles, segmenter.segment_batch(crops)):
            result[tile.y0 : tile.y1, tile.x0 : tile.x1] = np.maximum(result[tile.y0 : tile.y1, tile.x0 : tile.x1], part)
    elif view == "turned":
        for turns in (1, 3):
            part = segmenter.segment_batch([np.ascontiguousarray(np.rot90(image, turns))])[0]
            result = np.maximum(result, np.rot90(part, -turns))
    return result


def seconds(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, nargs="*", default=[])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--every", type=int, default=25, help="video: every N-th frame")
    parser.add_argument("--out", type=Path, default=None, help="write the added people's masks as PNG here")
    args = parser.parse_args()
    segmenter = PersonSegmenter()
    with_segmentation = OfflinePersonDetector()
    without = OfflinePersonDetector(segmentation=False)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    added_total, items = 0, pictures(args.photos, args.video, args.every)
    import torch

    torch.set_num_threads(1)  # as the detector runs it (a one-core worker)
    costs: list[tuple[float, float]] = []
    for name, image in items:
        height, width = image.shape[:2]
        before = without.detect(image)
        covered = np.zeros((height, width), bool)
        for person in before:
            covered |= person.mask_in_image(height, width)
        for view in ("whole", "tiles", "turned"):
            p = probability(segmenter, image, view)
            count, labels, stats, _ = cv2.connectedComponentsWithStats((p > 0.5).astype(np.uint8), connectivity=8)
            for k in range(1, count):
                area = stats[k, 4] / (height * width)
                if area < 0.005:
                    continue
                region = labels == k
                mean, outside = float(p[region].mean()), float((region & ~covered).sum() / region.sum())
                kept = area >= with_segmentation.segment_min_area and mean >= with_segmentation.segment_min_probability and outside >= 0.5
                x, y, w, h = (int(v) for v in stats[k, :4])
                print(f"{name:28s} {view:6s} region {x},{y} {w}x{h}  {area:6.1%} of the picture  mean {mean:.2f}  "
                      f"outside masks {outside:4.0%}  {'KEPT' if kept else ''}")  # fmt: skip
        segmenter.segment_batch([image])  # warm
        model = seconds(lambda: segmenter.segment_batch([image]))
        found = segmenter.segment_batch([image])[0]
        rule = seconds(lambda: segmented_people(found, covered))
        costs.append((model, rule))
        print(f"{name:28s} cost at {width}x{height}: model {model * 1000:.1f} ms, rule {rule * 1000:.1f} ms")
        after = with_segmentation.detect(image)
        added = [p for p in after if not any(p.box == q.box for q in before)]
        added_total += len(added)
        for person in added:
            print(f"{name:28s} added: box {tuple(person.box)}, {person.full_mask().sum() / (height * width):.1%} of the picture, "
                  f"mean probability {person.score:.2f}")  # fmt: skip
        if added and args.out:
            shown = image.copy()
            for person in added:
                mask = person.mask_in_image(height, width)
                shown[mask] = (shown[mask] * 0.4 + np.array([255, 0, 0]) * 0.6).astype(np.uint8)
            Image.fromarray(shown).save(args.out / f"{name}.png")
    print(f"people added by segmentation: {added_total} over {len(items)} pictures")
    print(f"cost (medians over the pictures): model {statistics.median(c[0] for c in costs) * 1000:.1f} ms, "
          f"rule {statistics.median(c[1] for c in costs) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
