"""``sganon check-reference``: reproduce a published reference test vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sganon.core.errors import InputError, PluginError


def load_vector(path: str) -> Any:
    """A test vector: a ``torch.save``'d dict of tensors and builtins (read tensors-only)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickled classes, not a torch file
        raise InputError(f"cannot read {path} as a test vector (torch.load weights_only): {error}") from error


def find_checker(vector: Any) -> Any:
    from sganon.core.plugins import hooks

    checkers = [checker for result in hooks().sganon_reference_checkers() for checker in (result or [])]
    for checker in checkers:
        if checker.accepts(vector):
            return checker
    names = ", ".join(getattr(c, "name", type(c).__name__) for c in checkers) or "none"
    raise PluginError(f"no installed checker accepts this vector (checkers: {names})")


def format_table(rows: list[dict[str, Any]]) -> str:
    width = max([len(r["name"]) for r in rows] + [4])
    lines = [f"{'item':{width}s}  {'kind':9s}  {'worst error':>11s}  {'tolerance':>9s}  result"]
    for r in rows:
        result = "ok" if r["ok"] else "FAIL"
        detail = f"  {r['detail']}" if r.get("detail") else ""
        lines.append(f"{r['name']:{width}s}  {r['kind']:9s}  {r['error']:11.3e}  {r['tolerance']:9.1e}  {result}{detail}")
    return "\n".join(lines)


@click.command("check-reference")
@click.argument("vector_path", metavar="VECTOR.pt", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of a table.")
def check_reference(vector_path: str, as_json: bool) -> None:
    """Run this installation on a reference test vector and compare every output.

    Prints the worst error of each output, loss and gradient; exits 1 when any is beyond
    its tolerance.
    """
    vector = load_vector(vector_path)
    checker = find_checker(vector)
    rows = checker.check(vector)
    ok = bool(rows) and all(r["ok"] for r in rows)
    name = getattr(checker, "name", type(checker).__name__)
    if as_json:
        report = {"vector": str(Path(vector_path)), "checker": name, "ok": ok, "rows": rows}
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{Path(vector_path).name}: checked by {name}")
        click.echo(format_table(rows))
        failed = sum(not r["ok"] for r in rows)
        click.echo(f"{'PASS' if ok else 'FAIL'}: {len(rows) - failed}/{len(rows)} within tolerance")
    if not ok:
        raise SystemExit(1)


COMMANDS = [check_reference]
