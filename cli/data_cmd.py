"""``sganon data``: make and check person-crop training datasets."""

from __future__ import annotations

from pathlib import Path

import click

from sganon.core.errors import ConfigError, InputError


@click.group("data")
def data() -> None:
    """Training datasets of person crops (format: docs/dataset-format.md)."""


@data.command("check")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", type=int, default=None, help="Check only the first N samples.")
def check(directory: Path, limit: int | None) -> None:
    """Validate a crop dataset: meta.json, vertex tables and every sample."""
    from sganon.core.data.check import check_dataset

    report = check_dataset(directory, limit)
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for error in report.errors:
        click.echo(f"error: {error}")
    if report.error_count > len(report.errors):
        click.echo(f"... and {report.error_count - len(report.errors)} more errors")
    if not report.ok:
        raise InputError(f"{directory}: {report.error_count} problem(s) in {report.samples} checked samples")
    click.echo(f"{directory}: {report.samples} samples OK")


@data.command("prepare")
@click.option("--coco", "annotations", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="COCO annotation file (images + person instances).")
@click.option("--images", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the images' file_name entries are relative to.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A config from `sganon build`: its detector, embedder and crop size are used.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New dataset folder.")
@click.option("--use-annotation-masks", is_flag=True,
              help="Take persons from the annotations' masks instead of running the detector.")
@click.option("--vertex-symmetry", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="int .npy [K]: the mirror vertex of each mesh vertex (lets training flip crops).")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Samples per shard.")
@click.option("--shard-format", type=click.Choice(["tar", "dir"]), default="tar", show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N images.")
def prepare(annotations: Path, images: Path, config_path: Path, output: Path, use_annotation_masks: bool,
            vertex_symmetry: Path | None, shard_size: int, shard_format: str, limit: int | None) -> None:
    """Crop every person of a COCO dataset the way the anonymizer does (SPEC §7)."""
    from sganon.core.spec import load_config
    from sganon.core.data.prepare import prepare_from_coco
    from sganon.core.registry import MODELS

    cfg = load_config(config_path)
    anonymizer = cfg.get("anonymizer")
    if not anonymizer or not anonymizer.get("resolution"):
        raise ConfigError(f"{config_path} has no anonymizer section with a crop resolution")
    embedder_cfg = anonymizer.embedder.to_dict()
    embedder_cls = MODELS.get(embedder_cfg["type"])
    if embedder_cls is None:
        raise ConfigError(f"embedder {embedder_cfg['type']!r} is not registered (is its plugin installed?)")
    channels = embedder_cls.capabilities({k: v for k, v in embedder_cfg.items() if k != "type"}).surface_channels
    embedder = MODELS.build(embedder_cfg)
    detector = None if use_annotation_masks else MODELS.build(anonymizer.detector.to_dict())
    resolution = tuple(int(v) for v in anonymizer.resolution)

    with click.progressbar(length=1, label="images") as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        summary = prepare_from_coco(
            annotations, images, output, embedder, detector, resolution, channels, use_annotation_masks,
            vertex_symmetry, shard_size, shard_format, limit, progress,
        )
    for name, error in summary.failed_images:
        click.echo(f"skipped image {name}: {error}")
    click.echo(
        f"{summary.images} images, {summary.persons} persons: {summary.written} crops written to {output}, "
        f"{summary.too_small} too small, {summary.no_surface} without surface pixels"
    )
    if summary.written == 0:
        raise InputError("no crops were written; check the annotations, the detector and the embedder")


COMMANDS = [data]
