"""``sganon serve`` without a browser: the API (FastAPI TestClient), its limits and safety."""

from __future__ import annotations

import json
import sys
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is part of '.[dev]'")
from fastapi.testclient import TestClient  # noqa: E402
from sganon.cli.main import cli  # noqa: E402
from sganon.cli.serve_cmd import is_loopback  # noqa: E402
from sganon.serve.app import create_app  # noqa: E402
from sganon.serve.pipeline_adapter import verification_support  # noqa: E402
from sganon.serve.workspace import Limits, display_name  # noqa: E402


def png_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def flat_image(height: int = 48, width: int = 64) -> np.ndarray:
    """A picture without people: a smooth gradient."""
    rows = np.linspace(40, 200, height, dtype=np.uint8)[:, None]
    image = np.zeros((height, width, 3), np.uint8)
    image[...] = rows[..., None]
    image[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return image


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(**limits) -> TestClient:
        app = create_app(limits=Limits(**limits), root=tmp_path / f"workspace{len(clients)}")
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def wait(client: TestClient, run_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.get(f"/api/runs/{run_id}").json()
        if status["state"] in ("done", "error"):
            return status
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def test_page_and_config(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and "sganon" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Nothing on the page comes from elsewhere.
    for name in ("index.html", "app.js", "style.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    config = client.get("/api/config").json()
    names = {p["name"] for p in config["presets"]}
    assert {"baseline.pixelate-16", "baseline.mask-noise"} <= names
    assert config["verification"]["available"] == verification_support()[0]
    generator = client.get("/api/generator").json()
    assert set(generator) == {"generator", "realistic", "notice"}
    if not generator["realistic"]:
        assert "baseline" in generator["notice"].lower()


def test_unknown_preset_is_a_message(make_client):
    client = make_client()
    answer = client.get("/api/generator", params={"preset": "no.such-preset"})
    assert answer.status_code == 400
    assert "no.such-preset" in answer.json()["error"]


def test_oversized_upload_is_refused_and_not_kept(make_client):
    client = make_client(max_upload_bytes=1000)
    workspace = client.app.state.workspace
    answer = client.post("/api/uploads", params={"name": "big.png"}, content=b"\0" * 5000)
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]
    assert files_under(workspace.root) == []


def test_too_many_pixels_is_refused(make_client):
    client = make_client(max_pixels=1000)
    answer = client.post("/api/uploads", params={"name": "photo.png"}, content=png_bytes(flat_image(40, 40)))
    assert answer.status_code == 413
    assert "megapixels" in answer.json()["error"]
    assert files_under(client.app.state.workspace.root) == []


@pytest.mark.parametrize("name", ["../../escape/evil.png", "..\\..\\escape\\evil.png", "/etc/evil.png", "./.evil.png"])
def test_a_path_in_the_file_name_stays_inside_the_workspace(make_client, tmp_path, name):
    client = make_client()
    root = client.app.state.workspace.root
    before = set(files_under(tmp_path))
    answer = client.post("/api/uploads", params={"name": name}, content=png_bytes(flat_image()))
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "evil.png"
    new = set(files_under(tmp_path)) - before
    assert new and all(root in path.parents for path in new)
    assert not (tmp_path / "escape").exists()


def test_a_broken_image_is_a_message_not_a_traceback(make_client):
    client = make_client()
    root = client.app.state.workspace.root
    truncated = png_bytes(flat_image())[:60]
    for name, content in [("broken.jpg", b"this is not a jpeg at all"), ("cut.png", truncated)]:
        answer = client.post("/api/uploads", params={"name": name}, content=content)
        assert answer.status_code == 400, answer.text
        message = answer.json()["error"]
        assert name in message
        assert "Traceback" not in message and str(root) not in message
    assert files_under(root) == []


def test_unsupported_type_and_empty_file(make_client):
    client = make_client()
    assert client.post("/api/uploads", params={"name": "notes.txt"}, content=b"hello").status_code == 400
    empty = client.post("/api/uploads", params={"name": "empty.png"}, content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]


def test_ids_not_paths(make_client):
    client = make_client()
    for url in [
        "/api/uploads/..%2F..%2Fetc%2Fpasswd/original",
        "/api/uploads/0123/original",
        "/api/runs/" + "0" * 32,
        "/api/runs/" + "0" * 32 + "/files/result",
        "/static/..%2Fapp.py",
        "/static/pipeline_adapter.py",
    ]:
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert "error" in answer.json() or answer.status_code == 404


def test_bad_options_are_messages(make_client):
    client = make_client()
    upload = client.post("/api/uploads", params={"name": "flat.png"}, content=png_bytes(flat_image())).json()
    for options, word in [({"truncation": 2}, "truncation"), ({"seed": -1}, "seed"), ({"seed": "x"}, "seed")]:
        answer = client.post(f"/api/uploads/{upload['id']}/runs", json=options)
        assert answer.status_code == 400 and word in answer.json()["error"]
    answer = client.post(
        f"/api/uploads/{upload['id']}/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400


def test_verification_pass_is_passed_through_or_refused(make_client):
    client = make_client()
    upload = client.post("/api/uploads", params={"name": "flat.png"}, content=png_bytes(flat_image())).json()
    run = client.post(f"/api/uploads/{upload['id']}/runs", json={"verify": True}).json()
    status = wait(client, run["id"])
    available, note = verification_support()
    if available:
        assert status["state"] == "done", status["message"]
    else:
        assert status["state"] == "error" and note in status["message"]


def test_photo_without_people_round_trip(make_client):
    """A photo without people: the result has the original's exact pixels and empty detections."""
    client = make_client()
    workspace = client.app.state.workspace
    image = flat_image()
    upload = client.post("/api/uploads", params={"name": "flat.png"}, content=png_bytes(image)).json()
    assert (upload["kind"], upload["width"], upload["height"]) == ("image", 64, 48)
    original = np.asarray(Image.open(BytesIO(client.get(f"/api/uploads/{upload['id']}/original").content)))
    assert np.array_equal(original, image)
    run = client.post(f"/api/uploads/{upload['id']}/runs", json={"seed": 3}).json()
    status = wait(client, run["id"])
    assert status["state"] == "done", status["message"]
    assert status["info"]["persons"] == 0 and status["info"]["replaced_fraction"] == 0
    result = client.get(f"/api/runs/{run['id']}/files/result")
    assert result.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(BytesIO(result.content)).convert("RGB")), image)
    download = client.get(f"/api/runs/{run['id']}/files/detections", params={"download": "true"})
    assert 'filename="flat.detections.json"' in download.headers["content-disposition"]
    assert json.loads(download.content) == {"images": [{"file": "flat.png", "persons": [], "faces": []}]}
    masks = np.asarray(Image.open(BytesIO(client.get(f"/api/runs/{run['id']}/files/masks").content)))
    assert masks.shape == (48, 64, 4) and not masks[..., 3].any()
    root = workspace.root
    assert root.exists()
    client.__exit__(None, None, None)
    assert not root.exists(), "the workspace is removed on shutdown"


def test_old_uploads_are_forgotten(make_client):
    client = make_client(keep_uploads=2)
    ids = [
        client.post("/api/uploads", params={"name": f"{i}.png"}, content=png_bytes(flat_image())).json()["id"]
        for i in range(3)
    ]
    assert client.get(f"/api/uploads/{ids[0]}/original").status_code == 404
    assert client.get(f"/api/uploads/{ids[2]}/original").status_code == 200
    assert len(list((client.app.state.workspace.root / "uploads").iterdir())) == 2


def test_host_header_is_checked(tmp_path):
    app = create_app(root=tmp_path / "w", allowed_hosts=["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/config").status_code == 200
        assert client.get("/api/config", headers={"host": "attacker.example"}).status_code == 400


@given(st.text(max_size=300))
def test_display_name_is_a_bare_file_name(name):
    shown = display_name(name)
    assert shown and len(shown) <= 120
    assert "/" not in shown and "\\" not in shown and not shown.startswith(".")
    assert all(ch.isprintable() for ch in shown)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_cli_help_and_missing_extra(monkeypatch):
    runner = CliRunner()
    assert "serve" in runner.invoke(cli, ["--help"]).output
    helped = runner.invoke(cli, ["serve", "--help"])
    assert helped.exit_code == 0 and "--port" in helped.output and "127.0.0.1" in helped.output
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the 'serve' extra were not installed
    missing = runner.invoke(cli, ["serve"])
    assert missing.exit_code != 0
    assert "'serve' extra" in missing.output and ".[serve]" in missing.output


def test_the_banner_says_in_one_line_why_the_baseline_runs_and_links_the_weights_guide(make_client):
    """Without imported weights: a short line (no URL, cache path or shell command; the CLI
    prints those), and the weights guide the page links to."""
    client = make_client()
    notice = client.get("/api/generator").json()["notice"]
    assert notice == "Baseline in use, not the realistic generator vsam.fba-configE: its weights are not imported."
    assert "/guide/weights" in client.get("/static/app.js").text
    guide = client.get("/guide/weights")
    assert guide.status_code == 200 and guide.headers["content-type"].startswith("text/plain")
    assert "sganon weights import" in guide.text and guide.text.startswith("# Weights")
