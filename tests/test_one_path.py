"""One path from names to a running pipeline: the web page, the CLI (and Ray, in
test_engines.py) run the same specification and give the same bytes."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from sganon.cli.main import cli
from sganon.core import hookimpl
from sganon.core.plugins import plugin_manager

pytest.importorskip("fastapi", reason="the 'serve' extra is part of '.[dev]'")
from fastapi.testclient import TestClient  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "docs" / "examples" / "astronaut.jpg"
#: A pipeline preset with options of its own, whose parts need no weights: feathered edges
#: and detection-order paste change the output bytes, so a front end that loses them fails.
FEATHERED = "test.feathered"


def feathered_presets() -> list[dict]:
    return [
        {"name": "test.offline-detector", "kind": "detector", "component": "offline"},
        {"name": "test.bones", "kind": "embedder", "component": "bones"},
        {
            "name": FEATHERED,
            "kind": "pipeline",
            "parts": {"detector": "test.offline-detector", "embedder": "test.bones", "generator": "baseline.blur"},
            "options": {"feather": 9, "paste_order": "detection"},
        },
    ]


@pytest.fixture
def feathered_preset():
    """A plugin (registered through the plugin manager, as entry points are) adding the presets above."""
    plugin = types.ModuleType("feathered_test_plugin")
    plugin.sganon_presets = hookimpl(feathered_presets)  # type: ignore[attr-defined]
    hooks = plugin_manager().hooks
    hooks.register(plugin, name="feathered-test")
    try:
        yield FEATHERED
    finally:
        hooks.unregister(plugin)


def page_result(root: Path, preset: str, seed: int) -> bytes:
    from sganon.serve.app import create_app

    with TestClient(create_app(root=root)) as client:
        upload = client.post("/api/uploads", params={"name": PHOTO.name}, content=PHOTO.read_bytes()).json()
        run = client.post(f"/api/uploads/{upload['id']}/runs", json={"preset": preset, "seed": seed}).json()
        deadline = time.monotonic() + 300
        while (status := client.get(f"/api/runs/{run['id']}").json())["state"] not in ("done", "error"):
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.2)
        assert status["state"] == "done", status["message"]
        return client.get(f"/api/runs/{run['id']}/files/result").content


def test_web_page_and_cli_give_the_same_bytes_for_a_preset_with_options_of_its_own(feathered_preset, tmp_path):
    seed = 5
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli, ["anonymize", str(PHOTO), "-o", str(out), "--preset", feathered_preset, "--seed", str(seed),
              "--ext", "png", "--quiet"], catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    cli_bytes = (out / "astronaut.png").read_bytes()
    page_bytes = page_result(tmp_path / "page", feathered_preset, seed)
    assert page_bytes == cli_bytes
    # The preset's options do matter: without them (the CLI with the blur preset alone) the bytes differ.
    plain = tmp_path / "plain"
    result = CliRunner().invoke(
        cli, ["anonymize", str(PHOTO), "-o", str(plain), "--preset", "baseline.blur", "--seed", str(seed),
              "--ext", "png", "--quiet"], catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert (plain / "astronaut.png").read_bytes() != cli_bytes


# ------------------------------------------------------------------------------ the spec
from dataclasses import replace  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sganon.core.build import build_config, write_config  # noqa: E402
from sganon.core.spec import CONFIG, FLAG, PRESET, OptionFlags, PartChoice, resolve_spec, spec_to_config  # noqa: E402


def what_runs(spec):
    """The parts (component, arguments, weights, preset) and the options; not where each came
    from, which a config file changes to "config file"."""
    parts = {role: None if part is None else replace(part, source="") for role, part in spec.parts().items()}
    return parts, spec.embedder_from_detector, spec.generator_label, spec.options


def write_spec(spec, path: Path) -> Path:
    from mmengine.config import Config

    return write_config(Config({"profile": spec.profile, "anonymizer": spec_to_config(spec)}), path)


@pytest.mark.parametrize(
    "generator, embedder, profile",
    [("pixelate", "bones", "paper"), ("vsam.fba-configE", "cse", "paper"), ("vsam", "cse", "tiny"), ("baseline.blur", "bones", "paper"), ("vsam", "cse", "paper")],
)
def test_a_build_spec_round_trips_through_its_config(tmp_path, generator, embedder, profile):
    spec = resolve_spec(PartChoice(generator=generator, embedder=embedder), profile=profile, for_build=True)
    path = write_config(build_config(generator, embedder, profile=profile).config, tmp_path / "cfg.py")
    again = resolve_spec(config=path)
    assert what_runs(again) == what_runs(spec)
    assert set(again.option_sources.values()) == {CONFIG}


PRESETS = ["sganon.fba-cse", "vsam.fba-configE", "baseline.mask-noise", "baseline.pixelate-8"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    preset=st.sampled_from(PRESETS),
    seed=st.none() | st.integers(0, 2**40),
    truncation=st.none() | st.floats(0, 1),
    feather=st.none() | st.integers(0, 64),
    verify=st.none() | st.booleans(),
    detector=st.sampled_from([None, "none", "offline"]),
)
def test_an_anonymize_spec_round_trips_through_a_config(tmp_path, preset, seed, truncation, feather, verify, detector):
    """Whatever is named and given, the config a spec writes reads back to the same run: parts,
    weights and every option (a pipeline preset's own options included)."""
    flags = OptionFlags(seed=seed, truncation=truncation, feather=feather, verify=verify)
    spec = resolve_spec(PartChoice(preset=preset, detector=detector), flags)
    again = resolve_spec(config=write_spec(spec, tmp_path / "spec.py"))
    assert what_runs(again) == what_runs(spec)


def test_option_sources_rise_from_default_to_preset_to_flag_and_policy():
    spec = resolve_spec(PartChoice(preset="sganon.fba-cse"), OptionFlags(seed=4, truncation=0.5), detections_given=True)
    assert (spec.options.truncation, spec.option_sources["truncation"]) == (0.5, FLAG)
    assert (spec.options.paste_order, spec.option_sources["paste_order"]) == ("detection", PRESET)
    assert (spec.options.face_margin, spec.option_sources["face_margin"]) == (0.0, "policy")
    assert spec.option_sources["batch_size"] == "default" and spec.detector is None
    # The preset's detector and embedder are one model (one copy of the weights).
    assert resolve_spec(PartChoice(preset="sganon.fba-cse")).embedder_from_detector


def test_re_used_face_boxes_are_not_grown_again_with_a_config_either(tmp_path):
    """A config holds every option (face_margin 0.2 too); re-used detections' face boxes are the
    replaced regions already, so the policy wins over the config (flags win over both)."""
    path = write_config(build_config("pixelate", "bones").config, tmp_path / "cfg.py")
    spec = resolve_spec(config=path, detections_given=True, flags=OptionFlags(seed=3))
    assert (spec.options.face_margin, spec.option_sources["face_margin"]) == (0.0, "policy")
    assert (spec.options.seed, spec.option_sources["seed"]) == (3, FLAG)
    assert spec.option_sources["batch_size"] == CONFIG and spec.detector is None and spec.face_detector is None
    assert resolve_spec(config=path).options.face_margin == 0.2
    from sganon.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--config names the pipeline's parts; drop --preset"):
        resolve_spec(PartChoice(preset="baseline.blur"), config=path)


def test_the_web_page_and_the_cli_resolve_the_same_spec_for_the_paper_pipeline():
    """The web page's choice of `sganon.fba-cse` gives the spec of `sganon anonymize --visualize
    --preset sganon.fba-cse --seed 7` (no weights are needed to resolve it)."""
    from sganon.serve.pipeline_adapter import PipelineAdapter, RunOptions

    page = PipelineAdapter().spec(RunOptions(preset="sganon.fba-cse", seed=7))
    cli_spec = resolve_spec(PartChoice(preset="sganon.fba-cse"), OptionFlags(seed=7, verify=True, device="cpu"),
                            visualize=True)
    assert page == cli_spec
    assert page.options.truncation == 0.0 and page.options.paste_order == "detection"


# ------------------------------------------------------------------------------ the one loop over jobs
def test_the_loop_adds_each_jobs_result_whole_and_stops_at_the_first_failure(tmp_path):
    """FileAnonymizer.run and the local engine share runners.run_jobs: every field of each
    job's result is added (re-found faces too), and without --continue-on-error it stops."""
    import numpy as np
    from PIL import Image

    from sganon.core.anonymizer import Anonymizer
    from sganon.core.assembly import assemble_spec
    from sganon.core.jobs import Job
    from sganon.core.runners import FileAnonymizer, RunResult, RunSettings, run_jobs

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(np.full((24, 20, 3), 90, np.uint8)).save(inputs / name)
    (inputs / "b.png").write_bytes(b"not a png")
    jobs = [Job("image", inputs / name, name) for name in ("a.png", "b.png", "c.png")]
    spec = resolve_spec(PartChoice(preset="baseline.blur", detector="none", face_detector="none"))
    runner = FileAnonymizer(Anonymizer(assemble_spec(spec), spec.options), tmp_path / "out", RunSettings(export=True))
    seen = []
    stopped = run_jobs(runner, jobs, on_result=lambda job, part: seen.append((job.name, len(part.failed))))
    assert seen == [("a.png", 0), ("b.png", 1)] and len(stopped.written) == 1 and len(stopped.detections) == 1
    whole = runner.run(jobs, continue_on_error=True)
    assert [p.name for p in whole.written] == ["a.png", "c.png"] and [p.name for p, _ in whole.failed] == ["b.png"]
    assert len(whole.timings) == 2 and len(whole.detections) == 2

    total = RunResult()
    total.add(RunResult(notices=["x"], refound=2))
    total.add(RunResult(notices=["y"], refound=3))
    assert total.notices == ["x", "y"] and total.refound == 5
