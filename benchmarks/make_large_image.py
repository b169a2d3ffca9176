"""Write a large JPEG (default 12000x8000 = 96 MP) tiled from a real photo, for memory checks.

Usage::

    python benchmarks/make_large_image.py PHOTO OUT.jpg [--width 12000 --height 8000]

then ``/usr/bin/time -v sganon anonymize OUT.jpg -o out/`` ("Maximum resident set size").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=8000)
    args = parser.parse_args()
    tile = np.asarray(Image.open(args.photo).convert("RGB"))
    rows, columns = -(-args.height // tile.shape[0]), -(-args.width // tile.shape[1])
    tiled = np.tile(tile, (rows, columns, 1))[: args.height, : args.width]
    Image.fromarray(tiled).save(args.out, quality=90)


if __name__ == "__main__":
    main()
