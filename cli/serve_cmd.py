"""``sganon serve``: a local web page to anonymize photos and videos and inspect the result."""

from __future__ import annotations

import ipaddress

import click

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback: this machine only)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port.")
@click.option("--device", default="cpu", show_default=True, help="Torch device of the generator (cpu, cuda).")
@click.option(
    "--max-upload-mb", type=click.IntRange(1, 4096), default=100, show_default=True, help="Largest upload (MiB)."
)
@click.option(
    "--max-megapixels",
    type=click.FloatRange(0.01, 1000),
    default=40.0,
    show_default=True,
    help="Largest photo or video frame (megapixels).",
)
@click.option(
    "--max-video-frames", type=click.IntRange(1, 100000), default=900, show_default=True, help="Longest video (frames)."
)
def serve(host: str, port: int, device: str, max_upload_mb: int, max_megapixels: float, max_video_frames: int) -> None:
    """Start a local web page: upload photos and short videos, compare original and
    anonymized side by side, overlay the detections, download the results.

    It runs the same pipeline as `sganon anonymize` (offline by default: the MediaPipe
    detector and a pixelation baseline unless realistic weights are imported). Uploads and
    results live in a temporary folder removed on exit. Stop with Ctrl+C.
    """
    try:
        import uvicorn

        from sganon.serve.app import create_app
    except ImportError as error:
        raise click.ClickException(
            f"`sganon serve` needs the 'serve' extra ({error.name or error} is missing): "
            "pip install -e '.[serve]' (or '.[dev]')"
        ) from error
    from sganon.serve.workspace import Limits

    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}: anyone who can reach this machine can use the page and see the uploads.",
            err=True,
        )
    limits = Limits(
        max_upload_bytes=max_upload_mb * 2**20,
        max_pixels=int(max_megapixels * 1e6),
        max_video_frames=max_video_frames,
    )
    # On loopback only this machine's names are accepted as Host (no DNS rebinding).
    allowed = ["127.0.0.1", "localhost", "::1", "[::1]", host] if is_loopback(host) else None
    app = create_app(limits=limits, device=device, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"sganon serve: open http://{shown}:{port}/ (Ctrl+C to stop)", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    finally:
        app.state.workspace.close()  # also when the server never started (port taken)


COMMANDS = [serve]
