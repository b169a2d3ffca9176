"""Typed errors of sganon. Library code raises these; only the CLI prints them.

Every message says what went wrong and what the user can do about it.
"""

from __future__ import annotations


class SganonError(Exception):
    """Base class of every error sganon raises on purpose."""


class PluginError(SganonError):
    """A plugin could not be loaded or a component name is unknown."""


class ComponentNotFoundError(PluginError, KeyError):
    """No registered component of the requested kind has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(SganonError):
    """A configuration is invalid or its parts do not fit together."""


class PresetError(SganonError):
    """registry.yaml (or a plugin's presets) is malformed or names something unknown."""


class WeightsError(SganonError):
    """Weights are missing, corrupt, of the wrong architecture or fail their hash check."""


class InputError(SganonError):
    """An input file or array cannot be used (corrupt, truncated, wrong mode, empty, too large)."""


class AnonymizationError(SganonError):
    """A stage of the anonymization pipeline failed; nothing was written for that input."""
