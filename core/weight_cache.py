"""The weights cache: import, download, list and load the weights of presets.

The checkpoint of preset ``NAME`` is ``<SGANON_HOME>/weights/NAME.safetensors`` in the
sganon checkpoint format (:mod:`sganon.core.checkpoints`). ``SGANON_HOME`` defaults to
``~/.cache/sganon``. Downloads go through ``pooch`` (progress bar, retries, hash check).

Foreign formats (the official checkpoints named in registry.yaml) are turned into such
files by converters that plugins register with the ``sganon_weight_converters`` hook
(``{weights.format: converter(path, preset) -> (state_dict, args)}``). Converters read
tensors only; nothing here unpickles code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Sequence

import torch

from .checkpoints import load_checkpoint_component, save_checkpoint
from .components import component_class
from .errors import WeightsError
from .presets import Preset, all_presets, get_preset
from .third_party import HOME_ENV, sganon_cache

CHUNK = 1 << 20


def sganon_home() -> Path:
    """The cache root: ``$SGANON_HOME`` or ``~/.cache/sganon``."""
    return sganon_cache()


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
        name: a preset with ``weights`` in registry.yaml (``sganon weights list``).
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


class LocalFileCopier:
    """A pooch downloader for ``file://`` URLs (a mirror on a local or mounted disk).

    Args:
        progressbar: ``False`` or a tqdm-like object, driven as pooch's HTTP downloader does.
    """

    def __init__(self, progressbar: Any = False) -> None:
        self.progressbar = progressbar

    def __call__(self, url: str, output_file: str, _pooch: Any = None) -> None:
        from urllib.parse import unquote, urlparse

        source = Path(unquote(urlparse(url).path))
        bar = self.progressbar or None
        if bar is not None:
            bar.total = source.stat().st_size
        with open(source, "rb") as reader, open(output_file, "wb") as writer:
            while block := reader.read(CHUNK):
                writer.write(block)
                if bar is not None:
                    bar.update(len(block))


def download(url: str, target: Path, sha256: str | None = None, progressbar: Any = False) -> str:
    """Fetch ``url`` into ``target`` with pooch (3 retries; checks ``sha256`` when given).

    Args:
        progressbar: ``False``, or a tqdm-like object (``update``, ``reset``, ``close``,
            ``total``) that pooch drives; the caller decides whether anything is shown.

    Returns:
        The sha256 of the file received.
    """
    import pooch

    fetcher = pooch.create(
        path=target.parent,
        base_url="",
        registry={target.name: None if sha256 is None else f"sha256:{sha256.lower()}"},
        urls={target.name: url},
        retry_if_failed=3,
    )
    if url.startswith("file://"):
        downloader: Any = LocalFileCopier(progressbar)
    else:
        downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=60)
    try:
        fetcher.fetch(target.name, downloader=downloader)
    except ValueError as error:  # pooch's hash mismatch; the file is discarded
        raise WeightsError(
            f"the download of {url} has another sha256 than registry.yaml expects {sha256}; the file was "
            "discarded (corrupt transfer or changed upstream file)"
        ) from error
    except Exception as error:  # requests' connection errors, HTTP errors, disk errors
        raise WeightsError(f"download of {url} failed: {error}") from error
    return file_sha256(target)


def pull_weights(
    name: str,
    allow_unverified: bool = False,
    progressbar: Any = False,
    also: Sequence[str] = (),
) -> Path:
    """Download preset ``name``'s weights, check their sha256, convert them into the cache.

    When the preset has ``sha256: null`` (the publisher gives none) the download is
    refused unless ``allow_unverified``; the error reports the hash seen, and the file is
    kept under ``<SGANON_HOME>/downloads`` so it can be imported after checking it.

    Args:
        progressbar: see :func:`download`.
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
    temp_path = downloads / f"{name}.{os.getpid()}.part"
    expected = preset.weights.sha256
    try:
        try:
            seen = download(preset.weights.url, temp_path, expected, progressbar)
        except WeightsError as error:
            raise WeightsError(
                f"{error}; without network, download that file elsewhere and run `sganon weights import {name} FILE`"
            ) from error
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


def load_preset_weights(name: str, device: str | torch.device = "cpu") -> Any:
    """The component of preset ``name`` with its cached weights, strictly loaded, in eval mode.

    Raises:
        WeightsError: the weights are not in the cache (the message says how to get them).
    """
    return load_preset(name, device)[0]


def load_preset(name: str, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Like :func:`load_preset_weights`, also returning the component's constructor arguments."""
    return load_checkpoint_component(check_installed(name), device)


def check_installed(name: str) -> Path:
    """The checkpoint of preset ``name``; :class:`WeightsError` saying how to get it when it is missing."""
    preset = weighted_preset(name)
    path = weights_path(name)
    if not path.is_file():
        raise WeightsError(
            f"the weights of {name!r} are not installed (looked for {path}); run `sganon weights pull {name}` "
            f"or, offline, `sganon weights import {name} FILE` with the file from {preset.weights.url}"
        )
    return path


__all__ = [
    "check_installed",
    "download",
    "file_sha256",
    "import_weights",
    "list_weights",
    "load_preset",
    "load_preset_weights",
    "pull_weights",
    "sganon_home",
    "weights_dir",
    "weights_path",
]
