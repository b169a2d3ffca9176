"""pluggy hook specifications: what a plugin contributes that is not a class.

Classes (detectors, generators, ...) register themselves in
:data:`sganon.core.registry.MODELS`; these hooks cover the rest. A plugin module
implements any of them with ``@sganon.core.hookimpl``.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "sganon"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sganon_add_commands(cli: Any) -> None:
    """Add click commands or groups to the ``sganon`` command line (``cli`` is the root group)."""


@hookspec
def sganon_presets() -> list[dict[str, Any]]:
    """Return presets in the same form as the entries of registry.yaml, each with a ``name``."""


@hookspec
def sganon_weight_converters() -> dict[str, Callable[..., Any]]:
    """Return ``{weights format: converter}`` for foreign checkpoint formats.

    A converter is called as ``converter(path, preset)`` and returns
    ``(state_dict, config)``: a flat ``{name: tensor}`` dict and the component's resolved
    constructor arguments, saved together as a sganon safetensors checkpoint.
    """


@hookspec
def sganon_reference_checkers() -> list[Any]:
    """Return reference-vector checkers for ``sganon check-reference``.

    A checker has ``accepts(vector: dict) -> bool`` and ``check(vector: dict) -> list[dict]``;
    each report row is ``{"name", "kind" ("output"|"loss"|"gradient"|...), "error", "tolerance", "ok"}``.
    """
