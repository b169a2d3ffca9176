"""registry.yaml: every preset parses and names something real; pipeline presets; errors."""

from __future__ import annotations

import pytest

from sganon.core import PresetError, WeightsError
from sganon.core.components import component_class
from sganon.core.presets import PIPELINE, all_presets, load_registry_file, parse_preset


def test_every_preset_names_a_registered_component():
    for name, preset in all_presets().items():
        if preset.kind == PIPELINE:
            continue
        assert component_class(preset.kind, preset.component), name
        if preset.weights is not None:
            assert preset.weights.url.startswith("https://") and preset.weights.licence


def test_the_paper_pipeline_combines_cse_and_vsam():
    pipeline = all_presets()["sganon.fba-cse"]
    assert pipeline.kind == PIPELINE
    assert pipeline.parts["generator"] == "vsam.fba-configE"
    assert all_presets()[pipeline.parts["embedder"]].component == "cse"
    assert all_presets()["vsam.fba-configE"].expects_embedder == "cse"


def test_pipeline_presets_need_all_parts():
    with pytest.raises(PresetError, match="parts"):
        parse_preset("p", {"kind": "pipeline", "parts": {"generator": "x"}}, "test")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"component": "x"}, "kind"),
        ({"kind": "teleporter", "component": "x"}, "teleporter"),
        ({"kind": "generator", "component": "x", "weights": {"url": "u"}}, "weights need"),
        ({"kind": "generator", "component": "x", "weights": {"url": "u", "format": "f", "licence": "l", "sha256": "abc"}}, "sha256"),
    ],
)
def test_malformed_presets_are_refused(data, message):
    with pytest.raises(PresetError, match=message):
        parse_preset("bad", data, "test")


def test_malformed_registry_file(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("presets: [1, 2]\n")
    with pytest.raises(PresetError, match="mapping"):
        load_registry_file(path)
    path.write_text("presets: {a: {kind: generator\n")
    with pytest.raises(PresetError, match="cannot read"):
        load_registry_file(path)


def test_pipeline_presets_are_pulled_not_imported(tmp_path, monkeypatch):
    from sganon.core.weight_cache import import_weights

    monkeypatch.setenv("SGANON_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="pipeline preset"):
        import_weights("sganon.fba-cse", __file__)


def test_anonymize_with_the_pipeline_preset_names_the_missing_weights(tmp_path, monkeypatch):
    from sganon.core.assembly import assemble

    monkeypatch.setenv("SGANON_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="sganon weights"):
        assemble(preset="sganon.fba-cse")
