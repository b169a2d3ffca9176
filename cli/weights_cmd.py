"""``sganon weights``: import, download and list the weights of presets."""

from __future__ import annotations

import json

import sys

import click


@click.group("weights")
def weights_group() -> None:
    """Manage preset weights in the cache ($SGANON_HOME, default ~/.cache/sganon)."""


@weights_group.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_command(name: str, file: str) -> None:
    """Convert FILE, a local copy of preset NAME's published weights, into the cache.

    For machines without network: download the file named in registry.yaml elsewhere.
    """
    from sganon.core.weight_cache import import_weights

    path = import_weights(name, file)
    click.echo(f"imported {name} -> {path}")


@weights_group.command("pull")
@click.argument("name")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Accept a download whose publisher gives no sha256 (the hash seen is recorded and printed).",
)
def pull_command(name: str, allow_unverified: bool) -> None:
    """Download preset NAME's weights (URL in registry.yaml), check the sha256, convert them.

    For a pipeline preset every part with weights is pulled.
    """
    from tqdm import tqdm

    from sganon.core.presets import get_preset
    from sganon.core.weight_cache import list_weights, pull_weights

    preset = get_preset(name)
    names = [part for part in preset.parts.values() if get_preset(part).weights] if preset.parts else [name]
    by_file: dict[str, list[str]] = {}  # parts publishing the same file are downloaded once
    for part in names:
        by_file.setdefault(get_preset(part).weights.url, []).append(part)
    for first, *others in by_file.values():
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=first, leave=True, file=sys.stderr) as bar:
            pull_weights(first, allow_unverified=allow_unverified, progressbar=bar, also=others)
        rows = {row["name"]: row for row in list_weights()}
        for part in (first, *others):
            row = rows.get(part, {})
            verified = "verified" if row.get("verified") else "NOT verified (publisher gives no sha256)"
            click.echo(f"installed {part} -> {row.get('path')}\nsha256 {row.get('sha256')} ({verified})")


@weights_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_command(as_json: bool) -> None:
    """Every preset with weights and whether they are installed."""
    from sganon.core.weight_cache import list_weights, weights_dir

    rows = list_weights()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"weights cache: {weights_dir()}")
    for row in rows:
        if row["installed"]:
            size = f"{row['size'] / 2**20:.1f} MiB"
            check = "sha256 verified" if row["verified"] else "sha256 not verified"
            state = f"installed ({size}, {check})"
        else:
            state = "not installed"
        click.echo(f"  {row['name']:28s} {row['kind']:9s} {row['format']:16s} {state}")


COMMANDS = [weights_group]
