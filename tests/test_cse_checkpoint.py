"""Loading DensePose-CSE weights: official model-zoo ``.pkl`` files through the restricted
unpickler (strict: every tensor present with its shape), state dicts, our safetensors
export, and the plugin's weight-converter hook."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sganon.core.errors import ConfigError, WeightsError
from sganon.core.presets import Preset
from sganon.plugins.cse import CSEEmbedder, DensePoseCSE, load_densepose_checkpoint, save_safetensors
from sganon.plugins.cse.components import TINY_OVERRIDES
from sganon.plugins.cse.config import CSEConfig
from sganon.plugins.cse.hooks import convert_densepose_pickle

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KEY_LISTING = SHARED / "reference" / "cse" / "full_key_listing.json"


def key_listing() -> dict:
    if not KEY_LISTING.is_file():
        pytest.skip(f"the full-size key listing {KEY_LISTING} is missing")
    return json.loads(KEY_LISTING.read_text())


def write_pickle(path: Path, data: dict, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=protocol)
    return path


def tiny_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays in detectron2 names for the tiny R50 configuration."""
    with torch.device("meta"):
        model = DensePoseCSE(CSEConfig.resolve("R50_FPN", TINY_OVERRIDES))
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(tuple(t.shape)).astype(np.float32) for name, t in model.state_dict().items()}


@pytest.fixture(scope="module")
def full_r101_arrays() -> dict[str, np.ndarray]:
    """Random arrays for every tensor of the full-size R101_FPN_DL model, from the official key listing."""
    rng = np.random.default_rng(0)
    return {
        entry["key"]: rng.standard_normal(tuple(entry["shape"]), dtype=np.float32)
        for entry in key_listing()["R101_FPN_DL"]
    }


@pytest.mark.parametrize("config", ["R101_FPN_DL", "R50_FPN"])
def test_architecture_has_exactly_the_official_keys(config):
    with torch.device("meta"):
        state = DensePoseCSE(CSEConfig.base(config)).state_dict()
    listing = key_listing()[config]
    assert [(name, list(t.shape)) for name, t in state.items()] == [(e["key"], e["shape"]) for e in listing]


def test_full_size_r101_pickle_loads_strictly(tmp_path, full_r101_arrays):
    path = write_pickle(tmp_path / "model_final.pkl", {"model": full_r101_arrays, "__author__": "Detectron2 Model Zoo"})
    model = load_densepose_checkpoint(path, "R101_FPN_DL")
    state = model.state_dict()
    assert len(state) == 612 == len(full_r101_arrays)
    for name in ("backbone.bottom_up.res4.22.conv3.norm.running_var", "roi_heads.densepose_head.ASPP.convs.3.0.weight",
                 "roi_heads.densepose_predictor.embed_lowres.weight", "roi_heads.embedder.embedder_smpl_27554.features"):
        assert np.array_equal(state[name].numpy(), full_r101_arrays[name])
    table = model.mesh_vertex_embeddings
    assert table.shape == (27554, 16)
    assert torch.allclose(table.norm(dim=1), torch.ones(27554), atol=1e-5)


def test_full_size_pickle_missing_a_tensor_is_refused(tmp_path, full_r101_arrays):
    missing = "backbone.bottom_up.res4.17.conv2.norm.running_mean"
    arrays = {name: value for name, value in full_r101_arrays.items() if name != missing}
    path = write_pickle(tmp_path / "model_final.pkl", {"model": arrays, "__author__": "Detectron2 Model Zoo"})
    with pytest.raises(WeightsError, match=missing.replace(".", r"\.")):
        load_densepose_checkpoint(path, "R101_FPN_DL")


def test_pickle_with_an_arbitrary_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "was-run"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = write_pickle(tmp_path / "evil.pkl", {"model": {"x": Payload()}, "__author__": "someone"})
    with pytest.raises(WeightsError, match="refused to unpickle"):
        load_densepose_checkpoint(path, "R50_FPN", TINY_OVERRIDES)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_pickle_protocol_loads(tmp_path, protocol):
    arrays = tiny_state_dict()
    path = write_pickle(tmp_path / "m.pkl", {"model": arrays, "__author__": "x"}, protocol)
    model = load_densepose_checkpoint(path, "R50_FPN", TINY_OVERRIDES)
    name = "roi_heads.densepose_predictor.coarse_segm_lowres.weight"
    assert np.array_equal(model.state_dict()[name].numpy(), arrays[name])


def test_what_detectron2_ignores_is_ignored(tmp_path):
    """A ``module.`` prefix on every key, float16 arrays, pixel mean/std, anchors and BN counters."""
    arrays = {f"module.{name}": value.astype(np.float16) for name, value in tiny_state_dict().items()}
    arrays["module.pixel_mean"] = np.zeros((3, 1, 1), np.float32)
    arrays["module.proposal_generator.anchor_generator.cell_anchors.0"] = np.zeros((3, 4), np.float32)
    arrays["module.backbone.bottom_up.stem.conv1.norm.num_batches_tracked"] = np.zeros((), np.int64)
    path = write_pickle(tmp_path / "m.pkl", {"model": arrays, "__author__": "x", "matching_heuristics": True})
    model = load_densepose_checkpoint(path, "R50_FPN", TINY_OVERRIDES)
    weight = model.state_dict()["backbone.fpn_output2.weight"]
    assert weight.dtype == torch.float32
    assert np.array_equal(weight.numpy(), arrays["module.backbone.fpn_output2.weight"].astype(np.float32))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {}}, "__author__"),
        ({"blobs": {}, "__author__": "Caffe2"}, "'model' dict"),
        ([1, 2, 3], "'model' dict"),
        ({"model": {"a": "text"}, "__author__": "x"}, "expected a real-valued numpy array"),
        ({"model": {"a": np.array([object()], dtype=object)}, "__author__": "x"}, "refused to unpickle"),
    ],
)
def test_malformed_pickles_are_refused(tmp_path, data, message):
    path = write_pickle(tmp_path / "bad.pkl", data)
    with pytest.raises(WeightsError, match=message):
        load_densepose_checkpoint(path, "R50_FPN", TINY_OVERRIDES)


def test_truncated_file_is_refused(tmp_path):
    path = write_pickle(tmp_path / "m.pkl", {"model": tiny_state_dict(), "__author__": "x"})
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="cannot read"):
        load_densepose_checkpoint(path, "R50_FPN", TINY_OVERRIDES)


def test_wrong_shape_and_extra_key_are_named():
    arrays = tiny_state_dict()
    arrays["roi_heads.box_head.fc2.weight"] = np.zeros((3, 3), np.float32)
    arrays["roi_heads.mask_head.predictor.weight"] = np.zeros((1,), np.float32)
    with pytest.raises(WeightsError) as error:
        load_densepose_checkpoint(arrays, "R50_FPN", TINY_OVERRIDES)
    assert "roi_heads.box_head.fc2.weight: checkpoint (3, 3), model (16, 16)" in str(error.value)
    assert "roi_heads.mask_head.predictor.weight" in str(error.value)


def test_config_mismatch_is_a_weights_error():
    """Tiny weights against the full-size R50 architecture: every mis-shaped tensor is reported."""
    with pytest.raises(WeightsError, match="wrong shape"):
        load_densepose_checkpoint(tiny_state_dict(), "R50_FPN")
    with pytest.raises(ConfigError, match="unknown CSE config"):
        load_densepose_checkpoint(tiny_state_dict(), "R18")


def test_safetensors_export_round_trips(tmp_path):
    model = load_densepose_checkpoint(tiny_state_dict(), "R50_FPN", TINY_OVERRIDES)
    path = tmp_path / "cse.safetensors"
    save_safetensors(model, path)
    loaded = load_densepose_checkpoint(path)  # the configuration comes from the file
    assert loaded.config == model.config
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    assert not list(tmp_path.glob("*.tmp"))


def test_weight_converter_hook(tmp_path):
    from sganon.core.plugins import hooks

    converters = {}
    for result in hooks().sganon_weight_converters():
        converters.update(result)
    assert converters["densepose-pkl"] is convert_densepose_pickle
    arrays = tiny_state_dict(seed=3)
    path = write_pickle(tmp_path / "m.pkl", {"model": arrays, "__author__": "x"})
    preset = Preset(name="t", kind="embedder", component="cse", args={"variant": "R50_FPN", "overrides": TINY_OVERRIDES})
    tensors, args = convert_densepose_pickle(str(path), preset)
    assert args["variant"] == "R50_FPN" and args["overrides"] == TINY_OVERRIDES
    embedder = CSEEmbedder(**args, device="cpu")
    embedder.load_state_dict(tensors, strict=True)
    name = "roi_heads.embedder.embedder_smpl_27554.embeddings"
    assert np.array_equal(embedder.state_dict()[name].numpy(), arrays[name])
    with pytest.raises(WeightsError, match="wrong shape"):
        convert_densepose_pickle(str(path), Preset(name="t", kind="detector", component="cse", args={}))


def test_component_loads_weights_from_a_file(tmp_path):
    arrays = tiny_state_dict(seed=4)
    path = write_pickle(tmp_path / "m.pkl", {"model": arrays, "__author__": "x"})
    embedder = CSEEmbedder(variant="R50_FPN", overrides=TINY_OVERRIDES, weights=str(path), device="cpu")
    name = "backbone.bottom_up.res3.1.conv2.weight"
    assert np.array_equal(embedder.state_dict()[name].numpy(), arrays[name])
