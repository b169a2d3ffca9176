"""``sganon plugins``: what plugins were found and what they register."""

from __future__ import annotations

import json

import click


@click.group("plugins")
def plugins_group() -> None:
    """Inspect installed plugins (entry-point group `sganon.plugins`)."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of plugin objects.")
def list_plugins(as_json: bool) -> None:
    """One entry per plugin: name, distribution, version, components by kind.

    Plugins that failed to load are listed with their error (and do not stop the others).
    """
    from sganon.core.components import describe_plugins

    infos = describe_plugins()
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    for info in infos:
        status = "" if info.loaded else f"  [not loaded: {(info.error or '').splitlines()[0]}]"
        click.echo(f"{info.name}  ({info.distribution} {info.version}, {info.module}){status}")
        for kind, names in sorted(info.components.items()):
            click.echo(f"    {kind}: {', '.join(names)}")


COMMANDS = [plugins_group]
