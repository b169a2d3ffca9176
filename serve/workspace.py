"""Uploads and results of ``sganon serve``, kept in one temporary folder.

Requests name uploads and runs by random ids, never by paths: every file the app reads
or writes is ``root / "uploads" | "runs" / ID / FIXED_NAME``, where ``ID`` is one this
workspace made and ``FIXED_NAME`` is chosen by the app. The folder is removed by
:meth:`Workspace.close` (the server calls it on exit).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sganon.core.errors import InputError, SganonError
from . import overlays
from .pipeline_adapter import PipelineAdapter, RunOptions, media_kind, write_detections_file

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class NotFoundError(SganonError):
    """No upload, run or file of that id (expired, removed, or never made)."""


class UploadTooLargeError(InputError):
    """An upload is over the byte, pixel or length limits of the server."""


@dataclass(frozen=True)
class Limits:
    """What the server accepts.

    Attributes:
        max_upload_bytes: Largest upload (bytes).
        max_pixels: Largest photo / video frame (width x height).
        max_video_frames: Longest video (frames).
        keep_uploads: Uploads kept; older ones (and their runs) are removed.
    """

    max_upload_bytes: int = 100 * 2**20
    max_pixels: int = 40_000_000
    max_video_frames: int = 900
    keep_uploads: int = 32


@dataclass
class Upload:
    """An uploaded photo or video (``source`` lies in the workspace)."""

    id: str
    name: str
    kind: str
    folder: Path
    source: Path
    width: int
    height: int
    frames: int = 1
    #: Detections per detector choice, so "new person" (or another generator) does not detect again.
    detections: dict[Any, Any] = field(default_factory=dict)
    last_result_digest: str | None = None


@dataclass
class Run:
    """One anonymization of an upload with some options; ``state`` is queued/running/done/error."""

    id: str
    upload: Upload
    options: RunOptions
    folder: Path
    state: str = "queued"
    message: str = ""
    done_frames: int = 0
    total_frames: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None


def display_name(name: str) -> str:
    """The bare file name of a client-given name (no folders, no control characters), at most 120 characters."""
    bare = re.split(r"[/\\]", name or "")[-1]
    bare = "".join(ch for ch in bare if ch.isprintable()).strip().lstrip(".")
    return bare[-120:] or "upload"


class Workspace:
    """The uploads and runs of one server, in a temporary folder, with one worker thread.

    Args:
        adapter: The pipeline adapter runs go through.
        limits: Upload limits.
        root: Folder to use (created; default: a new temporary folder). Removed on close.
    """

    def __init__(self, adapter: PipelineAdapter, limits: Limits | None = None, root: Path | None = None) -> None:
        self.adapter = adapter
        self.limits = limits or Limits()
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="sganon-serve-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sganon-serve")

    def close(self) -> None:
        """Stop the worker (queued runs are dropped) and remove the folder."""
        self.worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ lookups
    def upload(self, upload_id: str) -> Upload:
        with self.lock:
            if not ID_PATTERN.match(upload_id or "") or upload_id not in self.uploads:
                raise NotFoundError("no such upload (it may have been removed); upload the file again")
            return self.uploads[upload_id]

    def run(self, run_id: str) -> Run:
        with self.lock:
            if not ID_PATTERN.match(run_id or "") or run_id not in self.runs:
                raise NotFoundError("no such result (it may have been removed); anonymize again")
            return self.runs[run_id]

    def new_folder(self, kind: str) -> tuple[str, Path]:
        new_id = secrets.token_hex(16)
        folder = self.root / kind / new_id
        folder.mkdir(parents=True)
        return new_id, folder

    def clean_message(self, error: Exception, upload: Upload | None = None) -> str:
        """The error's message without the workspace's paths (the input is named by its file name)."""
        text = str(error)
        if upload is not None:
            text = text.replace(str(upload.source), upload.name)
        return text.replace(str(self.root), "<workspace>")

    # ------------------------------------------------------------------ uploads
    def add_upload(self, name: str, chunks: Iterable[bytes], declared_size: int | None = None) -> Upload:
        """Store an upload (the bytes of one photo or video) and check it against the limits.

        Raises :class:`UploadTooLargeError` over the limits and :class:`InputError` for a file
        that is not a readable photo or video; nothing is kept then.
        """
        limit = self.limits.max_upload_bytes
        if declared_size is not None and declared_size > limit:
            raise UploadTooLargeError(
                f"the file is {declared_size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB"
            )
        shown = display_name(name)
        suffix = Path(shown).suffix.lower()
        kind = media_kind(suffix) if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else None
        if kind is None:
            raise InputError(f"{shown}: not a photo or video type sganon reads (by its extension)")
        upload_id, folder = self.new_folder("uploads")
        source = folder / f"input{suffix}"
        try:
            size = 0
            with source.open("wb") as file:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLargeError(f"the file is over the limit of {limit / 2**20:.0f} MiB")
                    file.write(chunk)
            if size == 0:
                raise InputError(f"{shown}: the file is empty")
            upload = Upload(upload_id, shown, kind, folder, source, 0, 0)
            self.check_media(upload)
        except BaseException as error:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(error, SganonError):
                raise type(error)(self.clean_message(error, Upload(upload_id, shown, kind, folder, source, 0, 0)))
            raise
        with self.lock:
            self.uploads[upload_id] = upload
            self.forget_old_uploads()
        return upload

    def check_media(self, upload: Upload) -> None:
        """Read the upload's size (and decode it), enforce the pixel and length limits."""
        if upload.kind == "image":
            from PIL import Image

            try:
                with Image.open(upload.source) as header:
                    upload.width, upload.height = header.size
            except Image.DecompressionBombError as error:
                raise UploadTooLargeError(f"{upload.name}: the image has too many pixels") from error
            except Exception as error:
                raise InputError(f"{upload.name}: not an image file that can be read") from error
            self.check_pixels(upload)
            rgb = self.adapter.read_photo(upload.source)  # decodes fully: a broken file fails here
            upload.height, upload.width = rgb.shape[:2]
            # What the pipeline sees (upright, RGB), for the page to show beside the result.
            Image.fromarray(rgb).save(upload.folder / "original.png", format="PNG", compress_level=1)
        else:
            frames, width, height, _ = self.adapter.count_frames(upload.source)
            upload.frames, upload.width, upload.height = frames, width, height
            self.check_pixels(upload)
            if frames > self.limits.max_video_frames:
                raise UploadTooLargeError(
                    f"{upload.name}: the video has {frames} frames; the limit is {self.limits.max_video_frames}"
                )
            if frames == 0:
                raise InputError(f"{upload.name}: the video has no frames")

    def check_pixels(self, upload: Upload) -> None:
        pixels = upload.width * upload.height
        if pixels > self.limits.max_pixels:
            raise UploadTooLargeError(
                f"{upload.name}: {upload.width}x{upload.height} is {pixels / 1e6:.1f} megapixels; "
                f"the limit is {self.limits.max_pixels / 1e6:.1f}"
            )
        if pixels == 0:
            raise InputError(f"{upload.name}: the image is empty")

    def forget_old_uploads(self) -> None:
        """Remove the oldest uploads (and their finished runs) beyond ``keep_uploads``; lock held."""
        while len(self.uploads) > self.limits.keep_uploads:
            old_id, old = self.uploads.popitem(last=False)
            for run_id in [r for r, run in self.runs.items() if run.upload.id == old_id]:
                run = self.runs[run_id]
                if run.state in ("done", "error"):
                    del self.runs[run_id]
                    shutil.rmtree(run.folder, ignore_errors=True)
            shutil.rmtree(old.folder, ignore_errors=True)

    def original_file(self, upload_id: str) -> Path:
        upload = self.upload(upload_id)
        return upload.folder / "original.png" if upload.kind == "image" else upload.source

    # ------------------------------------------------------------------ runs
    def start_run(self, upload_id: str, options: RunOptions) -> Run:
        """Queue an anonymization of an upload; it runs on the worker thread."""
        upload = self.upload(upload_id)
        run_id, folder = self.new_folder("runs")
        run = Run(run_id, upload, options, folder, total_frames=upload.frames)
        with self.lock:
            self.runs[run_id] = run
        self.worker.submit(self.execute, run)
        return run

    def execute(self, run: Run) -> None:
        run.state = "running"
        run.started = time.monotonic()
        try:
            info = self.adapter.generator_info(run.options)
            run.info = {"generator": info.label, "realistic": info.realistic, "notice": info.notice}
            if run.upload.kind == "image":
                self.execute_photo(run)
            else:
                self.execute_video(run)
            run.seconds = time.monotonic() - run.started
            run.state = "done"
        except SganonError as error:
            run.message = self.clean_message(error, run.upload)
            run.state = "error"
        except Exception as error:  # shown as a message, never a traceback
            run.message = f"unexpected failure ({type(error).__name__}); nothing was written for this input"
            run.state = "error"

    def execute_photo(self, run: Run) -> None:
        upload, options = run.upload, run.options
        key = self.adapter.detector_key(options)
        if key not in upload.detections:
            rgb = self.adapter.read_photo(upload.source)
            upload.detections[key] = self.adapter.detect(options, rgb)
        result = self.adapter.anonymize_photo(
            options, upload.source, run.folder / "result.png", upload.name, upload.detections[key]
        )
        height, width = result.image.shape[:2]
        write_detections_file(run.folder / "detections.json", [result.detections])
        self.save_layer(run.folder / "masks.png", overlays.mask_layer(result.detections, height, width))
        self.save_layer(run.folder / "surfaces.png", overlays.surface_layer(result.surfaces, height, width))
        run.files = {
            "result": run.folder / "result.png",
            "detections": run.folder / "detections.json",
            "masks": run.folder / "masks.png",
            "surfaces": run.folder / "surfaces.png",
        }
        digest = hashlib.sha256(np.ascontiguousarray(result.image).tobytes()).hexdigest()
        run.info.update(
            persons=len(result.detections["persons"]),
            faces=len(result.detections["faces"]),
            replaced_fraction=round(float(result.replaced.mean()), 4),
            same_as_previous=digest == upload.last_result_digest,
            surfaces=len(result.surfaces),
        )
        upload.last_result_digest = digest
        run.done_frames = 1

    def execute_video(self, run: Run) -> None:
        def progress(frames: int) -> None:
            run.done_frames += frames

        written, entries = self.adapter.anonymize_video(
            run.options, run.upload.source, run.folder, "result.mp4", progress
        )
        write_detections_file(run.folder / "detections.json", entries)
        run.files = {"result": written, "detections": run.folder / "detections.json"}
        run.info.update(
            frames=run.done_frames,
            persons=max((len(e["persons"]) for e in entries), default=0),
            faces=max((len(e["faces"]) for e in entries), default=0),
        )

    @staticmethod
    def save_layer(path: Path, rgba: np.ndarray) -> None:
        from PIL import Image

        Image.fromarray(rgba, "RGBA").save(path, format="PNG", compress_level=1)

    def run_file(self, run_id: str, name: str) -> Path:
        """A file of a finished run by its fixed name (result, detections, masks, surfaces)."""
        run = self.run(run_id)
        if run.state != "done":
            raise NotFoundError("the result is not ready")
        if name not in run.files:
            raise NotFoundError(f"this result has no {name!r} file")
        return run.files[name]
