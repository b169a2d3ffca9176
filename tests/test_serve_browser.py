"""``sganon serve`` in a real browser: Debian's chromium driven by Playwright.

The server runs in a thread on a free loopback port; the page uploads a photo from
../shared/data and a 2-second video made here, and the results are checked pixel by pixel.
Screenshots go to $SGANON_SCREENSHOTS (default: the test's tmp folder).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from io import BytesIO
from pathlib import Path
from urllib.request import urlopen

import av
import numpy as np
import pytest
from PIL import Image
from sganon.core.rle import decode_rle

from tests.conftest import REPO_ROOT, shared_path

PHOTO = "data/coco_val2017_000000001000.jpg"
DOCS_PHOTO = REPO_ROOT / "docs/examples/astronaut.jpg"
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "run .ci/install-browser (installs Debian's chromium); Playwright comes with pip install -e '.[dev]'"
TIMEOUT_MS = 120_000


def chromium_executable() -> str:
    """Debian's chromium binary ($SGANON_CHROMIUM wins); fails (never skips) when missing."""
    configured = os.environ.get("SGANON_CHROMIUM")
    candidates = [configured] if configured else list(CHROMIUM_CANDIDATES)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    if found and not configured:
        return found
    pytest.fail(f"no chromium found (looked at {', '.join(c for c in candidates if c)}): {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of ``sganon serve``'s app running in a thread (uvicorn, loopback)."""
    uvicorn = pytest.importorskip("uvicorn", reason="the 'serve' extra is part of '.[dev]'")
    from sganon.serve.app import create_app

    port = free_port()
    app = create_app(allowed_hosts=["127.0.0.1"])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    instance.should_exit = True
    thread.join(timeout=60)
    assert not app.state.workspace.root.exists(), "the temporary folder must be removed on exit"


@pytest.fixture(scope="module")
def page(server):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright is not installed: {INSTALL_HINT}")
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        context = browser.new_context(viewport={"width": 1360, "height": 860}, accept_downloads=True)
        # Any request to another host would be a leak (CDN, fonts, telemetry): record them.
        outside: list[str] = []
        base = server[0]
        context.on("request", lambda request: None if request.url.startswith(base) else outside.append(request.url))
        tab = context.new_page()
        tab.outside_requests = outside
        tab.set_default_timeout(TIMEOUT_MS)
        # Every status text the page shows, in order (progress included).
        tab.add_init_script(
            """window.__statusLog = [];
            new MutationObserver(() => {
              const s = document.getElementById('status');
              if (s) window.__statusLog.push(s.textContent);
            }).observe(document, {subtree: true, childList: true, characterData: true});"""
        )
        tab.goto(base + "/")
        tab.wait_for_selector("body[data-ready=true]")
        yield tab
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SGANON_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fetch(url: str) -> bytes:
    with urlopen(url, timeout=60) as response:
        return response.read()


def fetch_image(url: str) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(fetch(url))).convert("RGB"))


def wait_for_new_run(page, previous: str | None) -> str:
    """Wait until the page shows a finished run other than ``previous``; returns its id."""
    # (Selectors, not JS predicates: the page's Content-Security-Policy forbids eval.)
    not_previous = f':not([data-run="{previous}"])' if previous else ""
    page.wait_for_selector(f"#status[data-state=done][data-run]{not_previous}, #status[data-state=error]")
    state = page.get_attribute("#status", "data-state")
    assert state == "done", f"the run failed: {page.text_content('#status')} / {page.text_content('#error')}"
    return page.get_attribute("#status", "data-run")


def outside_boxes(shape: tuple[int, int], entry: dict, margin: int = 2) -> np.ndarray:
    """bool [H, W]: pixels at least ``margin`` away from every person and face box."""
    far = np.ones(shape, bool)
    for item in entry["persons"] + entry["faces"]:
        x0, y0, x1, y1 = item["box"]
        far[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = False
    return far


def check_detections(entry: dict, height: int, width: int) -> np.ndarray:
    """Validate one detections entry (CLI format); returns the union of the person masks."""
    assert set(entry) >= {"file", "persons", "faces"}
    union = np.zeros((height, width), bool)
    for person in entry["persons"]:
        x0, y0, x1, y1 = person["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert 0.0 <= person["score"] <= 1.0
        mask = decode_rle(person["mask"])
        assert mask.shape == (height, width)
        assert mask.any() and not mask[:, :x0].any() and not mask[:y0].any()
        union |= mask
        if "keypoints" in person:
            assert all(len(point) == 3 for point in person["keypoints"])
    for face in entry["faces"]:
        x0, y0, x1, y1 = face["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    return union


def test_photo_in_browser(server, page, screenshots):
    base, _ = server
    photo = shared_path(PHOTO)
    banner = page.text_content("#banner")
    assert "Baseline generator" in banner and "baseline.pixelate-16" in banner, banner
    assert page.is_enabled("#verify") and page.is_checked("#verify") and not page.is_visible("#verify-note")

    page.set_input_files("#file-input", str(photo))
    first = wait_for_new_run(page, None)
    upload_id = page.evaluate("state.selected.id")
    original = fetch_image(f"{base}/api/uploads/{upload_id}/original")
    expected = np.asarray(Image.open(photo).convert("RGB"))
    assert np.array_equal(original, expected), "the page shows the photo as the pipeline reads it"
    result = fetch_image(f"{base}/api/runs/{first}/files/result")
    assert result.shape == original.shape

    # Detections JSON, downloaded through the page's link.
    with page.expect_download() as download_info:
        page.click("#download-detections")
    download = download_info.value
    assert download.suggested_filename.endswith(".detections.json")
    data = json.loads(Path(download.path()).read_text())
    assert len(data["images"]) == 1
    entry = data["images"][0]
    assert entry["file"] == photo.name
    persons = check_detections(entry, *original.shape[:2])
    assert entry["persons"], "the photo shows people; the offline detector must find them"

    # Changed inside the persons, identical far from them.
    difference = np.abs(result.astype(int) - original.astype(int)).sum(axis=2)
    assert (difference[persons] > 0).mean() > 0.5
    far = outside_boxes(original.shape[:2], entry)
    assert far.mean() > 0.2
    assert np.array_equal(result[far], original[far])

    # Overlays: boxes (SVG, one per person) and masks (a layer) appear when toggled.
    assert not page.is_visible("#layer-vectors g.boxes rect")
    page.check("#show-boxes")
    page.check("#show-masks")
    page.check("#show-keypoints")
    assert page.locator("#layer-vectors g.boxes rect").count() == len(entry["persons"])
    assert page.is_visible("#layer-vectors g.boxes rect")
    assert page.is_visible("#layer-masks")
    masks = fetch_image(f"{base}/api/runs/{first}/files/masks")
    assert masks.shape == original.shape
    page.screenshot(path=str(screenshots / "serve-photo-overlays.png"))
    page.uncheck("#show-masks")
    assert not page.is_visible("#layer-masks")
    page.check("#show-surfaces")
    assert page.is_visible("#layer-surfaces")
    surfaces = np.asarray(Image.open(BytesIO(fetch(f"{base}/api/runs/{first}/files/surfaces"))))
    assert surfaces.shape == (*original.shape[:2], 4)
    assert surfaces[..., 3][persons].any() and not surfaces[..., 3][far].any()
    page.uncheck("#show-surfaces")

    # "New person" with a generator that draws from the seed: the result changes.
    page.select_option("#preset", "baseline.mask-noise")
    page.wait_for_selector("#banner:has-text('mask-noise')")
    page.click("#run")
    second = wait_for_new_run(page, first)
    before = fetch_image(f"{base}/api/runs/{second}/files/result")
    seed_before = page.input_value("#seed")
    page.click("#new-person")
    third = wait_for_new_run(page, second)
    assert page.input_value("#seed") != seed_before
    after = fetch_image(f"{base}/api/runs/{third}/files/result")
    assert not np.array_equal(before[persons], after[persons]), "a new seed must give another result"
    # Far from everything either run replaced (the verification pass may add face regions
    # where a new fill happens to look like a face), nothing changed.
    far_both = far.copy()
    for run in (second, third):
        for later in json.loads(fetch(f"{base}/api/runs/{run}/files/detections"))["images"]:
            far_both &= outside_boxes(original.shape[:2], later)
    assert far_both.mean() > 0.2
    assert np.array_equal(before[far_both], after[far_both])
    page.screenshot(path=str(screenshots / "serve-photo-new-person.png"))
    assert page.outside_requests == [], f"the page fetched from elsewhere: {page.outside_requests}"


def make_video(path: Path, source: np.ndarray, seconds: int = 2, fps: int = 8) -> int:
    """An H.264 video of ``source`` sliding sideways a little (frames differ); returns the frame count."""
    height, width = (source.shape[0] // 2) * 2, (source.shape[1] // 2) * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(seconds * fps):
            frame = np.roll(source, index * 2, axis=1)[:height, :width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return seconds * fps


def video_frames(data: bytes) -> list[np.ndarray]:
    with av.open(BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_video_in_browser(server, page, tmp_path):
    base, _ = server
    photo = Image.open(shared_path(PHOTO)).convert("RGB")
    small = np.asarray(photo.resize((photo.width // 2, photo.height // 2)))
    video = tmp_path / "walk.mp4"
    frames = make_video(video, small)

    previous = page.get_attribute("#status", "data-run")
    page.select_option("#preset", "")
    page.evaluate("window.__statusLog = []")
    page.set_input_files("#file-input", str(video))
    run = wait_for_new_run(page, previous)
    log = page.evaluate("window.__statusLog")
    assert any(f"of {frames}" in text for text in log), f"no progress shown: {log}"
    assert page.is_visible("#video-result")
    status = json.loads(fetch(f"{base}/api/runs/{run}"))
    assert status["progress"] == {"done": frames, "total": frames}

    original = video_frames(video.read_bytes())
    result = video_frames(fetch(f"{base}/api/runs/{run}/files/result"))
    assert len(result) == len(original) == frames
    detections = json.loads(fetch(f"{base}/api/runs/{run}/files/detections"))["images"]
    assert sorted(entry["frame"] for entry in detections) == list(range(frames))
    changed = 0
    for entry in detections:
        if not entry["persons"]:
            continue
        index = entry["frame"]
        persons = check_detections(entry, *original[index].shape[:2])
        difference = np.abs(result[index].astype(int) - original[index].astype(int)).sum(axis=2)
        changed += int(difference[persons].mean() > 10)
    assert changed >= frames // 2, "persons must be anonymized in most frames"


def test_docs_screenshot(server, page, screenshots):
    """The screenshot of docs/serve.md: the repository's example photo, masks and boxes on."""
    previous = page.get_attribute("#status", "data-run")
    page.select_option("#preset", "")
    page.set_input_files("#file-input", str(DOCS_PHOTO))
    wait_for_new_run(page, previous)
    page.check("#show-boxes")
    page.check("#show-masks")
    page.check("#show-faces")
    page.check("#show-keypoints")
    page.uncheck("#show-surfaces")
    page.screenshot(path=str(screenshots / "serve.png"), full_page=True)
    assert (screenshots / "serve.png").stat().st_size > 10_000
    assert not page.is_visible("#img-original-side")
    page.click("#mode-side")
    assert page.is_visible("#img-original-side") and not page.is_visible("#img-original")
    page.screenshot(path=str(screenshots / "serve-side-by-side.png"), full_page=True)
    page.click("#mode-slider")
    assert page.is_visible("#img-original")
