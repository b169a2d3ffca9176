"""Discover and load plugins through the ``sganon.plugins`` entry-point group.

A plugin is a module named by an entry point of any installed distribution::

    [project.entry-points."sganon.plugins"]
    myplugin = "my_package.sganon_plugin"

Loading it imports the module: its ``@MODELS.register_module()`` decorators fill the
registry, and if it defines pluggy hook implementations (see :mod:`hookspecs`) they are
registered too. sganon's own plugins load through exactly this path.

``SGANON_DISABLE_PLUGIN_AUTOLOAD=1`` stops loading plugins of other distributions (sganon's
own still load, so the tool keeps working); ``blocked`` names plugins never to load.
A plugin that fails to import is recorded with its error and does not stop the others.
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Iterable

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "sganon.plugins"
DISABLE_AUTOLOAD_ENV = "SGANON_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "SGANON_BLOCK_PLUGINS"  # comma-separated names; what `sganon --plugin no:NAME` sets
FIRST_PARTY_DISTRIBUTION = "sganon"


@dataclass
class PluginInfo:
    """One plugin as found in the entry points, loaded or not."""

    name: str
    distribution: str
    version: str
    module: str
    loaded: bool = False
    error: str | None = None
    #: What it registered, by kind (filled by :func:`sganon.core.components.describe_plugins`).
    components: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "loaded": self.loaded,
            "error": self.error,
            "components": self.components,
        }


def autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def blocked_from_env() -> set[str]:
    return {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}


class PluginManager:
    """Loads plugins once per process and keeps what it found."""

    def __init__(self) -> None:
        self.hooks = pluggy.PluginManager(hookspecs.PROJECT)
        self.hooks.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._seen: set[tuple[str, str]] = set()
        self._complete = False

    def load(self, blocked: Iterable[str] = (), other_distributions_only: bool = False) -> list[PluginInfo]:
        """Load every plugin not blocked (each once; later calls return the same list).

        Args:
            blocked: Plugin names not to load.
            other_distributions_only: Load only plugins of other distributions than sganon
                (their commands are what ``sganon --help`` needs; sganon's own add none), so
                listing commands does not import torch.
        """
        if self._complete:
            return list(self.plugins.values())
        blocked = set(blocked) | blocked_from_env()
        skip_third_party = autoload_disabled()
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            info = self._describe(entry_point)
            if other_distributions_only and info.distribution == FIRST_PARTY_DISTRIBUTION:
                continue
            if (info.name, info.distribution) in self._seen:
                continue
            self._seen.add((info.name, info.distribution))
            if info.name in self.plugins:
                info.error = (
                    f"plugin name {info.name!r} is declared twice (distributions "
                    f"{self.plugins[info.name].distribution!r} and {info.distribution!r}); only the first loads"
                )
                self.plugins[f"{info.name}@{info.distribution}"] = info
                continue
            if skip_third_party and info.distribution != FIRST_PARTY_DISTRIBUTION:
                continue  # autoload is off: other distributions' plugins are not even listed
            self.plugins[info.name] = info
            if info.name in blocked:
                info.error = "blocked (--plugin no:NAME or SGANON_BLOCK_PLUGINS)"
                continue
            self._import(info, entry_point)
        self._complete = not other_distributions_only
        return list(self.plugins.values())

    @staticmethod
    def _describe(entry_point: EntryPoint) -> PluginInfo:
        dist = entry_point.dist
        return PluginInfo(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "<unknown>",
            version=dist.version if dist is not None else "<unknown>",
            module=entry_point.value,
        )

    def _import(self, info: PluginInfo, entry_point: EntryPoint) -> None:
        try:
            module = importlib.import_module(entry_point.value)
        except Exception as error:  # a broken plugin must not take the others down
            info.error = f"{type(error).__name__}: {error}\n" + "".join(traceback.format_exc(limit=-3))
            return
        if not self.hooks.is_registered(module):
            self.hooks.register(module, name=info.name)
        info.loaded = True


_manager: PluginManager | None = None


def plugin_manager() -> PluginManager:
    """The process-wide plugin manager."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def load_plugins(blocked: Iterable[str] = ()) -> list[PluginInfo]:
    """Load all plugins (once per process) and return what was found."""
    return plugin_manager().load(blocked)


def hooks() -> Any:
    """The pluggy hook relay, after loading plugins: ``hooks().sganon_presets()``."""
    load_plugins()
    return plugin_manager().hooks.hook


def command_hooks() -> Any:
    """The hook relay with the plugins of other distributions loaded (enough for
    ``sganon_add_commands``: sganon's own plugins add no commands)."""
    plugin_manager().load(other_distributions_only=True)
    return plugin_manager().hooks.hook
