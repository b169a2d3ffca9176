"""``sganon anonymize``: photos, folders, videos and COCO datasets, offline by default."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from sganon.core.images import DEFAULT_MAX_PIXELS
from sganon.core.precision import PRECISIONS


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Refuse nan and infinity (FloatRange lets nan through)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number of seconds, got {value}", ctx=ctx, param=param)
    return value


@click.command("anonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created). Outputs keep the input's relative path and file name.",
)
@click.option(
    "--ext",
    type=click.Choice(["png", "jpg"]),
    default=None,
    help="Write images in this format [default: the input's format].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A config written by `sganon build`: run exactly the parts and options it names.",
)
@click.option("--generator", default=None, help="Generator component (see `sganon plugins list`).")
@click.option(
    "--preset",
    default=None,
    help="Generator or pipeline preset from registry.yaml (see `sganon weights list` and docs/plugins.md).",
)
@click.option("--embedder", default=None, help="Surface embedder [default: the one the generator was trained with].")
@click.option(
    "--detector", default=None, help="Person detector component [default: the preset's, else registry.yaml's]."
)
@click.option(
    "--face-detector",
    default=None,
    help="Face detector component ('none' to skip faces without a body) [default: registry.yaml's].",
)
@click.option(
    "--detections",
    "detections_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Re-use detections from a file written by --export-detections instead of detecting.",
)
@click.option(
    "--export-detections",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write what was anonymized (boxes, scores, COCO RLE masks, faces) to this JSON file.",
)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of the latents (same seed, same output).")
@click.option(
    "--truncation",
    type=click.FloatRange(0, 1),
    default=None,
    help="Truncation t in [0, 1] towards the average person (realistic generators).",
)
@click.option(
    "--feather",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    help="Soft edge width (pixels) inside each replaced region.",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 256), default=8, show_default=True, help="Crops per generator call."
)
@click.option(
    "--device", default="cpu", show_default=True, help="Torch device of every model (cpu, cuda, cuda:1)."
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="Model arithmetic: fp32 (the references' results), tf32 (CUDA matmuls/convs), bf16 or fp16 autocast "
    "(faster on GPUs, outputs deviate; docs/anonymize.md).",
)
@click.option(
    "--detect-max-side",
    type=click.IntRange(64, 100000),
    default=1920,
    show_default=True,
    help="Detect on a copy of at most N x 2N/3 pixels (a 3:2 photo: this longest side; wide and tall "
    "pictures keep more of their long side, so their faces are not shrunk); anonymize at full resolution.",
)
@click.option(
    "--start",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    callback=finite,
    help="Videos: start (seconds from the first frame).",
)
@click.option(
    "--end", type=click.FloatRange(0), default=None, callback=finite, help="Videos: end (seconds from the first frame)."
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images and video frames larger than this (width x height), before decoding.",
)
@click.option(
    "--detect-every",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Videos: detect every N frames; tracks carry persons in between.",
)
@click.option(
    "--frame-batch",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Videos: frames detected together and whose crops are generated together (8-16 on a GPU).",
)
@click.option(
    "--coco-images",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="COCO inputs: the image folder [default: the annotation file's folder].",
)
@click.option("--visualize", is_flag=True, help="Also write NAME.visualization.png: detections and surface map.")
@click.option("--continue-on-error", is_flag=True, help="Go on with the other inputs when one fails.")
@click.option(
    "--resume",
    is_flag=True,
    help="Skip inputs that manifest.jsonl in the output folder lists as done, unchanged, with their outputs intact.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (refused otherwise).")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process. ray: a pool of Ray workers (the `ray` extra; docs/scale-out.md).",
)
@click.option("--address", default=None, help="Ray engine: address of a running Ray cluster [default: start one here].")
@click.option(
    "--workers", type=click.IntRange(1, 4096), default=2, show_default=True, help="Ray engine: worker processes."
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(0, 64),
    default=0.0,
    show_default=True,
    help="Ray engine: GPUs each worker reserves (use with --device cuda).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Run the face detector on each output and anonymize faces found where nothing was replaced.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def anonymize(
    ctx: click.Context,
    inputs: tuple[Path, ...],
    output: Path,
    ext: str | None,
    config_path: Path | None,
    generator: str | None,
    preset: str | None,
    embedder: str | None,
    detector: str | None,
    face_detector: str | None,
    detections_file: Path | None,
    export_detections: Path | None,
    seed: int,
    truncation: float | None,
    feather: int,
    batch_size: int,
    device: str,
    precision: str,
    detect_max_side: int,
    start: float,
    end: float | None,
    detect_every: int,
    frame_batch: int,
    max_pixels: int,
    coco_images: Path | None,
    visualize: bool,
    continue_on_error: bool,
    resume: bool,
    overwrite: bool,
    engine: str,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    verify: bool,
    quiet: bool,
) -> None:
    """Anonymize every person in INPUT... (images, folders, videos, COCO annotation JSON).

    Offline, without imported weights, persons are replaced by a baseline (pixelation);
    the output says which generator was used. Inputs that fail are named and produce no
    output; the exit code is then 1. Every input is recorded in OUTPUT/manifest.jsonl.
    """
    from sganon.core.detections import DetectionFile, write_detections
    from sganon.core.errors import ConfigError
    from sganon.core.jobs import collect_jobs
    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble_spec
    from sganon.core.engines import describe_run
    from sganon.core.spec import OptionFlags, PartChoice, resolve_spec
    from sganon.core.manifest import plan_run, settings_fingerprint
    from sganon.core.output_plan import plan_outputs
    from sganon.core.runners import FileAnonymizer, RunSettings
    from tqdm import tqdm

    if engine == "local":
        named = [flag for flag, used in (("--address", address is not None),
                 ("--workers", ctx.get_parameter_source("workers") == click.core.ParameterSource.COMMANDLINE),
                 ("--gpus-per-worker", gpus_per_worker > 0)) if used]
        if named:
            raise ConfigError(f"{', '.join(named)} only apply to --engine ray")
    else:
        from sganon.core.engines.ray_engine import import_ray

        import_ray()  # a clear error naming the extra, before any work
    if resume and overwrite:
        raise ConfigError("give either --resume or --overwrite, not both")
    if resume and export_detections is not None:
        raise ConfigError("--resume cannot re-export the detections of the inputs it skips; drop --export-detections")
    if end is not None and end <= start:
        raise ConfigError(f"--end ({end}) must be after --start ({start})")
    skipped: list[tuple[Path, str]] = []
    jobs = collect_jobs(inputs, coco_images, skipped)
    for path, reason in skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not jobs:
        raise ConfigError("no images or videos found in the inputs")
    # Every path the run writes, checked before anything is written (core/output_plan.py).
    plan_outputs(jobs, output, [*inputs, *([coco_images] if coco_images else [])], ext, visualize,
                 export_detections, detections_file, resume, overwrite)
    reuse = DetectionFile.read(detections_file) if detections_file else None
    # The options typed on the command line count as given (even at their default value): they
    # win over a config's and a preset's; the spec decides the rest.
    typed = {
        name
        for name in ("batch_size", "truncation", "seed", "feather", "detect_max_side", "device", "precision", "verify")
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    values = {"batch_size": batch_size, "truncation": truncation, "seed": seed, "feather": feather,
              "detect_max_side": detect_max_side, "device": device, "precision": precision, "verify": verify}
    spec = resolve_spec(
        PartChoice(generator, preset, embedder, detector, face_detector),
        OptionFlags(**{name: value for name, value in values.items() if name in typed}),
        config=config_path,
        detections_given=reuse is not None,
        visualize=visualize,
    )
    settings = RunSettings(
        extension=ext,
        reuse=reuse,
        export=export_detections is not None,
        visualize=visualize,
        start=start,
        end=end,
        detect_every=detect_every,
        frame_batch=frame_batch,
        max_pixels=max_pixels,
    )
    # The pipeline is built here for both engines: a wrong name fails before any work, and
    # the generator it resolves to is reported (Ray workers build the same one).
    parts = assemble_spec(spec)
    pipeline = Anonymizer(parts, spec.options)
    if spec.notice:
        click.echo(f"Note: {spec.notice}", err=True)
    fingerprint = settings_fingerprint(describe_run(spec, settings, detections_file))
    plan = plan_run(jobs, output, resume, fingerprint)
    for path in plan.removed:
        click.echo(f"removed {path}: a temporary file left by an interrupted run", err=True)
    if plan.carried:
        click.echo(f"resumed: {len(plan.carried)} input(s) already done, {len(plan.todo)} to do", err=True)
    click.echo(
        f"generator: {parts.generator_label} ({'realistic' if parts.realistic else 'baseline, not realistic'})", err=True
    )
    todo = plan.todo
    show = not quiet and (len(todo) > 1 or any(job.kind == "video" for job in todo))
    files_bar = tqdm(total=len(todo), unit="file", disable=not show or len(todo) < 2, file=sys.stderr)
    bars = []

    def frame_progress(job, total):
        bar = tqdm(desc=job.name, unit="frame", disable=not show, leave=False, file=sys.stderr)
        bars.append(bar)
        return bar.update

    def run_engine():
        if engine == "ray":
            from sganon.core.engines.ray_engine import run_ray

            return run_ray(
                spec, settings, output, plan, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                on_job=lambda job: files_bar.update(1), skipped=skipped, progress=False,
            )
        from sganon.core.engines.local import run_local

        return run_local(
            FileAnonymizer(pipeline, output, settings), plan, continue_on_error,
            on_job=lambda job: files_bar.update(1), frame_progress=frame_progress, skipped=skipped,
        )

    result = run_engine()  # SIGINT, SIGTERM: recorded as interrupted, exit 130/143 (cli/main.py)
    for bar in bars:
        bar.close()
    files_bar.close()
    for notice in result.notices:
        click.echo(f"Note: {notice}", err=True)
    if export_detections is not None:
        write_detections(export_detections, result.detections)
        click.echo(f"detections written to {export_detections}", err=True)
    click.echo(f"wrote {len(result.written)} file(s) to {output}")
    if spec.options.verify and parts.face_detector is not None and engine == "local":
        click.echo(f"verification: re-found after the first pass: {result.refound} face(s), anonymized too", err=True)
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} file(s) of the input folders (listed above)", err=True)
    if result.failed:
        for path, reason in result.failed:
            click.echo(f"FAILED {path}: {reason}", err=True)
        not_run = len(todo) - len(result.written) - len(result.failed)
        if engine == "local" and not continue_on_error and not_run > 0:
            click.echo(
                f"stopped after the first failure; {not_run} input(s) not processed (use --continue-on-error)", err=True
            )
        click.echo(f"{len(result.failed)} input(s) failed; no output was written for them", err=True)
        sys.exit(1)


COMMANDS = [anonymize]
