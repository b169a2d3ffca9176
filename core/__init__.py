"""sganon core: interfaces, data structures, registries, plugin manager, presets.

Heavy parts (pipeline, training, video) live in their own modules and are imported only
when used.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    AnonymizationError,
    ComponentNotFoundError,
    ConfigError,
    InputError,
    PluginError,
    PresetError,
    SganonError,
    WeightsError,
)
from .hookspecs import hookimpl
from .interfaces import Component, Detector, Discriminator, Generator, Loss, SurfaceEmbedder
from .registry import DATASETS, HOOKS, MODELS
from .structures import Box, Crop, CropBatch, Detection, SurfaceMap

try:
    __version__ = version("sganon")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AnonymizationError",
    "Box",
    "Component",
    "ComponentNotFoundError",
    "ConfigError",
    "Crop",
    "CropBatch",
    "DATASETS",
    "Detection",
    "Detector",
    "Discriminator",
    "Generator",
    "HOOKS",
    "InputError",
    "Loss",
    "MODELS",
    "PluginError",
    "PresetError",
    "SganonError",
    "SurfaceEmbedder",
    "SurfaceMap",
    "WeightsError",
    "__version__",
    "hookimpl",
]
