"""Engines (issue 12): per-item determinism, the run manifest, --resume/--overwrite, and the
Ray engine (same bytes as the local engine, a killed worker retried, every input once)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sganon.cli.main import cli

NAMES = [f"img{i}.png" for i in range(6)]
#: A seed-consuming pipeline without detectors: noise fills the given person boxes.
PIPELINE = ["--preset", "baseline.mask-noise", "--seed", "11", "--quiet"]


def make_dataset(folder: Path, names: list[str] = NAMES) -> tuple[Path, Path]:
    """Tiny images and a detections file with one person box each: ``(image folder, detections)``."""
    images = folder / "in"
    images.mkdir(parents=True)
    entries = []
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (40, 32, 3), dtype=np.uint8)).save(images / name)
        entries.append({"file": name, "persons": [{"box": [4, 6, 28, 38], "score": 1.0}], "faces": []})
    detections = folder / "detections.json"
    detections.write_text(json.dumps({"images": entries}))
    return images, detections


def anonymize(*args: object) -> Result:
    return CliRunner().invoke(cli, ["anonymize", *map(str, args)], catch_exceptions=False)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every output file under ``folder`` (the manifest aside)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.jsonl"
    }


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


# ---------------------------------------------------------------------------- determinism per item
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """The dataset and the bytes the local engine writes for it (all files, in order)."""
    folder = tmp_path_factory.mktemp("dataset")
    images, detections = make_dataset(folder)
    result = anonymize(images, "-o", folder / "reference", "--detections", detections, *PIPELINE)
    assert result.exit_code == 0, result.output
    return images, detections, digests(folder / "reference")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
def test_a_file_gets_the_same_bytes_in_any_order_or_subset(dataset, tmp_path_factory, chosen) -> None:
    images, detections, reference = dataset
    out = tmp_path_factory.mktemp("subset") / "out"
    result = anonymize(*(images / name for name in chosen), "-o", out, "--detections", detections, *PIPELINE)
    assert result.exit_code == 0, result.output
    assert digests(out) == {name: reference[name] for name in chosen}


def test_the_noise_differs_between_files_and_seeds(dataset, tmp_path) -> None:
    """Per-item seeding is not one fixed pattern: other names and other seeds give other noise."""
    images, detections, reference = dataset
    pixels = [np.asarray(Image.open(images / n))[6:38, 4:28] for n in NAMES[:2]]
    assert reference[NAMES[0]] != reference[NAMES[1]]
    out = tmp_path / "out"
    seed = [*PIPELINE[:2], "--seed", "12", "--quiet"]
    assert anonymize(images / NAMES[0], "-o", out, "--detections", detections, *seed).exit_code == 0
    assert digests(out)[NAMES[0]] != reference[NAMES[0]]
    assert not np.array_equal(pixels[0], np.asarray(Image.open(out / NAMES[0]))[6:38, 4:28])


# ---------------------------------------------------------------------------- manifest, resume, overwrite
def test_manifest_lists_every_input_once_with_its_hashes(tmp_path) -> None:
    images, detections = make_dataset(tmp_path, NAMES[:3])
    (images / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = anonymize(images, "-o", out, "--detections", detections, "--continue-on-error", *PIPELINE)
    assert result.exit_code == 1
    records = {r["name"]: r for r in manifest(out)}
    assert sorted(records) == sorted([*NAMES[:3], "broken.png"])
    assert records["broken.png"]["status"] == "failed" and "broken.png" in records["broken.png"]["error"]
    assert not (out / "broken.png").exists()
    for name in NAMES[:3]:
        record = records[name]
        assert record["status"] == "done" and record["error"] == ""
        assert record["size"] == (images / name).stat().st_size
        assert record["sha256"] == hashlib.sha256((images / name).read_bytes()).hexdigest()
        assert record["output_sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()


def test_stopping_at_a_failure_still_lists_every_input(tmp_path) -> None:
    images, detections = make_dataset(tmp_path, ["b.png", "c.png"])
    (images / "a.png").write_bytes(b"")
    out = tmp_path / "out"
    assert anonymize(images, "-o", out, "--detections", detections, *PIPELINE).exit_code == 1
    records = manifest(out)
    assert [r["name"] for r in records] == ["a.png", "b.png", "c.png"]
    assert [r["status"] for r in records] == ["failed"] * 3 and "not processed" in records[1]["error"]


def test_existing_outputs_are_refused_before_any_work_unless_overwrite(tmp_path) -> None:
    images, detections = make_dataset(tmp_path, NAMES[:2])
    out = tmp_path / "out"
    out.mkdir()
    (out / NAMES[1]).write_bytes(b"someone else's file")
    result = CliRunner().invoke(cli, ["anonymize", str(images), "-o", str(out), "--detections", str(detections), *PIPELINE])
    assert result.exit_code != 0 and "already exist" in result.output and "--overwrite" in result.output
    assert not (out / NAMES[0]).exists() and (out / NAMES[1]).read_bytes() == b"someone else's file"
    assert anonymize(images, "-o", out, "--detections", detections, "--overwrite", *PIPELINE).exit_code == 0
    assert (out / NAMES[1]).read_bytes() != b"someone else's file"


def test_resume_skips_complete_inputs_and_redoes_the_rest(tmp_path) -> None:
    images, detections = make_dataset(tmp_path, NAMES[:3])
    out = tmp_path / "out"
    assert anonymize(images, "-o", out, "--detections", detections, *PIPELINE).exit_code == 0
    first = digests(out)
    # A killed run: one output lost, one corrupted, a temporary file left behind.
    (out / NAMES[0]).unlink()
    (out / NAMES[1]).write_bytes(b"truncated")
    stray = out / f".{Path(NAMES[2]).stem}.abcd1234.part.png"
    stray.write_bytes(b"half")
    untouched = (out / NAMES[2]).stat().st_mtime_ns
    result = anonymize(images, "-o", out, "--detections", detections, "--resume", *PIPELINE)
    assert result.exit_code == 0, result.output
    assert "1 input(s) already done, 2 to do" in result.output
    assert digests(out) == first and not stray.exists()
    assert (out / NAMES[2]).stat().st_mtime_ns == untouched
    assert sorted(r["name"] for r in manifest(out)) == NAMES[:3]
    # Other settings are not "complete": resuming with another seed redoes everything, replacing
    # the outputs the manifest records as this run's (a file it does not record stays refused).
    other = [*PIPELINE[:2], "--seed", "99", "--quiet"]
    result = anonymize(images, "-o", out, "--detections", detections, "--resume", *other)
    assert result.exit_code == 0 and "already done" not in result.output
    assert all(digests(out)[name] != first[name] for name in NAMES[:3])
    (images / "new.png").write_bytes((images / NAMES[0]).read_bytes())
    (out / "new.png").write_bytes(b"not ours")
    result = anonymize(images, "-o", out, "--detections", detections, "--resume", *other)
    assert result.exit_code != 0 and "new.png" in result.output and (out / "new.png").read_bytes() == b"not ours"


def test_sigterm_removes_the_temporary_file(tmp_path) -> None:
    from sganon.core.atomic import atomic_output
    from sganon.core.interrupt import Interrupted, signals_interrupt

    with signals_interrupt():
        with pytest.raises(Interrupted) as raised:
            with atomic_output(tmp_path / "a.png") as temporary:
                temporary.write_bytes(b"half an image")
                os.kill(os.getpid(), signal.SIGTERM)
    assert raised.value.exit_code == 143 and list(tmp_path.iterdir()) == []


def test_ray_engine_without_ray_names_the_extra(tmp_path, monkeypatch) -> None:
    images, detections = make_dataset(tmp_path, NAMES[:1])
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(
        cli, ["anonymize", str(images), "-o", str(tmp_path / "out"), "--engine", "ray", *PIPELINE]
    )
    assert result.exit_code != 0 and "sganon[ray]" in result.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- Ray
#: A fault-injecting plugin for the killed-worker test: its generator is `mask-out` (noise), but
#: the process that first creates FLAG exits at its second call, as a killed worker would.
CRASH_PLUGIN = """
import os

from sganon.core import MODELS
from sganon.plugins.baselines.anonymizers import MaskOut


@MODELS.register_module()
class CrashingMaskOut(MaskOut):
    name = "crashing-mask-out"

    def __init__(self, fill="noise", flag="", after=2):
        super().__init__(fill)
        self.flag, self.after, self.calls = flag, after, 0

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        self.calls += 1
        if self.calls == self.after:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass  # another worker already died for this run: this one goes on
            else:
                os._exit(1)
        return super().anonymize(batch, z, truncation, rng)
"""


@pytest.fixture(scope="module")
def crash_site(tmp_path_factory) -> Path:
    """A folder holding the crash plugin as an installed distribution (entry point included),
    so that Ray's worker processes load it like any plugin; the driver imports it too."""
    import importlib

    from tests.test_plugins import make_distribution

    site = make_distribution(tmp_path_factory.mktemp("crash_site"), "crashplug", "crashplug_module", CRASH_PLUGIN)
    sys.path.insert(0, str(site))
    importlib.import_module("crashplug_module")
    return site


@pytest.fixture(scope="module")
def local_ray(crash_site):
    """A small Ray cluster on this machine, loopback only, shut down after the module; its
    workers find the crash plugin (PYTHONPATH)."""
    ray = pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[dev]')")
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(crash_site), previous]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def test_ray_gives_the_local_engines_bytes_detections_and_manifest(local_ray, tmp_path) -> None:
    images, detections = make_dataset(tmp_path)
    (images / "broken.png").write_bytes(b"not a png")
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        flags = ["--workers", "2"] if engine == "ray" else ["--continue-on-error"]
        export = tmp_path / f"{engine}.json"
        result = anonymize(
            images, "-o", out, "--detections", detections, "--export-detections", export, "--engine", engine,
            *flags, *PIPELINE,
        )
        assert result.exit_code == 1, result.output  # broken.png failed
        runs[engine] = (digests(out), export.read_text(), sorted(manifest(out), key=lambda r: r["name"]))
        assert leftovers(out) == []
    assert runs["ray"][0] == runs["local"][0] and len(runs["ray"][0]) == len(NAMES)
    assert runs["ray"][1] == runs["local"][1]
    assert runs["ray"][2] == runs["local"][2]


def test_ray_run_survives_a_killed_worker_and_resume_does_no_work(local_ray, tmp_path) -> None:
    images, detections = make_dataset(tmp_path)
    flag = tmp_path / "a-worker-died"
    config = tmp_path / "crash.py"  # the pipeline of PIPELINE, with the fault-injecting generator
    config.write_text(f"anonymizer = dict(generator=dict(type='CrashingMaskOut', fill='noise', flag={str(flag)!r}))\n")
    crashing = ["--config", config, *PIPELINE[2:]]
    out = tmp_path / "out"
    args = [images, "-o", out, "--detections", detections, *crashing]
    result = anonymize(*args, "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert flag.exists()  # a worker did exit mid-run
    records = manifest(out)
    assert sorted(r["name"] for r in records) == NAMES and {r["status"] for r in records} == {"done"}
    assert leftovers(out) == []
    reference = tmp_path / "reference"  # the plain noise baseline, in this process
    assert anonymize(images, "-o", reference, "--detections", detections, *PIPELINE).exit_code == 0
    assert digests(out) == digests(reference)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "manifest.jsonl"}
    result = anonymize(*args, "--engine", "ray", "--workers", "2", "--resume")
    assert result.exit_code == 0, result.output
    assert f"{len(NAMES)} input(s) already done, 0 to do" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "manifest.jsonl"} == before
