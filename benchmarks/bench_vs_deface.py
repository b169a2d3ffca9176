"""Whole-process wall time of ``sganon anonymize DIR -o OUT`` against ``deface DIR`` on the same
folder of 720p photos of 1 to 20 people, the two commands run alternately; medians and ratio.

Photos (written to ``--folder``): 1280x720 composites of 1, 3 and 5 astronauts
(benchmarks/bench_pipeline.py), grids of 10 and 20 smaller astronauts (5 per row), and, when
``../shared/data`` has them, the COCO crowd (12 people) and erling.jpg scaled to 720 rows.

Usage::

    python benchmarks/bench_vs_deface.py --repeats 3 [--sganon .venv/bin/sganon] [--deface .venv/bin/deface]

``--sganon-before`` times a second sganon (e.g. an older checkout's venv) in the same rotation.
``sganon anonymize`` runs with its defaults (offline detectors, verification pass on); deface
with its defaults (CenterFace, blur), on a fresh copy of the folder each time (it writes its
outputs beside the inputs). The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def grid(people: int) -> np.ndarray:
    """A 1280x720 picture with ``people`` astronauts in rows of at most 5, as large as fit."""
    from skimage import data

    per_row = min(people, 5)
    rows = -(-people // per_row)
    side = min(1280 // per_row, 720 // rows) - 10
    person = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    for i in range(people):
        row, column = divmod(i, per_row)
        x, y = 5 + column * (1280 // per_row), 5 + row * (720 // rows)
        canvas[y : y + side, x : x + side] = person
    return canvas


def write_photos(folder: Path) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_pipeline import composite

    folder.mkdir(parents=True, exist_ok=True)
    photos = {f"astronauts-{n}": composite(n) for n in (1, 3, 5)}
    photos.update({f"grid-{n}": grid(n) for n in (10, 20)})
    for name in ("coco_val2017_000000001000.jpg", "erling.jpg"):
        if (SHARED / name).exists():
            image = Image.open(SHARED / name).convert("RGB")
            width = round(image.width * 720 / image.height)
            photos[name.split(".")[0]] = np.asarray(image.resize((width, 720), Image.Resampling.BILINEAR))
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=92)
    return sorted(photos)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GiB) of ``command`` run to its end."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the photos (default: a temporary folder)")
    parser.add_argument("--sganon", default=str(Path(sys.executable).parent / "sganon"))
    parser.add_argument("--deface", default=str(Path(sys.executable).parent / "deface"))
    parser.add_argument("--sganon-before", default=None, help="another sganon executable to time as well (e.g. an older checkout's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-deface-"))
    photos = args.folder or work / "photos"
    names = write_photos(photos)
    print(f"{len(names)} photos in {photos}: {', '.join(names)}", flush=True)
    tools = {"sganon": args.sganon, "deface": args.deface}
    if args.sganon_before:
        tools["sganon-before"] = args.sganon_before
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name, tool in tools.items():
            if name == "deface":
                copy = work / f"deface-{repeat}"  # deface writes beside its inputs
                shutil.copytree(photos, copy)
                runs[name].append(timed([tool, str(copy)]))
            else:
                runs[name].append(timed([tool, "anonymize", str(photos), "-o", str(work / f"{name}-{repeat}")]))
        print(f"run {repeat + 1}: " + ", ".join(f"{name} {runs[name][-1][0]:.1f} s" for name in tools), flush=True)
    load_after = os.getloadavg()
    wall = {name: statistics.median(w for w, _ in found) for name, found in runs.items()}
    memory = {name: max(m for _, m in found) for name, found in runs.items()}
    for name in tools:
        print(f"{name}: median {wall[name]:.1f} s wall, peak memory {memory[name]:.2f} GiB")
    print(
        f"ratio sganon / deface {wall['sganon'] / wall['deface']:.2f}x (median of {args.repeats} alternating runs; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, {os.cpu_count()} CPUs)"
    )
    if "sganon-before" in wall:
        print(f"ratio sganon-before / deface {wall['sganon-before'] / wall['deface']:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
