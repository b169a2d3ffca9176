"""Benchmark of DensePose-CSE: detection + surface embedding time per 720p photo.

The model is the full-size R_101_FPN_DL (or R_50_FPN) with random weights unless
``--weights`` names a model-zoo ``.pkl``: the network's cost does not depend on the
weights, but the number of persons does, so the benchmark fixes it. Per photo it times

* ``detect``: the whole detector path (resize, backbone + FPN, RPN, box head, NMS, DensePose
  decoder/head/predictor on the detections), capped at ``--persons`` detections;
* ``embed``: the surface embedder on ``--persons`` person boxes of about 180x450 pixels
  (a standing adult in a 720p photo): backbone + FPN again, the DensePose branch, the
  resize to each box and the closest-vertex search over the 27554 SMPL vertices;
* ``vertices``: the closest-vertex search alone, part of ``embed``.

Usage::

    python benchmarks/bench_cse.py                    # CPU, all threads torch uses
    python benchmarks/bench_cse.py --device cuda      # GPU (TF32 off, as for the reference check)

Prints one line per stage (mean and min over ``--repeats`` runs after one warm-up);
``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from sganon.core import Box, Detection
from sganon.plugins.cse import CSEDetector, CSEEmbedder
from sganon.plugins.cse.surface import closest_vertices_in_box, resize_to_box, segmentation_box_mask


def photo(height: int = 720, width: int = 1280, seed: int = 0) -> np.ndarray:
    """A smooth random RGB photo (low-frequency colour fields plus fine noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    from PIL import Image

    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)).astype(np.int16)
    image = image + rng.integers(-12, 13, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def person_boxes(persons: int, height: int = 720, width: int = 1280) -> list[Detection]:
    """``persons`` standing-adult boxes of 180x450 pixels spread across the photo."""
    step = (width - 180) // max(persons, 1)
    return [Detection(Box(20 + i * step, 200, 200 + i * step, 650), 0.9) for i in range(persons)]


def timed(device: torch.device, run) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="R101_FPN_DL", choices=["R101_FPN_DL", "R50_FPN"])
    parser.add_argument("--weights", default=None, help="a model-zoo .pkl (default: random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--persons", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    overrides = ["TEST.DETECTIONS_PER_IMAGE", str(args.persons), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    detector = CSEDetector(args.variant, overrides, score_threshold=0.0, weights=args.weights, device=args.device)
    embedder = CSEEmbedder(args.variant, weights=args.weights, device=args.device)
    image = photo()
    detections = person_boxes(args.persons)

    found: list[int] = []
    masks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def detect() -> None:
        found.append(len(detector.detect(image)))

    def embed() -> None:
        embedder.embed(image, detections)

    def vertex_search() -> None:
        for e, m in masks:
            closest_vertices_in_box(e, m, table)

    with torch.no_grad():
        out = embedder.densepose_from_boxes([image], [torch.tensor([list(d.box) for d in detections], dtype=torch.float64)],
                                            with_vertices=False)
        table = embedder.mesh_vertex_embeddings
        for d, e, s in zip(detections, out["embedding"], out["coarse_segm"]):
            resized, _, _ = resize_to_box(e, s, d.box.height, d.box.width)
            masks.append((resized, segmentation_box_mask(s, d.box.height, d.box.width)))
    pixels = sum(int(m.sum()) for _, m in masks)

    figures = {}
    for stage, run in (("detect", detect), ("embed", embed), ("vertices", vertex_search)):
        timed(device, run)  # warm-up
        times = [timed(device, run) for _ in range(args.repeats)]
        figures[stage] = {"mean_s": statistics.mean(times), "min_s": min(times)}
    total = figures["detect"]["mean_s"] + figures["embed"]["mean_s"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DensePose-CSE {args.variant}, 1280x720 photo, {args.persons} persons, {name}, torch {torch.__version__}")
    print(f"  detections returned: {found[-1]}; person pixels searched for vertices: {pixels}")
    for stage, values in figures.items():
        print(f"  {stage:9s} mean {values['mean_s']:.3f} s   min {values['min_s']:.3f} s")
    print(f"  detect + embed per photo: {total:.3f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"variant": args.variant, "device": name, "persons": args.persons, "pixels": pixels,
                       "figures": figures, "per_photo_s": total}, handle, indent=2)


if __name__ == "__main__":
    main()
