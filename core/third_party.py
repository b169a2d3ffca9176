"""Third-party libraries keep to sganon's cache and send no telemetry.

A privacy tool must not leave a device identifier or traces of its use outside its output
and its own cache. Some libraries sganon loads would, on import:

* onnxruntime writes a device id and a telemetry database under
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime`` unless ``ORT_DISABLE_TELEMETRY`` is set;
* matplotlib (imported by some plugins) writes its font cache to
  ``~/.cache/matplotlib`` and a folder ``~/.config/matplotlib`` (``MPLCONFIGDIR`` moves both);
* YAPF (imported by mmengine's config module) writes grammar pickles under
  ``$XDG_CACHE_HOME/YAPF`` (``~/.cache/YAPF``).

:func:`confine_third_party` sets these variables once, when ``sganon.core`` is imported,
before any of those libraries loads (they read them on import). Caches go to
``<SGANON_HOME>/third-party``; variables the user set are kept, except the telemetry switch.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SGANON_HOME"
#: The folder under the sganon cache where third-party libraries keep their caches.
THIRD_PARTY = "third-party"


def sganon_cache() -> Path:
    """The sganon cache: ``$SGANON_HOME`` or ``~/.cache/sganon``."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "sganon"


def confine_third_party() -> None:
    """Turn off onnxruntime's telemetry and point third-party caches into the sganon cache
    (module docstring). Idempotent; call before the libraries are imported."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    folder = sganon_cache() / THIRD_PARTY
    os.environ.setdefault("MPLCONFIGDIR", str(folder / "matplotlib"))
    os.environ.setdefault("XDG_CACHE_HOME", str(folder))
