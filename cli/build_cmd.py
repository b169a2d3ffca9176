"""``sganon build``: write a resolved mmengine config from chosen plugins."""

from __future__ import annotations

from pathlib import Path

import click

from sganon.core.capabilities import PROFILES


@click.command("build")
@click.option("--generator", required=True, help="Generator component or generator preset (see `sganon plugins list`, registry.yaml).")
@click.option("--embedder", required=True, help="Surface embedder component (e.g. cse, offline).")
@click.option("--detector", default=None, help="Detector component [default: the embedder's own, else registry.yaml's].")
@click.option("--discriminator", default=None, help="Discriminator, for trainable generators.")
@click.option("--dataset", default=None, help="Training dataset (DATASETS registry), for trainable generators.")
@click.option("--profile", type=click.Choice(PROFILES), default="paper", show_default=True,
              help="paper: the paper's sizes and hyper-parameters; tiny: CPU-sized for smoke tests.")
@click.option("--cfg-options", multiple=True, metavar="KEY=VALUE",
              help="Override config keys (dotted), repeatable; values are Python literals or strings.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the config here (.py). Without it, the config is printed.")
def build(generator: str, embedder: str, detector: str | None, discriminator: str | None, dataset: str | None,
          profile: str, cfg_options: tuple[str, ...], output: Path | None) -> None:
    """Assemble a complete mmengine config (inference and, if trainable, training).

    Checks that the parts fit (surface channels, vertex ids, the embedder the weights
    expect) and names what is available when a name is unknown.
    """
    from sganon.core.build import build_config, write_config

    result = build_config(generator, embedder, detector, discriminator, dataset, profile, list(cfg_options))
    if output is None:
        click.echo(result.config.pretty_text)
        return
    write_config(result.config, output)
    for line in result.summary:
        click.echo(line)
    click.echo(f"wrote {output}")


COMMANDS = [build]
