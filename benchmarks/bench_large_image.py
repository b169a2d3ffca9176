"""Peak memory of ``sganon anonymize`` on a 96-megapixel street-like photo with several people.

The photo is made from real photos (nothing large is committed): COCO 1000 (a group of
twelve people) upscaled to 12000x8000 as the background, erling.jpg (a person,
1920x1080) upscaled 3x and scikit-image's astronaut upscaled 6x pasted over it, so the
people are large at full resolution (what costs memory: crops, masks and paste-back
scale with the persons' sizes, not only with the image's). Then the command line runs on
it in a child process and its peak resident set size (``getrusage`` of the children, the
"Maximum resident set size" of ``/usr/bin/time -v``) is printed::

    .venv/bin/python benchmarks/bench_large_image.py                 # make + measure
    .venv/bin/python benchmarks/bench_large_image.py --image big.jpg --keep -- --no-verify

Arguments after ``--`` go to ``sganon anonymize``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def make_street_photo(path: Path, width: int = 12000, height: int = 8000) -> Path:
    """Write the composite JPEG (module docstring) to ``path``."""
    from skimage import data

    Image.MAX_IMAGE_PIXELS = None
    group = Image.open(SHARED / "coco_val2017_000000001000.jpg").convert("RGB")
    canvas = group.resize((width, height), Image.Resampling.BICUBIC)
    player = Image.open(SHARED / "erling.jpg").convert("RGB")
    player = player.resize((player.width * 3, player.height * 3), Image.Resampling.BICUBIC)
    canvas.paste(player, (width - player.width, height - player.height))
    astronaut = Image.fromarray(data.astronaut()).resize((3072, 3072), Image.Resampling.BICUBIC)
    canvas.paste(astronaut, (0, height - astronaut.height))
    canvas.save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=None, help="Use (or make, if missing) this photo.")
    parser.add_argument("--keep", action="store_true", help="Keep the output folder (printed).")
    parser.add_argument("extra", nargs="*", help="Arguments for sganon anonymize (after --).")
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None  # the photo is large on purpose
    work = Path(tempfile.mkdtemp(prefix="sganon-large-"))
    image = args.image or work / "street.jpg"
    if not image.exists():
        make_street_photo(image)
    with Image.open(image) as opened:
        size = opened.size
    output = work / "out"
    command = [sys.executable, "-m", "sganon.cli.main", "anonymize", str(image), "-o", str(output), "--quiet",
               "--export-detections", str(work / "detections.json"), *args.extra]
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(f"image {image} {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP)")
    print(f"exit code {finished.returncode}, {seconds:.0f} s, peak RSS {peak_kib * 1024 / 1e9:.2f} GB")
    if finished.returncode == 0:
        import json

        entry = json.loads((work / "detections.json").read_text())["images"][0]
        print(f"persons {len(entry['persons'])}, faces {len(entry['faces'])}")
    print(f"output in {output}" if args.keep else "")
    if not args.keep:
        import shutil

        shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    main()
