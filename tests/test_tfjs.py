"""The TF.js reader (plugins/offline/tfjs.py) and NanoDet's person boxes (plugins/offline/nanodet.py).

TensorFlow.js's own outputs of the bundled NanoDet on the cases of tests/vector_cases.py were
recorded once into tests/vectors/nanodet.npz by benchmarks/record_tfjs_vectors.py. The torch
engine reaches them within 1e-5 (measured on bus.jpg's input); the tolerances below allow the
float16 storage of the recorded probabilities (2e-3) and 1e-3 on the raw box logits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sganon.core.errors import ConfigError, PluginError
from sganon.plugins.offline import nanodet, tfjs
from sganon.plugins.offline.detectors import OfflinePersonDetector
from sganon.plugins.offline.tflite import OnnxRunner
from vector_cases import CASES, case_image

VECTORS = np.load(Path(__file__).parent / "vectors" / "nanodet.npz")
CLASSES = (0, 2, 56)  # as recorded (benchmarks/record_tfjs_vectors.py)


@pytest.fixture(scope="module")
def finder() -> nanodet.NanoDetPersons:
    return nanodet.NanoDetPersons()


@pytest.fixture(scope="module")
def torch_module() -> tfjs.TfjsModule:
    return tfjs.TfjsModule(nanodet.MODEL).eval()


@pytest.mark.parametrize("name", list(CASES))
def test_nanodet_matches_tensorflow_js(name: str, finder: nanodet.NanoDetPersons, torch_module: tfjs.TfjsModule) -> None:
    """Both engines: the graph in torch (CUDA's path) and traced to onnxruntime (the CPU's)."""
    image = case_image(name)
    if image is None:
        pytest.skip(f"needs {CASES[name][0]} (../shared/data)")
    pixels, _ = finder.letterbox(image)
    assert isinstance(finder.model, OnnxRunner)
    for model in (torch_module, finder.model):
        with torch.no_grad():
            scores, distances = nanodet.heads(model(pixels[None]))
        reference = VECTORS[f"{name}/scores"].astype(np.float32)
        np.testing.assert_allclose(scores[0][:, list(CLASSES)].numpy(), reference, atol=2e-3)
        cells = VECTORS[f"{name}/cells"]
        np.testing.assert_allclose(distances[0][cells].numpy(), VECTORS[f"{name}/distances"], atol=1e-3)


def test_the_astronaut_is_one_person_and_stays_one_when_the_frame_cuts_her(finder: nanodet.NanoDetPersons) -> None:
    """A real photo: one strong box around the astronaut; cut below the chin and by the left
    edge (no face left), her body is still a person box with a probability to keep."""
    from skimage import data

    image = np.asarray(data.astronaut())
    found = finder.find(image)
    assert len(found) == 1 and found[0][1] >= 0.6
    box = found[0][0]  # she fills x 20-360 and y 20-512
    assert box.x0 < 60 and box.x1 > 330 and box.y0 < 60 and box.y1 > 480
    cut = np.ascontiguousarray(image[200:, 180:])  # chin and left half gone
    assert any(box.x0 <= 5 and box.height >= 250 and score >= 0.4 for box, score in finder.find(cut))


def test_a_letterboxed_image_keeps_its_proportions(finder: nanodet.NanoDetPersons) -> None:
    image = np.full((100, 300, 3), 255, np.uint8)
    pixels, scale = finder.letterbox(image)
    assert pixels.shape == (3, 416, 416) and scale == pytest.approx(416 / 300)
    white = (255 - torch.tensor(nanodet.MEAN_BGR).view(3, 1)) / torch.tensor(nanodet.STD_BGR).view(3, 1)
    assert torch.allclose(pixels[:, :139].reshape(3, -1), white, atol=1e-4)
    assert not pixels[:, 139:].any()  # the rest is the mean colour (zero after normalisation)


@settings(max_examples=50, deadline=None)
@given(
    cell=st.integers(0, 52 * 52 + 26 * 26 + 13 * 13 - 1),
    sides=st.lists(st.integers(0, 10), min_size=4, max_size=4),
    score=st.floats(0.0, 1.0),
)
def test_a_sure_distribution_decodes_to_its_distances(cell: int, sides: list[int], score: float) -> None:
    """One cell whose logits put all weight on distance ``d`` per side: its box is the cell's
    centre minus/plus ``d`` strides; cells under the threshold are not decoded."""
    count = 52 * 52 + 26 * 26 + 13 * 13
    scores = torch.zeros(count)
    scores[cell] = score
    logits = torch.full((count, 4, nanodet.BINS), -50.0)
    for side, d in enumerate(sides):
        logits[cell, side, d] = 50.0
    found = nanodet.decode(scores, logits.view(count, -1), min_score=0.5)
    if score < 0.5:
        assert found == []
        return
    (box, got), = found
    stride = 8 if cell < 52 * 52 else 16 if cell < 52 * 52 + 26 * 26 else 32
    first = {8: 0, 16: 52 * 52, 32: 52 * 52 + 26 * 26}[stride]
    row, column = divmod(cell - first, 416 // stride)
    cx, cy = (column + 0.5) * stride, (row + 0.5) * stride
    expected = (cx - sides[0] * stride, cy - sides[1] * stride, cx + sides[2] * stride, cy + sides[3] * stride)
    assert box == pytest.approx(expected, abs=1e-3) and got == pytest.approx(score)


@settings(max_examples=50, deadline=None)
@given(
    corners=st.tuples(st.floats(-50, 450), st.floats(-50, 450), st.floats(-50, 450), st.floats(-50, 450)),
    height=st.integers(1, 2000),
    width=st.integers(1, 2000),
)
def test_boxes_return_to_the_image_inside_it(corners: tuple[float, float, float, float], height: int, width: int) -> None:
    """A box on the letterboxed input maps to the image by the letterbox's scale, outward to
    whole pixels, and clipped to the image (an empty one is dropped)."""
    scale = 416 / max(height, width)
    found = nanodet.in_image([(corners, 0.7)], scale, height, width)
    x0, y0, x1, y1 = corners
    for box, score in found:
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height and score == 0.7
        assert box.x0 <= max(x0 / scale, 0) + 1e-6 and box.x1 >= min(x1 / scale, width) - 1e-6
    expected_empty = min(math.ceil(x1 / scale), width) <= max(math.floor(x0 / scale), 0) or min(
        math.ceil(y1 / scale), height
    ) <= max(math.floor(y0 / scale), 0)
    assert (found == []) == expected_empty


def test_the_person_detector_checks_its_body_thresholds() -> None:
    with pytest.raises(ConfigError, match="body_min_score"):
        OfflinePersonDetector(body_min_score=0.5, body_keep_score=0.4)
    with pytest.raises(ConfigError, match="body_min_score"):
        OfflinePersonDetector(body_min_score=0.0)


# --- the reader, on a small graph of every supported operator -----------------------------


def write_model(folder: Path, nodes: list[dict], weights: list[tuple[str, np.ndarray, str | None]]) -> Path:
    """A model.json + one shard: ``weights`` are (name, value, quantization dtype or None)."""
    specs, data = [], b""
    for name, value, quantized in weights:
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype.kind == "i" else "float32"}
        if quantized == "float16":
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            data += value.astype(np.float16).tobytes()
        elif quantized == "uint8":
            low, scale = float(value.min()), float(value.max() - value.min()) / 255 or 1.0
            spec["quantization"] = {"dtype": "uint8", "min": low, "scale": scale}
            data += np.round((value - low) / scale).astype(np.uint8).tobytes()
        else:
            data += value.astype(np.int32 if value.dtype.kind == "i" else np.float32).tobytes()
        specs.append(spec)
    (folder / "w.bin").write_bytes(data)
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": specs}],
        "signature": {"outputs": {"out:0": {"name": "out:0"}, "gate:0": {"name": "gate:0"}}},
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def node(name: str, op: str, inputs: list[str] = (), **attrs: object) -> dict:  # type: ignore[assignment]
    return {"name": name, "op": op, "input": list(inputs), "attr": attrs}


def window(strides: int, padding: str) -> dict:
    return {
        "strides": {"list": {"i": ["1", str(strides), str(strides), "1"]}},
        "padding": {"s": b64(padding)},
        "data_format": {"s": b64("NHWC")},
    }


def numpy_conv_same_nhwc(x: np.ndarray, w: np.ndarray, stride: int, groups: int) -> np.ndarray:
    """TensorFlow's Conv2D, SAME padding, NHWC, filter [KH, KW, I/groups, O], by loops."""
    n, h, wid, c = x.shape
    kh, kw, per_group, out = w.shape
    oh, ow = -(-h // stride), -(-wid // stride)
    pad_h = max((oh - 1) * stride + kh - h, 0)
    pad_w = max((ow - 1) * stride + kw - wid, 0)
    padded = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    result = np.zeros((n, oh, ow, out), np.float64)
    outs_per_group = out // groups
    for o in range(out):
        g = o // outs_per_group
        for i in range(oh):
            for j in range(ow):
                patch = padded[:, i * stride : i * stride + kh, j * stride : j * stride + kw, g * per_group : (g + 1) * per_group]
                result[:, i, j, o] = (patch * w[..., o]).sum(axis=(1, 2, 3))
    return result


def test_the_reader_runs_each_operator_as_tensorflow_does(tmp_path: Path) -> None:
    """input [1, 4, 9, 9] NCHW -> Pad (H, W by 1) -> Transpose to NHWC -> grouped Conv2D (SAME,
    stride 2, float16 filter) + bias (uint8) -> LeakyRelu -> MaxPool (SAME 3x3 stride 2) ->
    ResizeBilinear (half-pixel) to 6x6 -> SplitV channels [1, -1] -> Sigmoid of the first,
    ConcatV2 back -> Reshape [1, -1]; a SparseToDense of constants feeds an AddV2 folded at load."""
    rng = np.random.default_rng(0)
    filters = rng.normal(size=(3, 3, 2, 6)).astype(np.float32)
    bias = rng.normal(size=(6,)).astype(np.float32)
    weights = [
        ("filters", filters, "float16"),
        ("bias", bias, "uint8"),
        ("pads", np.array([[0, 0], [0, 0], [1, 1], [1, 1]], np.int32), None),
        ("perm", np.array([0, 2, 3, 1], np.int32), None),
        ("size", np.array([6, 6], np.int32), None),
        ("splits", np.array([1, -1], np.int32), None),
        ("axis", np.array(3, np.int32), None),
        ("shape", np.array([1, -1], np.int32), None),
        ("where", np.array([[1]], np.int32), None),
        ("dense_shape", np.array([3], np.int32), None),
        ("value", np.array([5.0], np.float32), None),
        ("zero", np.array(0.0, np.float32), None),
        ("base", np.array([1.0, 2.0, 3.0], np.float32), None),
    ]
    nodes = [node(name, "Const") for name, _, _ in weights] + [
        node("x", "Placeholder"),
        node("padded", "Pad", ["x", "pads"]),
        node("nhwc", "Transpose", ["padded", "perm"]),
        node("conv", "Conv2D", ["nhwc", "filters"], **window(2, "SAME")),
        node("biased", "Add", ["conv", "bias"]),
        node("leaky", "LeakyRelu", ["biased"], alpha={"f": 0.1}),
        node("pooled", "MaxPool", ["leaky"], ksize={"list": {"i": ["1", "3", "3", "1"]}}, **window(2, "SAME")),
        node("resized", "ResizeBilinear", ["pooled", "size"], half_pixel_centers={"b": True}, align_corners={"b": False}),
        node("split", "SplitV", ["resized", "splits", "axis"], num_split={"i": "2"}),
        node("gate", "Sigmoid", ["split"]),
        node("joined", "ConcatV2", ["gate", "split:1", "axis"]),
        node("out", "Reshape", ["joined", "shape"]),
        node("sparse", "SparseToDense", ["where", "dense_shape", "value", "zero"]),
        node("folded", "AddV2", ["base", "sparse", "^x"]),  # a control edge is ignored
    ]
    module = tfjs.TfjsModule(write_model(tmp_path, nodes, weights))
    assert [n.name for n in module.nodes][-1] == "out" and "folded" not in [n.name for n in module.nodes]
    x = rng.normal(size=(2, 4, 9, 9)).astype(np.float32)  # a batch of 2 (the graph says nothing of it)
    with torch.no_grad():
        out, gate = module(torch.from_numpy(x))

    nhwc = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1)
    bias_levels = np.round((bias - bias.min()) / ((bias.max() - bias.min()) / 255)) * ((bias.max() - bias.min()) / 255) + bias.min()
    conv = numpy_conv_same_nhwc(nhwc, filters.astype(np.float16).astype(np.float64), 2, groups=2) + bias_levels
    leaky = np.where(conv >= 0, conv, 0.1 * conv)  # [2, 6, 6, 6]
    padded = np.pad(leaky, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)  # SAME 3x3/2 on 6: pad 0 + 1
    pooled = np.stack(
        [np.stack([padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(3)], 1) for i in range(3)], 1
    )  # [2, 3, 3, 6]
    src = (np.arange(6) + 0.5) / 2 - 0.5  # half-pixel centres, 3 -> 6
    low = np.clip(np.floor(src).astype(int), 0, 2)
    high = np.clip(low + 1, 0, 2)
    frac = np.clip(src - low, 0, 1)
    rows = pooled[:, low] * (1 - frac)[None, :, None, None] + pooled[:, high] * frac[None, :, None, None]
    resized = rows[:, :, low] * (1 - frac)[None, None, :, None] + rows[:, :, high] * frac[None, None, :, None]
    expected_gate = 1 / (1 + np.exp(-resized[..., :1]))
    expected = np.concatenate([expected_gate, resized[..., 1:]], axis=3).reshape(2, -1)
    np.testing.assert_allclose(gate.numpy(), expected_gate, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)
    with pytest.raises(PluginError, match="whole shape"):  # the Placeholder declares no shape
        tfjs.traced_onnx(module)


def test_the_reader_explains_what_it_cannot_read(tmp_path: Path) -> None:
    weights = [("filters", np.ones((1, 1, 1, 1), np.float32), None)]
    nodes = [node("filters", "Const"), node("x", "Placeholder"), node("out", "Erf", ["x"]), node("gate", "Identity", ["x"])]
    with pytest.raises(PluginError, match="Erf"):
        tfjs.read_graph(write_model(tmp_path, nodes, weights))
    nodes[2] = node("out", "Identity", ["missing"])
    with pytest.raises(PluginError, match="missing"):
        tfjs.read_graph(write_model(tmp_path, nodes, weights))
    nodes[2] = node("out", "Identity", ["gate"])
    nodes[3] = node("gate", "Identity", ["out"])
    with pytest.raises(PluginError, match="cycle"):
        tfjs.read_graph(write_model(tmp_path, nodes, weights))
    path = write_model(tmp_path, [node("filters", "Const"), node("x", "Placeholder")], weights)
    (tmp_path / "w.bin").write_bytes(b"\0")
    with pytest.raises(PluginError, match="truncated"):
        tfjs.read_graph(path)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(PluginError, match="missing"):
        tfjs.read_graph(path)
    path.write_text("{not json")
    with pytest.raises(PluginError, match="not a TF.js graph model"):
        tfjs.read_graph(path)


# --- NanoDet in the person detector: tiles for large pictures ---------------------------


@settings(max_examples=100, deadline=None)
@given(height=st.integers(1, 4000), width=st.integers(1, 4000))
def test_pictures_are_also_seen_in_tiles_of_at_least_half_size_covering_them(height: int, width: int) -> None:
    from sganon.plugins.offline.detectors import (
        BODY_MIN_TILE_SIDE,
        BODY_WHOLE_SIDE,
        SMALL_PICTURE_TILES,
        body_tile_count,
        square_tiles,
    )

    count = body_tile_count(height, width)
    if count == 0:  # only where a tile would be narrower than the floor
        small = max(height, width) <= BODY_WHOLE_SIDE
        assert square_tiles(height, width, SMALL_PICTURE_TILES if small else 1)[0].height < BODY_MIN_TILE_SIDE
        return
    tiles = square_tiles(height, width, count)
    assert BODY_MIN_TILE_SIDE <= tiles[0].height <= BODY_WHOLE_SIDE  # seen at half size or larger
    if max(height, width) <= BODY_WHOLE_SIDE:  # small pictures: tiles at about 1x, besides the whole
        assert count == SMALL_PICTURE_TILES
    elif count > 1:  # large ones: no more tiles than half size takes
        assert square_tiles(height, width, count - 1)[0].height > BODY_WHOLE_SIDE
    covered = np.zeros((height, width), bool)
    for tile in tiles:
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered.all()


def test_people_found_in_tiles_land_where_they_are() -> None:
    """Four astronauts in a 1024x1024 picture (seen whole at 0.41x, so also in 640-pixel
    tiles): one person box on each of them, in the picture's pixels."""
    from skimage import data

    from sganon.plugins.offline.detectors import body_tile_count

    one = np.asarray(data.astronaut())
    picture = np.vstack([np.hstack([one, one]), np.hstack([one, one])])
    assert body_tile_count(1024, 1024) == 2
    detector = OfflinePersonDetector(segmentation=False, pedestrians=False, seed_from_faces=False)
    boxes = detector.body_boxes_batch([picture])[0]
    for x, y in ((0, 0), (512, 0), (0, 512), (512, 512)):
        assert any(
            box.x0 < x + 60 and box.x1 > x + 330 and box.y0 < y + 60 and box.y1 > y + 480 and box.x1 <= x + 512 + 10
            for box, score in boxes
            if score >= 0.5
        ), (x, y, boxes)
