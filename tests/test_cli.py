"""The command line: --version, --help on every command, clear errors for bad flags."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from sganon.cli.main import add_plugin_commands, cli
from sganon.core import __version__

add_plugin_commands()


def all_command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths.extend(all_command_paths(command, prefix + (name,)))
        else:
            paths.append(prefix + (name,))
    return paths


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("path", all_command_paths(cli), ids=lambda p: " ".join(p) or "sganon")
def test_help_everywhere(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_unknown_flag_is_a_usage_error():
    result = CliRunner().invoke(cli, ["plugins", "list", "--no-such-flag"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_plugins_list_json_schema():
    result = CliRunner().invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert entries and all({"name", "distribution", "version", "components"} <= set(e) for e in entries)
    assert {e["name"] for e in entries} >= {"baselines"}


def test_importing_the_command_line_does_not_import_torch_or_mmengine():
    import subprocess
    import sys

    code = "import sys, sganon.cli.main; print(sorted(m for m in ('torch', 'mmengine', 'mediapipe') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_commands_without_importing_torch_and_sganon_plugins_add_none():
    """`sganon --help` loads only other distributions' plugins for their commands; that is
    complete because sganon's own plugins implement no `sganon_add_commands`."""
    import importlib
    import subprocess
    import sys
    from importlib.metadata import entry_points

    for entry_point in entry_points(group="sganon.plugins"):
        if entry_point.dist is not None and entry_point.dist.name == "sganon":
            module = importlib.import_module(entry_point.value)
            assert not hasattr(module, "sganon_add_commands"), entry_point.value
    code = (
        "import sys; from sganon.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "anonymize" in result.stdout and result.stdout.strip().endswith("NO-TORCH")
