"""Record TensorFlow.js's own outputs of the bundled NanoDet as test vectors for the torch engine.

sganon runs ``plugins/offline/models/nanodet.json`` with its own reader
(``plugins/offline/tfjs.py``). This script runs the same file with TensorFlow.js in node on the
letterboxed input of each case of ``tests/vector_cases.py`` and writes
``tests/vectors/nanodet.npz``, which ``tests/test_tfjs.py`` compares the torch engine against
(so the tests need neither node nor TensorFlow.js). To re-record::

    npm install --prefix /tmp/tfjs @tensorflow/tfjs@4      # pure JavaScript, from npm
    NODE_PATH=/tmp/tfjs/node_modules python benchmarks/record_tfjs_vectors.py --out tests/vectors/nanodet.npz

Stored per case (kept small): the probabilities of classes ``CLASSES`` on every cell
(``<case>/scores``, ``[cells, 3]``, stored as float16), and the raw box-side distributions of the cells where the
person probability reaches 0.1 (``<case>/cells``, ``<case>/distances``, ``[n, 44]``).
Recorded with @tensorflow/tfjs 4.22.0 (cpu backend) and node 20.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from vector_cases import CASES, case_image  # noqa: E402

from sganon.plugins.offline import nanodet  # noqa: E402

#: COCO classes recorded: person, car, chair.
CLASSES = (0, 2, 56)


def tfjs_outputs(model: Path, pixels: np.ndarray, folder: Path) -> list[np.ndarray]:
    """TensorFlow.js's outputs of ``model`` on ``pixels`` (float32 ``[1, 3, 416, 416]``)."""
    pixels.astype(np.float32).tofile(folder / "input.bin")
    shape = ",".join(str(size) for size in pixels.shape)
    runner = Path(__file__).with_name("tfjs_run.js")
    printed = subprocess.run(
        ["node", str(runner), str(model), str(folder / "input.bin"), shape, str(folder / "out")],
        check=True, capture_output=True, text=True, env=dict(os.environ),
    ).stdout
    outputs = []
    for k, line in enumerate(printed.strip().splitlines()):
        dims = [int(v) for v in line.split(" ", 1)[1].strip("[]").split(",")]
        outputs.append(np.fromfile(folder / f"out{k}.bin", np.float32).reshape(dims))
    return outputs


def record(name: str, image: np.ndarray, folder: Path, finder: nanodet.NanoDetPersons) -> dict[str, np.ndarray]:
    pixels, _ = finder.letterbox(image)
    outputs = tfjs_outputs(nanodet.MODEL, pixels[None].numpy(), folder)
    scores, distances = (part[0].numpy() for part in nanodet.heads([torch.from_numpy(o) for o in outputs]))
    cells = np.flatnonzero(scores[:, nanodet.PERSON] >= 0.1)
    return {
        f"{name}/scores": scores[:, list(CLASSES)].astype(np.float16),
        f"{name}/cells": cells.astype(np.int32),
        f"{name}/distances": distances[cells].astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "vectors" / "nanodet.npz")
    args = parser.parse_args()
    finder = nanodet.NanoDetPersons()
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            image = case_image(name)
            if image is None:
                sys.exit(f"missing image of case {name} (../shared beside the checkout?)")
            vectors.update(record(name, image, Path(folder), finder))
            print(name, "person cells:", len(vectors[f"{name}/cells"]), flush=True)
    np.savez_compressed(args.out, **vectors)
    print("wrote", args.out, args.out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
