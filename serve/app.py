"""The ``sganon serve`` web app (FastAPI): a local page to anonymize photos and videos.

Routes (ids are random hex strings the server made; no route takes a path):

- ``GET /``, ``GET /static/{index.html|app.js|style.css}``: the page (no external assets).
- ``GET /guide/weights``: the weights guide (docs/weights.md, plain text), linked from the banner.
- ``GET /api/config``: presets, limits, whether the verification pass exists.
- ``GET /api/generator?preset=&generator=``: which generator that choice gives (for the banner).
- ``POST /api/uploads?name=FILE``: the raw bytes of one photo or video -> ``{"id", "kind", ...}``.
- ``GET /api/uploads/{id}/original``: the photo as the pipeline sees it (PNG) or the video.
- ``POST /api/uploads/{id}/runs``: options JSON -> ``{"id"}`` of a run (queued).
- ``GET /api/runs/{id}``: state, progress, banner information, error message.
- ``GET /api/runs/{id}/files/{result|detections|masks|surfaces}``: a finished run's files.

Errors are JSON ``{"error": message}``; no traceback ever reaches the page.
"""

from __future__ import annotations

import contextlib
from importlib.resources import files
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from sganon.core import __version__
from sganon.core.errors import ConfigError, SganonError
from .pipeline_adapter import PipelineAdapter, RunOptions, generator_presets, verification_support
from .workspace import Limits, NotFoundError, UploadTooLargeError, Workspace

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
MEDIA_TYPES = {".png": "image/png", ".json": "application/json", ".mp4": "video/mp4", ".webm": "video/webm"}
# The page loads nothing from elsewhere; the browser is told to refuse it too.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_file(name: str) -> bytes:
    return files("sganon.serve").joinpath("static", name).read_bytes()


def parse_options(data: Any) -> RunOptions:
    """Run options from the page's JSON; raises :class:`ConfigError` naming a bad field."""
    if not isinstance(data, dict):
        raise ConfigError("the options must be a JSON object")
    preset = data.get("preset") or None
    generator = data.get("generator") or None
    if not all(value is None or isinstance(value, str) for value in (preset, generator)):
        raise ConfigError("preset and generator must be names")
    truncation = data.get("truncation")
    if truncation is not None:
        if not isinstance(truncation, (int, float)) or not 0.0 <= float(truncation) <= 1.0:
            raise ConfigError(f"truncation must be a number in [0, 1], got {truncation!r}")
        truncation = float(truncation)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise ConfigError(f"seed must be an integer in [0, 2^31), got {seed!r}")
    verify = data.get("verify", True)
    if not isinstance(verify, bool):
        raise ConfigError("verify must be true or false")
    return RunOptions(preset=preset, generator=generator, truncation=truncation, seed=seed, verify=verify)


def run_status(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "upload": run.upload.id,
        "kind": run.upload.kind,
        "state": run.state,
        "message": run.message,
        "progress": {"done": run.done_frames, "total": run.total_frames},
        "info": run.info,
        "seconds": None if run.seconds is None else round(run.seconds, 2),
        "files": sorted(run.files) if run.state == "done" else [],
        "options": {
            "preset": run.options.preset,
            "generator": run.options.generator,
            "truncation": run.options.truncation,
            "seed": run.options.seed,
            "verify": run.options.verify,
        },
    }


def create_app(
    limits: Limits | None = None,
    device: str = "cpu",
    root: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The app; its workspace (a temporary folder unless ``root``) is removed at shutdown.

    Args:
        limits: Upload limits.
        device: Torch device of the generator.
        root: Folder for uploads and results (default: a new temporary folder).
        allowed_hosts: Host header values accepted (against DNS rebinding); ``None``: any.
    """
    workspace = Workspace(PipelineAdapter(device), limits, root)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            workspace.close()

    # No OpenAPI pages, and FastAPI's built-in OpenTelemetry off: the app records and sends nothing.
    telemetry_off = {
        "tracing": False,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,
    }
    app = FastAPI(
        title="sganon",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        telemetry=telemetry_off,  # type: ignore[arg-type]
    )
    app.state.workspace = workspace
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(UploadTooLargeError)
    async def too_large(request: Request, error: UploadTooLargeError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=413)

    @app.exception_handler(SganonError)
    async def bad_request(request: Request, error: SganonError) -> JSONResponse:
        return JSONResponse({"error": workspace.clean_message(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"unexpected server error ({type(error).__name__})"}, status_code=500)

    @app.get("/")
    def index() -> Response:
        return Response(static_file("index.html"), media_type="text/html")

    @app.get("/guide/weights")
    def weights_guide() -> Response:
        return Response(static_file("weights.md"), media_type="text/plain; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise NotFoundError("no such file")
        return Response(static_file(name), media_type=STATIC_FILES[name])

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        available, note = verification_support()
        limits = workspace.limits
        return {
            "version": __version__,
            "presets": generator_presets(),
            "verification": {"available": available, "note": note},
            "limits": {
                "max_upload_bytes": limits.max_upload_bytes,
                "max_pixels": limits.max_pixels,
                "max_video_frames": limits.max_video_frames,
            },
        }

    @app.get("/api/generator")
    def generator(preset: str | None = None, generator: str | None = None) -> dict[str, Any]:
        options = parse_options({"preset": preset, "generator": generator})
        info = workspace.adapter.generator_info(options)
        return {"generator": info.label, "realistic": info.realistic, "notice": info.notice}

    @app.post("/api/uploads")
    async def upload(request: Request, name: str = "") -> dict[str, Any]:
        declared = request.headers.get("content-length")
        body = bytearray()
        limit = workspace.limits.max_upload_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UploadTooLargeError(
                f"the file is {int(declared) / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB"
            )
        # Read the body in chunks, stopping as soon as it is over the limit.
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise UploadTooLargeError(f"the file is over the limit of {limit / 2**20:.0f} MiB")
        stored = await run_in_threadpool(workspace.add_upload, name, [bytes(body)])
        return {
            "id": stored.id,
            "name": stored.name,
            "kind": stored.kind,
            "width": stored.width,
            "height": stored.height,
            "frames": stored.frames,
        }

    @app.get("/api/uploads/{upload_id}/original")
    def original(upload_id: str) -> FileResponse:
        path = workspace.original_file(upload_id)
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))

    @app.post("/api/uploads/{upload_id}/runs")
    async def start(upload_id: str, request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as error:
            raise ConfigError("the options must be JSON") from error
        run = workspace.start_run(upload_id, parse_options(data))
        return run_status(run)

    @app.get("/api/runs/{run_id}")
    def status(run_id: str) -> dict[str, Any]:
        return run_status(workspace.run(run_id))

    @app.get("/api/runs/{run_id}/files/{name}")
    def run_file(run_id: str, name: str, download: bool = False) -> FileResponse:
        path = workspace.run_file(run_id, name)
        run = workspace.run(run_id)
        filename = None
        if download:
            stem = Path(run.upload.name).stem or "upload"
            filename = f"{stem}.anonymized{path.suffix}" if name == "result" else f"{stem}.{name}{path.suffix}"
        media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        return FileResponse(path, media_type=media_type, filename=filename)

    return app
