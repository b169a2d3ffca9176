"""sganon core: interfaces, data structures, registries, plugin manager, presets.

Only the errors and the version load eagerly; the names below that need torch or mmengine
(interfaces, registries, structures) load on first use, so ``sganon --version`` and the
command line's start stay fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

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
from .third_party import confine_third_party

# Before torch, mmengine, MediaPipe or onnxruntime load: no telemetry, caches in sganon's (third_party.py).
confine_third_party()

#: Names loaded on first use, by the module that defines them.
LAZY = {
    **dict.fromkeys(["Component", "Detector", "Discriminator", "Generator", "Loss", "SurfaceEmbedder"], "interfaces"),
    **dict.fromkeys(["DATASETS", "HOOKS", "MODELS"], "registry"),
    **dict.fromkeys(["Box", "Crop", "CropBatch", "Detection", "SurfaceMap"], "structures"),
}


def __getattr__(name: str) -> Any:
    if name in LAZY:
        return getattr(import_module(f"{__name__}.{LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
