"""Seconds per 720p photo of the default offline pipeline, with the detectors before issue 20
(git revision af97612 of plugins/offline: MediaPipe's own runtime, needs ``mediapipe==0.10.21``,
Python 3.11/3.12) and now (the same models in onnxruntime/torch, batched), run alternately in
one process so both see the same machine load.

Usage::

    mkdir -p /tmp/oldoffline && touch /tmp/oldoffline/__init__.py
    git show af97612:plugins/offline/mediapipe_models.py > /tmp/oldoffline/mediapipe_models.py
    git show af97612:plugins/offline/detectors.py | sed '/@MODELS.register_module()/d; s/from .centerface/from sganon.plugins.offline.centerface/' > /tmp/oldoffline/detectors.py
    pip install mediapipe==0.10.21   # the old runtime, for this comparison only
    python benchmarks/bench_detection_speed.py --old /tmp
    python benchmarks/bench_detection_speed.py --models 1     # seconds of each model alone
    python benchmarks/bench_detection_speed.py --backends     # each model in torch and in onnxruntime

Images: the 1280x720 composites of benchmarks/bench_pipeline.py (1 to 5 astronauts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def time_models(people: int, repeats: int) -> None:
    """Wall and process-CPU seconds of each model of the ensemble alone (each on one thread of
    the caller, CenterFace with its one onnxruntime thread), medians of ``repeats``."""
    from bench_pipeline import composite

    from sganon.plugins.offline.detectors import OfflinePersonDetector, face_finder, tile_scales

    finder, persons = face_finder(), OfflinePersonDetector()
    image = composite(people)
    height, width = image.shape[:2]
    scales = tile_scales(height, width, persons.min_tile_side, persons.max_tiles_per_side)
    models = {
        "CenterFace": lambda: finder.centerface_faces(image),
        "MediaPipe faces, upright tiles": lambda: finder.mediapipe(image),
        "MediaPipe faces, turned copies": lambda: finder.mediapipe(image, 1) + finder.mediapipe(image, 3),
        **{f"BlazePose proposals, {k} across": (lambda k=k: persons.body_proposals(image, k)) for k in scales},
        "NanoDet bodies (whole picture + tiles)": lambda: persons.body_boxes_batch([image]),
        "whole person detector (threads)": lambda: (finder._recent.clear(), persons.detect(image)),
    }
    for name, run in models.items():
        run()  # warm-up
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(f"{people} people, {name}: {statistics.median(walls):.2f} s wall, "
              f"{statistics.median(cpus):.2f} s CPU", flush=True)


def time_backends(repeats: int) -> None:
    """Each MediaPipe model on a batch (30 face views, 25 pose tiles, 4 Pose crops: a 720p
    image's) in torch and in onnxruntime, one thread each, medians of ``repeats``; and NanoDet
    (TF.js graph) on one picture in both, and on 8 at once in torch."""
    import torch

    from sganon.plugins.offline import blaze, nanodet
    from sganon.plugins.offline.tfjs import TfjsModule, traced_onnx
    from sganon.plugins.offline.tflite import OnnxRunner, TfliteModule

    torch.set_num_threads(1)
    nanodet_module = TfjsModule(nanodet.MODEL).eval()
    cases = [
        (blaze.FACE_MODEL, 192, 30, TfliteModule(blaze.model_path(blaze.FACE_MODEL)).eval()),
        (blaze.POSE_DETECTOR_MODEL, 224, 25, TfliteModule(blaze.model_path(blaze.POSE_DETECTOR_MODEL)).eval()),
        (blaze.POSE_LANDMARK_MODEL, 256, 4, TfliteModule(blaze.model_path(blaze.POSE_LANDMARK_MODEL)).eval()),
        (nanodet.MODEL_NAME, nanodet.SIZE, 1, nanodet_module),
        (nanodet.MODEL_NAME, nanodet.SIZE, 8, nanodet_module),
    ]
    for name, size, batch, module in cases:
        x = torch.rand(batch, 3, size, size)
        if name == nanodet.MODEL_NAME:  # traced at batch 1: onnxruntime only for one picture
            runs = [("torch", module)] + ([("onnxruntime", OnnxRunner(traced_onnx(module)))] if batch == 1 else [])
        else:
            runs = [("torch", module), ("onnxruntime", OnnxRunner(blaze.model_path(name)))]
        for label, run in runs:
            with torch.inference_mode():
                run(x)  # warm-up
                walls = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    run(x)
                    walls.append(time.perf_counter() - start)
            print(f"{name}, batch {batch}, {label}: {statistics.median(walls):.3f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, default=None, help="folder holding the package oldoffline/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", type=int, default=None, metavar="PEOPLE",
                        help="only time each model of the ensemble on the composite with PEOPLE persons")
    parser.add_argument("--backends", action="store_true", help="only time each model in torch and in onnxruntime")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.backends:
        time_backends(args.repeats)
        return
    if args.models is not None:
        time_models(args.models, args.repeats)
        return
    if args.old is None:
        parser.error("--old is needed for the comparison (or use --models N)")
    sys.path.insert(0, str(args.old))
    import torch

    torch.set_num_threads(2)
    import dataclasses

    import oldoffline.detectors as old
    from bench_pipeline import STAGES, composite
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import PipelineOptions, assemble

    parts = assemble()  # the offline default: detectors `offline` + `offline-face`, baseline generator
    before = dataclasses.replace(parts, detector=old.OfflinePersonDetector(), face_detector=old.OfflineFaceDetector())
    pipelines = {
        "before": Anonymizer(before, PipelineOptions(verify=True)),
        "after": Anonymizer(parts, PipelineOptions(verify=True)),
    }
    stages = STAGES
    for people in range(1, 6):
        image = composite(people)
        runs: dict[str, list[dict]] = {label: [] for label in pipelines}
        for anonymizer in pipelines.values():
            anonymizer.anonymize(image)  # warm-up
        for _ in range(args.repeats):
            for label, anonymizer in pipelines.items():
                start = time.perf_counter()
                result = anonymizer.anonymize(image)
                runs[label].append({"total": time.perf_counter() - start, **result.timings})
        for label, found in runs.items():
            row = {key: statistics.median(run.get(key, 0.0) for run in found) for key in ("total", *stages)}
            print(
                f"{people} people {label:6s}: total {row['total']:.2f} s | "
                + " ".join(f"{key} {row[key]:.2f}" for key in stages if row[key] >= 0.005),
                flush=True,
            )


if __name__ == "__main__":
    main()
