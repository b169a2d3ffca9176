"""``sganon audit``: check that every face of the originals is replaced in the anonymized images."""

from __future__ import annotations

import click


@click.command("audit")
@click.argument("originals", type=click.Path(exists=True))
@click.argument("anonymized", type=click.Path(exists=True))
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default="audit-report", show_default=True,
              help="Folder for report.html and summary.json.")
@click.option("--detector", "detectors", multiple=True, default=("offline-face",), show_default=True,
              help="Face detector component(s) (repeatable); see `sganon plugins list`.")
@click.option("--min-replaced", type=click.FloatRange(0.0, 1.0), default=0.7, show_default=True,
              help="Fraction of a face's head (its box grown to hair, forehead and ears) that must differ for the face to count as replaced.")
@click.option("--tolerance", type=click.IntRange(0, 255), default=None,
              help="Per-channel difference above which a pixel counts as replaced [default: 12 for JPEG/WebP "
                   "outputs (re-encoding noise), 0 for lossless ones].")
def audit(
    originals: str, anonymized: str, output: str, detectors: tuple[str, ...], min_replaced: float, tolerance: int | None
) -> None:
    """Compare ORIGINALS with ANONYMIZED (two images, or two folders whose images match by name
    without extension) and write a self-contained HTML report and a JSON summary.

    Exit status: 0 when every face found in the originals was replaced, 1 when a face is
    left (or a pair could not be compared), 2 on a usage error.
    """
    from pathlib import Path

    from sganon.core.audit import audit as run_audit
    from sganon.core.audit import write_report
    from sganon.core.components import build_component

    face_detectors = [build_component("detector", name) for name in detectors]
    report, thumbnails = run_audit(Path(originals), Path(anonymized), face_detectors, detectors, min_replaced, tolerance)
    page, summary = write_report(report, thumbnails, Path(output))
    for pair in report.pairs:
        if pair.error:
            click.echo(f"{pair.name}: error: {pair.error}", err=True)
        elif pair.faces_left:
            click.echo(f"{pair.name}: {pair.faces_left} face(s) left", err=True)
    click.echo(
        f"{len(report.pairs)} pair(s), {report.faces} face(s), {report.faces_left} left, {report.errors} error(s): "
        f"{'passed' if report.passed else 'FAILED'}; report {page}, summary {summary}"
    )
    if not report.passed:
        raise SystemExit(1)


COMMANDS = [audit]
