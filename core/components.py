"""Look up registered components by kind and short name, and build them.

>>> from sganon.core.components import available
>>> all(isinstance(name, str) for name in available("generator"))
True
"""

from __future__ import annotations

from typing import Any

from .errors import ComponentNotFoundError, PluginError
from .interfaces import INTERFACES, Component, kind_of
from .plugins import PluginInfo, load_plugins
from .registry import DATASETS, HOOKS, MODELS


def registered(kind: str) -> dict[str, type[Component]]:
    """``{short name: class}`` of every loaded component of ``kind`` (e.g. ``"generator"``).

    Raises:
        PluginError: two classes of the same kind claim the same short name.
    """
    if kind not in INTERFACES:
        raise PluginError(f"unknown component kind {kind!r}; kinds are {', '.join(INTERFACES)}")
    load_plugins()
    found: dict[str, type[Component]] = {}
    for key, cls in sorted(MODELS.module_dict.items()):
        if kind_of(cls) != kind:
            continue
        name = getattr(cls, "name", "") or key
        if name in found and found[name] is not cls:
            raise PluginError(
                f"two {kind}s are named {name!r}: {found[name].__module__}.{found[name].__name__} and "
                f"{cls.__module__}.{cls.__name__}; rename one (class attribute `name`)"
            )
        found[name] = cls
    return found


def available(kind: str) -> list[str]:
    """Sorted short names of the loaded components of ``kind``."""
    return sorted(registered(kind))


def component_class(kind: str, name: str) -> type[Component]:
    """The class of the ``kind`` component called ``name`` (short name or registry key)."""
    classes = registered(kind)
    if name in classes:
        return classes[name]
    for cls in classes.values():
        if cls.__name__ == name:
            return cls
    names = ", ".join(sorted(classes)) or "none (is a plugin missing? see `sganon plugins list`)"
    raise ComponentNotFoundError(f"no {kind} named {name!r}; available {kind}s: {names}")


def component_config(kind: str, name: str, profile: str = "paper", **overrides: Any) -> dict[str, Any]:
    """An mmengine ``dict(type=..., **args)`` for a component with its profile defaults."""
    cls = component_class(kind, name)
    return {"type": cls.__name__, **cls.default_args(profile), **overrides}


def build_component(kind: str, name: str, profile: str = "paper", **overrides: Any) -> Any:
    """Build a component by kind and name with its profile defaults."""
    return MODELS.build(component_config(kind, name, profile, **overrides))


def describe_plugins() -> list[PluginInfo]:
    """Every plugin found (loaded or not), each with the components it registered by kind."""
    infos = load_plugins()
    for info in infos:
        if not info.loaded:
            continue
        found: dict[str, list[str]] = {}
        for registry, forced_kind in ((MODELS, None), (DATASETS, "dataset"), (HOOKS, "hook")):
            for key, cls in registry.module_dict.items():
                owner = getattr(cls, "__module__", "")
                if owner == info.module or owner.startswith(info.module + "."):
                    found.setdefault(forced_kind or kind_of(cls), []).append(key)
        info.components = {kind: sorted(names) for kind, names in found.items()}
    return infos
