"""Images per second of `sganon anonymize` with the local engine and with Ray (1 and 2 workers).

Makes a COCO-style folder of N small JPEGs (``000000000001.jpg`` ...) and a detections
file with one person per image (so no detector runs: the figure is the engines' own cost
plus the baseline generator), then times each command end to end (process start, model
building, Ray start-up included) and checks that every engine wrote the same bytes.

    .venv/bin/python benchmarks/bench_engines.py --images 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_folder(folder: Path, count: int, size: tuple[int, int]) -> Path:
    images = folder / "val2017"
    images.mkdir(parents=True)
    entries = []
    height, width = size
    for i in range(1, count + 1):
        name = f"{i:012d}.jpg"
        pixels = np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, quality=90)
        box = [width // 4, height // 8, 3 * width // 4, 7 * height // 8]
        entries.append({"file": name, "persons": [{"box": box, "score": 1.0}], "faces": []})
    (folder / "detections.json").write_text(json.dumps({"images": entries}))
    return images


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.jpg")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, nargs=2, default=[120, 160], metavar=("H", "W"))
    parser.add_argument("--preset", default="baseline.mask-noise")
    args = parser.parse_args()
    sganon = [sys.executable, "-m", "sganon.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = make_folder(folder, args.images, tuple(args.size))
        runs = {
            "local": ["--engine", "local"],
            "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
            "ray, 2 workers": ["--engine", "ray", "--workers", "2"],
        }
        digests = {}
        print(f"{args.images} images of {args.size[1]}x{args.size[0]}, preset {args.preset}, detections given")
        print(f"{'engine':<16} {'seconds':>8} {'images/s':>9}")
        for label, flags in runs.items():
            out = folder / label.replace(" ", "").replace(",", "-")
            command = [*sganon, "anonymize", str(images), "-o", str(out), "--detections", str(folder / "detections.json"),
                       "--preset", args.preset, "--seed", "1", "--quiet", *flags]
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            digests[label] = tree_digest(out)
            print(f"{label:<16} {seconds:8.1f} {args.images / seconds:9.1f}", flush=True)
        same = len(set(digests.values())) == 1
        print("same bytes from every engine:", "yes" if same else "NO")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
