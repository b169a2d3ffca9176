"""Benchmark of the anonymization pipeline: seconds per stage and per image, video fps.

Images: 1280x720 composites of 1 to 5 copies of scikit-image's astronaut photo (a real
person, shipped in the package) on a grey background, run through the offline detector
and the chosen generator. Video: a 720p clip of the 3-person composite drifting sideways,
anonymized through the same path as ``sganon anonymize`` (tracking, H.264 encoding).

Usage::

    python benchmarks/bench_pipeline.py                       # CPU, default (baseline) generator
    python benchmarks/bench_pipeline.py --device cuda          # generator on the GPU
    python benchmarks/bench_pipeline.py --generator vsam --random-weights --device cuda
        # the realistic pipeline sganon.fba-cse (DensePose-CSE R101-FPN-DL detector serving as
        # embedder + V-SAM config E) with untrained full-size weights (no weights needed)

Prints one table row per person count (mean of --repeats runs after one warm-up) and the
video fps; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sganon.plugins.baselines  # noqa: F401  (registered also without installed entry points)
import sganon.plugins.offline  # noqa: F401

STAGES = ("detect", "embed", "crop", "generate", "paste", "faces", "verify")


def composite(people: int, shift: int = 0) -> np.ndarray:
    """A 720p image with ``people`` astronauts side by side (each 360 pixels tall)."""
    from PIL import Image
    from skimage import data

    person = Image.fromarray(data.astronaut()).resize((360, 360), Image.Resampling.BILINEAR)
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    step = (1280 - 360) // max(people - 1, 1) if people > 1 else 0
    for i in range(people):
        x = min(1280 - 360, max(0, 460 if people == 1 else i * step) + shift)
        canvas[300:660, x : x + 360] = np.asarray(person)
    return canvas


def given_persons(people: int) -> list:
    """The persons of :func:`composite` as detections (elliptic masks), for --given-detections."""
    from sganon.core.structures import Box, Detection

    step = (1280 - 360) // max(people - 1, 1) if people > 1 else 0
    persons = []
    for i in range(people):
        x = min(1280 - 360, 460 if people == 1 else i * step)
        ys, xs = np.mgrid[0:340, 0:240]
        mask = ((ys - 170) / 170) ** 2 + ((xs - 120) / 120) ** 2 <= 1
        persons.append(Detection(Box(x + 60, 315, x + 300, 655), 0.9, mask))
    return persons


def build_anonymizer(args: argparse.Namespace):
    import torch
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import PipelineOptions, PipelineParts, assemble, assemble_spec, to_device
    from sganon.core.components import build_component
    from sganon.core.presets import get_preset
    from sganon.core.spec import OptionFlags, PartChoice, resolve_spec

    torch.set_num_threads(args.threads)
    detector = "none" if args.given_detections else None
    face_detector = "none" if args.given_detections else args.face_detector
    if not args.random_weights:
        spec = resolve_spec(
            PartChoice(args.generator, args.preset, args.embedder, detector, face_detector),
            OptionFlags(batch_size=args.batch_size, device=args.device, precision=args.precision),
        )
        return Anonymizer(assemble_spec(spec), spec.options)
    # Random full-size weights: the pipeline preset's parts, untrained (no imported checkpoints).
    pipeline = get_preset(args.preset or "sganon.fba-cse")
    parts_of = {kind: get_preset(name) for kind, name in pipeline.parts.items()}
    generator_preset = parts_of["generator"]
    if args.generator and args.generator != generator_preset.component:
        raise SystemExit(f"--random-weights runs {pipeline.name}, whose generator is {generator_preset.component}")
    baseline = assemble("pixelate", None, None, "none", face_detector, device=args.device)
    generator = build_component("generator", generator_preset.component, **generator_preset.args).eval()
    person_detector = None
    if not args.given_detections:
        detector_preset = parts_of["detector"]
        person_detector = build_component("detector", detector_preset.component, **detector_preset.args, device="cpu")
    embedder_preset = parts_of["embedder"]
    if person_detector is not None:
        embedder = person_detector.as_embedder()  # one network for both roles, as the assembly does
    else:
        embedder = build_component("embedder", embedder_preset.component, **embedder_preset.args, device="cpu")
    parts = PipelineParts(
        generator=generator,
        generator_label=f"{pipeline.name} (random weights)",
        generator_caps=type(generator).capabilities({**type(generator).default_args("paper"), **generator_preset.args}),
        region_generator=baseline.region_generator,
        detector=person_detector,
        face_detector=baseline.face_detector,
        embedder=embedder,
        embedder_caps=type(embedder).capabilities({**type(embedder).default_args("paper"), **embedder_preset.args}),
    )
    options = PipelineOptions(batch_size=args.batch_size, device=args.device, precision=args.precision, **pipeline.options)
    return Anonymizer(to_device(parts, args.device), options)


def bench_images(anonymizer, repeats: int, given: bool) -> list[dict]:
    from sganon.core.detections import Detections

    rows = []
    for people in range(1, 6):
        image = composite(people)
        detections = Detections(given_persons(people)) if given else None
        anonymizer.anonymize(image, detections)  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = anonymizer.anonymize(image, detections)
            runs.append(
                {"total": time.perf_counter() - start, **result.timings, "found": len(result.detections.persons)}
            )
        row = {"people": people, "found": runs[-1]["found"]}
        for key in ("total", *STAGES):
            row[key] = statistics.mean(run.get(key, 0.0) for run in runs)
        rows.append(row)
        print(
            f"{people} people (found {row['found']}): total {row['total']:.3f} s | "
            + " ".join(f"{k} {row[k]:.3f}" for k in STAGES),
            flush=True,
        )
    return rows


def bench_video(anonymizer, frames: int, fps: int, frame_batch: int = 1) -> dict:
    import av
    from sganon.core.jobs import Job
    from sganon.core.runners import FileAnonymizer, RunSettings

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "clip.mp4"
        with av.open(str(source), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(composite(3, shift=2 * i), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        runner = FileAnonymizer(anonymizer, Path(folder) / "out", RunSettings(frame_batch=frame_batch))
        start = time.perf_counter()
        result = runner.run([Job("video", source, "clip.mp4")])
        seconds = time.perf_counter() - start
        if result.failed:
            raise SystemExit(f"video failed: {result.failed}")
    figures = {"frames": frames, "seconds": seconds, "fps": frames / seconds}
    print(f"video 1280x720, {frames} frames, 3 people, {frame_batch} frames per pass: {seconds:.1f} s = "
          f"{figures['fps']:.2f} fps", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default=None, help="generator component (default: sganon's default choice)")
    parser.add_argument("--preset", default=None, help="generator preset")
    parser.add_argument("--embedder", default=None, help="embedder (default: the one the generator expects)")
    parser.add_argument(
        "--random-weights", action="store_true", help="run the pipeline preset (default sganon.fba-cse) untrained"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--face-detector", default=None,
                        help="face detector (default: the registry's; none: the paper's pipeline has no face path)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frame-batch", type=int, default=1, help="video: frames per detector/generator pass")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video-frames", type=int, default=30)
    parser.add_argument("--video-fps", type=int, default=30)
    parser.add_argument(
        "--given-detections",
        action="store_true",
        help="skip the detectors (fixed elliptic persons): times the other stages alone",
    )
    parser.add_argument("--skip-images", action="store_true", help="only the video (with --video-frames)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    anonymizer = build_anonymizer(args)
    label = anonymizer.parts.generator_label
    print(f"generator: {label}, device {args.device}, torch {__import__('torch').__version__}", flush=True)
    figures = {
        "generator": label,
        "device": args.device,
    }
    if not args.skip_images:
        figures["images"] = bench_images(anonymizer, args.repeats, args.given_detections)
    if args.video_frames > 0 and not args.given_detections:
        figures["video"] = bench_video(anonymizer, args.video_frames, args.video_fps, args.frame_batch)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
