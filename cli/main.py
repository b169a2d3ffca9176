"""Root of the ``sganon`` command line.

Sub-commands live in sibling modules, each exposing ``COMMANDS`` (a list of click
commands/groups) and listed in :data:`COMMAND_MODULES`; plugins add more through the
``sganon_add_commands`` hook.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from sganon.core import SganonError, __version__
from sganon.core.plugins import BLOCK_ENV

#: Modules of this package that contribute commands, in help order.
COMMAND_MODULES = [
    "sganon.cli.anonymize_cmd",
    "sganon.cli.plugins_cmd",
    "sganon.cli.build_cmd",
    "sganon.cli.train_cmd",
    "sganon.cli.data_cmd",
    "sganon.cli.weights_cmd",
    "sganon.cli.check_reference_cmd",
    "sganon.cli.serve_cmd",
    "sganon.cli.audit_cmd",
]


class SganonGroup(click.Group):
    """Turns sganon's typed errors into one clear line and exit code 2, interruptions into
    exit code 128 + the signal's number (130: SIGINT, 143: SIGTERM); plugins add commands.

    Plugins (and with them torch) load only when a command that is not built in is asked
    for, or when the command list is shown, so ``sganon --version`` and ``sganon anonymize
    --help`` start fast.
    """

    plugins_loaded = False

    def load_plugin_commands(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            add_plugin_commands()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self.load_plugin_commands()
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context):
        from sganon.core.interrupt import signals_interrupt

        try:
            with signals_interrupt():  # from the start: also while models load
                return super().invoke(ctx)
        except SganonError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as error:  # SIGINT, SIGTERM
            from sganon.core.interrupt import as_interruption

            interruption = as_interruption(error)
            click.echo(f"Aborted: {interruption}", err=True)
            ctx.exit(interruption.exit_code)


def block_plugins(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """``--plugin no:NAME`` blocks a plugin; applied before any plugin loads."""
    names = []
    for value in values:
        if not value.startswith("no:") or len(value) <= 3:
            raise click.BadParameter(f"expected no:NAME, got {value!r}", ctx=ctx, param=param)
        names.append(value[3:])
    if names:
        current = [n for n in os.environ.get(BLOCK_ENV, "").split(",") if n]
        os.environ[BLOCK_ENV] = ",".join(current + names)


@click.group(cls=SganonGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="sganon")
@click.option(
    "--plugin",
    "blocked",
    multiple=True,
    metavar="no:NAME",
    callback=block_plugins,
    expose_value=False,
    is_eager=True,
    help="Do not load the plugin NAME (repeatable).",
)
def cli() -> None:
    """sganon: replace every person in images and videos by a newly generated one.

    Realistic anonymization with Surface-Guided GANs (V-SAM, WACV 2023), plus classical
    baselines; detectors, surface embedders, generators and losses are plugins.
    """


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(_module).COMMANDS:
        cli.add_command(_command)


def add_plugin_commands() -> None:
    """Let plugins add commands (loads the plugins of other distributions: sganon's own add
    none; a broken plugin is skipped, not fatal)."""
    from sganon.core.plugins import command_hooks

    command_hooks().sganon_add_commands(cli=cli)


def return_freed_memory() -> None:
    """Have glibc's malloc give every allocation of 1 MB or more its own mapping, returned to the
    system when freed. By default that threshold grows up to 32 MB as large blocks are freed, and
    the freed image-sized buffers of a large photo then stay resident: measured on a 96 MP photo,
    0.2-0.4 GB less at the peak (docs/anonymize.md). Elsewhere than glibc: nothing. Once, in the
    main thread, before any worker starts."""
    import ctypes

    m_mmap_threshold = -3  # <malloc.h>
    try:
        ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    return_freed_memory()
    args = sys.argv[1:] if argv is None else argv
    # Plugins load lazily; blocking must be known first, so parse --plugin before loading.
    for i, arg in enumerate(args):
        if arg == "--plugin" and i + 1 < len(args) and args[i + 1].startswith("no:"):
            os.environ[BLOCK_ENV] = ",".join(filter(None, [os.environ.get(BLOCK_ENV, ""), args[i + 1][3:]]))
    cli.main(args=args, prog_name="sganon")


if __name__ == "__main__":
    main()
