"""Named presets: registry.yaml plus the presets plugins return from ``sganon_presets``.

>>> from sganon.core.presets import get_preset
>>> get_preset(registry_defaults().baseline).kind
'generator'
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from .errors import PresetError
from .interfaces import INTERFACES

PRESET_KINDS = ("detector", "embedder", "generator")
#: A pipeline preset combines one preset of each kind above (``parts``), e.g. CSE + V-SAM.
PIPELINE = "pipeline"


@dataclass(frozen=True)
class WeightsSource:
    """Where a preset's weights come from."""

    url: str
    sha256: str | None
    format: str
    licence: str
    source: str = ""


@dataclass(frozen=True)
class Preset:
    """A named, ready-to-use configuration of one component (+ its weights)."""

    name: str
    kind: str
    component: str
    args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    expects_embedder: str | None = None
    weights: WeightsSource | None = None
    origin: str = "registry.yaml"
    extra: dict[str, Any] = field(default_factory=dict)
    #: Pipeline presets only: ``{"detector": preset, "embedder": preset, "generator": preset}``.
    parts: dict[str, str] = field(default_factory=dict)
    #: Pipeline presets only: pipeline options it sets (e.g. ``paste_order``), flags win.
    options: dict[str, Any] = field(default_factory=dict)


def registry_file() -> Path:
    """The catalogue shipped with sganon (registry.yaml at the project's top level)."""
    return Path(str(files("sganon.core").joinpath("registry.yaml")))


def parse_preset(name: str, data: Any, origin: str) -> Preset:
    """Validate one preset entry; raises :class:`PresetError` naming what is wrong."""
    where = f"preset {name!r} ({origin})"
    if not isinstance(data, dict):
        raise PresetError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {"name", "kind", "component", "args", "description", "expects_embedder", "weights", "parts", "options"}
    if data.get("kind") == PIPELINE:
        parts = data.get("parts")
        if not isinstance(parts, dict) or set(parts) != set(PRESET_KINDS):
            raise PresetError(f"{where}: a pipeline needs `parts` naming a preset for each of {', '.join(PRESET_KINDS)}")
        return Preset(
            name=name,
            kind=PIPELINE,
            component="",
            description=" ".join(str(data.get("description", "")).split()),
            origin=origin,
            parts={kind: str(parts[kind]) for kind in PRESET_KINDS},
            options=dict(data.get("options") or {}),
        )
    for key in ("kind", "component"):
        if key not in data:
            raise PresetError(f"{where} lacks the field {key!r}")
    if data["kind"] not in PRESET_KINDS or data["kind"] not in INTERFACES:
        raise PresetError(
            f"{where} has kind {data['kind']!r}; expected one of {', '.join(PRESET_KINDS + (PIPELINE,))}"
        )
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise PresetError(f"{where}: args must be a mapping")
    weights = None
    if data.get("weights") is not None:
        w = data["weights"]
        missing = [key for key in ("url", "format", "licence") if not w.get(key)]
        if missing or "sha256" not in w:
            raise PresetError(f"{where}: weights need url, sha256 (may be null), format and licence; missing {missing}")
        sha = w["sha256"]
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise PresetError(f"{where}: weights.sha256 must be 64 hex digits or null")
        weights = WeightsSource(str(w["url"]), sha, str(w["format"]), " ".join(str(w["licence"]).split()), str(w.get("source", "")))
    return Preset(
        name=name,
        kind=data["kind"],
        component=str(data["component"]),
        args=dict(args),
        description=" ".join(str(data.get("description", "")).split()),
        expects_embedder=data.get("expects_embedder"),
        weights=weights,
        origin=origin,
        extra={k: v for k, v in data.items() if k not in known},
    )


@dataclass(frozen=True)
class Defaults:
    """The ``defaults`` section of registry.yaml: what runs when the user names nothing.

    Attributes:
        detector: Person detector (component name).
        face_detector: Face detector (component name).
        realistic: Generator preset used when its weights and its embedder's are imported.
        baseline: Generator preset used otherwise.
        region_generator: Generator preset for faces without a body and persons too small.
        visualization_embedder: Embedder drawn by ``--visualize`` when the generator uses none.
        training_dataset: Training dataset of the ``paper`` build profile.
        tiny_training_dataset: Training dataset of the ``tiny`` build profile.
        training_losses: Loss component by role (``adversarial``, ``surface``, ``epsilon``, ``r1``).
    """

    detector: str
    face_detector: str
    realistic: str
    baseline: str
    region_generator: str
    visualization_embedder: str
    training_dataset: str
    tiny_training_dataset: str
    training_losses: dict[str, str]


#: Parsed catalogues by (path, modification time, size): a run looks presets up a dozen
#: times, and parsing the YAML each time cost 0.3 s of every command's start.
_DOCUMENTS: dict[tuple[str, int, int], dict[str, Any]] = {}


def read_registry_document(path: Path) -> dict[str, Any]:
    """The parsed catalogue (a fresh copy: callers may change it); re-read when the file changes."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _DOCUMENTS:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            _DOCUMENTS[key] = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)
        document = copy.deepcopy(_DOCUMENTS[key])
    except (OSError, yaml.YAMLError) as error:
        raise PresetError(f"cannot read the preset catalogue {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("presets"), dict):
        raise PresetError(f"{path} must hold a mapping `presets: {{name: preset}}`")
    return document


def load_registry_file(path: Path) -> dict[str, Preset]:
    document = read_registry_document(path)
    return {name: parse_preset(name, data, str(path.name)) for name, data in document["presets"].items()}


def registry_defaults() -> Defaults:
    """The ``defaults`` of registry.yaml; :class:`PresetError` naming a missing or extra key."""
    path = registry_file()
    section = read_registry_document(path).get("defaults")
    names = list(Defaults.__dataclass_fields__)
    if not isinstance(section, dict) or set(section) != set(names):
        raise PresetError(f"{path} needs a `defaults` mapping with exactly the keys {', '.join(names)}")
    losses = section["training_losses"]
    if not isinstance(losses, dict):
        raise PresetError(f"{path}: defaults.training_losses must map roles to loss names")
    values = {name: str(section[name]) for name in names if name != "training_losses"}
    return Defaults(**values, training_losses={str(k): str(v) for k, v in losses.items()})


def all_presets() -> dict[str, Preset]:
    """Every preset: registry.yaml first, then those of loaded plugins; duplicates are an error."""
    from .plugins import hooks

    presets = load_registry_file(registry_file())
    for result in hooks().sganon_presets():
        for data in result or []:
            name = data.get("name") if isinstance(data, dict) else None
            if not name:
                raise PresetError(f"a plugin returned a preset without a name: {data!r:.100}")
            if name in presets:
                raise PresetError(f"preset {name!r} is defined twice ({presets[name].origin} and a plugin)")
            presets[name] = parse_preset(name, data, "plugin")
    for preset in presets.values():
        for kind, part in preset.parts.items():
            if part not in presets or presets[part].kind != kind:
                raise PresetError(f"pipeline preset {preset.name!r}: its {kind} {part!r} is not a {kind} preset")
    return presets


def get_preset(name: str) -> Preset:
    presets = all_presets()
    if name not in presets:
        raise PresetError(f"no preset named {name!r}; available: {', '.join(sorted(presets))}")
    return presets[name]
