"""The weights cache: import, download, list and load the weights of presets.

A sganon checkpoint is ``<SGANON_HOME>/weights/<preset>.safetensors``: the component's
state dict, with the resolved component config (``{"type": ClassName, **args}``, JSON)
in the safetensors metadata under ``sganon_config`` and in a ``.json`` file beside it,
plus where the weights came from (``sganon_source``). ``SGANON_HOME`` defaults to
``~/.cache/sganon``.

Foreign formats (the official checkpoints named in registry.yaml) are turned into such
files by converters that plugins register with the ``sganon_weight_converters`` hook
(``{weights.format: converter(path, preset) -> (state_dict, args)}``). Converters read
tensors only; nothing here unpickles code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Sequence

import torch

from .components import component_class
from .errors import WeightsError
from .atomic import atomic_output
from .presets import Preset, all_presets, get_preset
from .registry import MODELS

HOME_ENV = "SGANON_HOME"
CONFIG_KEY = "sganon_config"
SOURCE_KEY = "sganon_source"
CHUNK = 1 << 20

#: ``progress(bytes_done, bytes_total or None)`` while downloading.
ProgressCallback = Callable[[int, int | None], None]


def sganon_home() -> Path:
    """The cache root: ``$SGANON_HOME`` or ``~/.cache/sganon``."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "sganon"


def weights_dir() -> Path:
    return sganon_home() / "weights"


def weights_path(name: str) -> Path:
    """Where the checkpoint of preset ``name`` lives (whether or not it exists)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise WeightsError(f"invalid weights name {name!r}")
    return weights_dir() / f"{name}.safetensors"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Run ``write(temp_path)`` beside ``path`` and rename the result onto ``path``."""
    with atomic_output(path) as temporary:
        write(str(temporary))


def save_checkpoint(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` + ``config`` (+ ``source`` facts) as a sganon checkpoint, atomically.

    Args:
        path: the ``.safetensors`` file; ``<path>.json`` beside it gets the config too.
        state_dict: ``{name: tensor}``; tensors are stored contiguous on the CPU.
        config: the component config ``{"type": ClassName, **args}`` (JSON-serializable).
        source: where the weights came from (url, sha256, ...), JSON-serializable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    try:
        config_text = json.dumps(dict(config), sort_keys=True)
        source_text = json.dumps(dict(source or {}), sort_keys=True)
    except TypeError as error:
        raise WeightsError(f"the component config must be JSON-serializable: {error}") from error
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state_dict.items()}
    metadata = {CONFIG_KEY: config_text, SOURCE_KEY: source_text}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=metadata))
    side = {"config": json.loads(config_text), "source": json.loads(source_text)}
    atomic_write(path.with_suffix(".json"), lambda temp: Path(temp).write_text(json.dumps(side, indent=2) + "\n"))
    return path


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; :class:`WeightsError` if it cannot be read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"cannot read the safetensors file {path}: {error}") from error
    return tensors, metadata


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(state_dict, config, source)`` of a sganon checkpoint.

    Raises:
        WeightsError: the file is missing, not safetensors, or has no stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    tensors, metadata = read_safetensors(path)
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path} has no stored component config ({CONFIG_KEY}); it was not written by sganon")
    try:
        config = json.loads(metadata[CONFIG_KEY])
        source = json.loads(metadata.get(SOURCE_KEY, "{}"))
    except ValueError as error:
        raise WeightsError(f"{path} has a corrupt stored config: {error}") from error
    if not isinstance(config, dict) or "type" not in config:
        raise WeightsError(f"{path}: the stored config must be a dict with a 'type'")
    return tensors, config, source


def weighted_preset(name: str) -> Preset:
    preset = get_preset(name)
    if preset.parts:
        parts = ", ".join(f"{kind} {part}" for kind, part in preset.parts.items())
        raise WeightsError(
            f"{name!r} is a pipeline preset ({parts}); import each part's file under the part's name "
            f"(`sganon weights pull {name}` fetches them all)"
        )
    if preset.weights is None:
        raise WeightsError(f"preset {name!r} has no weights to import or download (it needs none)")
    return preset


def converters() -> dict[str, Callable[..., Any]]:
    """``{weights format: converter}`` from every loaded plugin."""
    from .plugins import hooks

    found: dict[str, Callable[..., Any]] = {}
    for result in hooks().sganon_weight_converters():
        for fmt, converter in (result or {}).items():
            if fmt in found and found[fmt] is not converter:
                raise WeightsError(f"two plugins convert the weights format {fmt!r}")
            found[fmt] = converter
    return found


def import_weights(name: str, file: str | os.PathLike[str], source: Mapping[str, Any] | None = None) -> Path:
    """Convert a local copy of preset ``name``'s published weights into the cache.

    Args:
        name: a preset with ``weights`` in registry.yaml (e.g. ``vsam.fba-configE``).
        file: the downloaded file, in the preset's ``weights.format``; when the preset
            has a sha256 the file must match it.
        source: extra facts to record (the file's sha256, the preset's URL and whether
            the hash was verified are recorded anyway).

    Returns:
        The path of the sganon checkpoint written.
    """
    preset = weighted_preset(name)
    file = Path(file)
    if not file.is_file():
        raise WeightsError(f"no file at {file}")
    fmt = preset.weights.format
    available = converters()
    if fmt not in available:
        raise WeightsError(
            f"no plugin converts the weights format {fmt!r} of {name!r} (formats: {', '.join(sorted(available)) or 'none'}); "
            "is its plugin installed and loaded? see `sganon plugins list`"
        )
    seen = file_sha256(file)
    expected = preset.weights.sha256
    if expected is not None and seen != expected.lower():
        raise WeightsError(
            f"{file} has sha256 {seen}, but registry.yaml expects {expected} for {name!r}; is it the published file?"
        )
    state_dict, args = available[fmt](str(file), preset)
    cls = component_class(preset.kind, preset.component)
    config = {"type": cls.__name__, **dict(args)}
    facts = {
        "preset": name,
        "kind": preset.kind,
        "component": preset.component,
        "format": fmt,
        "url": preset.weights.url,
        "sha256": seen,
        "expected_sha256": expected,
        "verified": expected is not None,
        "licence": preset.weights.licence,
        **dict(source or {}),
    }
    return save_checkpoint(weights_path(name), state_dict, config, facts)


def download(url: str, target: Path, progress: ProgressCallback | None = None) -> str:
    """Stream ``url`` into ``target``; returns the sha256 of what was received."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = response.headers.get("Content-Length")
            total_bytes = int(total) if total and total.isdigit() else None
            done = 0
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total_bytes)
    except OSError as error:  # URLError, HTTPError, timeouts, disk errors
        raise WeightsError(f"download of {url} failed: {error}") from error
    return digest.hexdigest()


def pull_weights(
    name: str,
    allow_unverified: bool = False,
    progress: ProgressCallback | None = None,
    also: Sequence[str] = (),
) -> Path:
    """Download preset ``name``'s weights, check their sha256, convert them into the cache.

    When the preset has ``sha256: null`` (the publisher gives none) the download is
    refused unless ``allow_unverified``; the error reports the hash seen, and the file is
    kept under ``<SGANON_HOME>/downloads`` so it can be imported after checking it.

    Args:
        also: further presets that publish the very same file (e.g. the CSE detector and
            embedder of one model); they are converted from the one download.

    Returns:
        The path of ``name``'s sganon checkpoint.
    """
    preset = weighted_preset(name)
    for other in also:
        if weighted_preset(other).weights.url != preset.weights.url:
            raise WeightsError(f"presets {name!r} and {other!r} do not publish the same file; pull them one by one")
    downloads = sganon_home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f"{name}.", suffix=".part", dir=downloads)
    os.close(handle)
    temp_path = Path(temp)
    try:
        try:
            seen = download(preset.weights.url, temp_path, progress)
        except WeightsError as error:
            raise WeightsError(
                f"{error}; without network, download that file elsewhere and run `sganon weights import {name} FILE`"
            ) from error
        expected = preset.weights.sha256
        if expected is not None and seen != expected.lower():
            raise WeightsError(
                f"the download of {name!r} has sha256 {seen}, but registry.yaml expects {expected}; "
                "the file was discarded (corrupt transfer or changed upstream file)"
            )
        if expected is None and not allow_unverified:
            kept = downloads / f"{name}.{seen[:16]}.download"
            os.replace(temp_path, kept)
            raise WeightsError(
                f"the publisher of {name!r} gives no sha256, so the download cannot be verified; it has sha256 {seen} "
                f"and is kept at {kept}. Check that hash, then run `sganon weights import {name} {kept}` or "
                f"`sganon weights pull {name} --allow-unverified`"
            )
        path = import_weights(name, temp_path)
        for other in also:
            import_weights(other, temp_path)
        return path
    finally:
        if temp_path.exists():
            temp_path.unlink()


def list_weights() -> list[dict[str, Any]]:
    """One row per preset with weights: name, kind, component, installed, path, size, sha256, verified."""
    rows = []
    for name, preset in sorted(all_presets().items()):
        if preset.weights is None:
            continue
        path = weights_path(name)
        row: dict[str, Any] = {
            "name": name,
            "kind": preset.kind,
            "component": preset.component,
            "format": preset.weights.format,
            "installed": path.is_file(),
            "path": str(path),
            "size": path.stat().st_size if path.is_file() else None,
            "sha256": None,
            "verified": None,
        }
        side = path.with_suffix(".json")
        if side.is_file():
            try:
                source = json.loads(side.read_text()).get("source", {})
                row["sha256"] = source.get("sha256")
                row["verified"] = bool(source.get("verified"))
            except (OSError, ValueError):
                pass
        rows.append(row)
    return rows


def check_state_dict(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str, hint: str = "") -> None:
    """Raise :class:`WeightsError` unless ``tensors`` has exactly ``module``'s keys and shapes.

    The message names the missing, unexpected and mis-shaped tensors (the first few of each).
    """
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    wrong = [
        f"{name}: checkpoint {tuple(tensors[name].shape)}, model {expected[name]}"
        for name in expected
        if name in tensors and tuple(tensors[name].shape) != expected[name]
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {name_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {name_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape (another shape than the model's): {name_listing(wrong)}")
    if problems:
        raise WeightsError(f"{what} does not fit the architecture: " + "; ".join(problems) + (f". {hint}" if hint else ""))


def load_state_dict_strictly(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str, hint: str = ""
) -> None:
    """:func:`check_state_dict`, then ``load_state_dict(strict=True)``."""
    check_state_dict(module, tensors, what, hint)
    module.load_state_dict(dict(tensors), strict=True)


def name_listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def load_checkpoint_component(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
    """Build the component stored in a sganon checkpoint and load its tensors strictly."""
    state_dict, config, _ = read_checkpoint(path)
    component = MODELS.build(dict(config))
    load_state_dict_strictly(component, state_dict, f"{path} ({config['type']})")
    component.to(device)
    if hasattr(component, "eval"):
        component.eval()
    return component


def load_preset_weights(name: str, device: str | torch.device = "cpu") -> Any:
    """The component of preset ``name`` with its cached weights, strictly loaded, in eval mode.

    Raises:
        WeightsError: the weights are not in the cache (the message says how to get them).
    """
    preset = weighted_preset(name)
    path = weights_path(name)
    if not path.is_file():
        raise WeightsError(
            f"the weights of {name!r} are not installed (looked for {path}); run `sganon weights pull {name}` "
            f"or, offline, `sganon weights import {name} FILE` with the file from {preset.weights.url}"
        )
    return load_checkpoint_component(path, device)


__all__ = [
    "atomic_write",
    "file_sha256",
    "import_weights",
    "list_weights",
    "load_checkpoint_component",
    "load_preset_weights",
    "pull_weights",
    "read_checkpoint",
    "save_checkpoint",
    "sganon_home",
    "weights_path",
]
