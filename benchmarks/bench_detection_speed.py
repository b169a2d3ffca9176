"""Seconds per 720p photo of the default offline pipeline, with the detectors before issue 11
(git revision 9b7c375 of plugins/offline) and now, run alternately in one process so both
see the same machine load.

Usage::

    mkdir -p /tmp/oldoffline && touch /tmp/oldoffline/__init__.py
    git show 9b7c375:plugins/offline/mediapipe_models.py > /tmp/oldoffline/mediapipe_models.py
    git show 9b7c375:plugins/offline/detectors.py | sed '/@MODELS.register_module()/d' > /tmp/oldoffline/detectors.py
    python benchmarks/bench_detection_speed.py --old /tmp

Images: the 1280x720 composites of benchmarks/bench_pipeline.py (1 to 5 astronauts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="folder holding the package oldoffline/")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(args.old))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch

    torch.set_num_threads(2)
    import dataclasses

    import oldoffline.detectors as old
    from bench_pipeline import STAGES, composite
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import PipelineOptions, assemble

    parts = assemble()  # the offline default: detectors `offline` + `offline-face`, baseline generator
    before = dataclasses.replace(parts, detector=old.OfflinePersonDetector(), face_detector=old.OfflineFaceDetector())
    pipelines = {  # before issue 11 there was no verification pass
        "before": Anonymizer(before, PipelineOptions(verify=False)),
        "after": Anonymizer(parts, PipelineOptions(verify=False)),
        "after+verify": Anonymizer(parts, PipelineOptions(verify=True)),
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
