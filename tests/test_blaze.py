"""The torch engine (plugins/offline/tflite.py + blaze.py) against MediaPipe 0.10.21's runtime.

MediaPipe's outputs on real photos were recorded once into tests/vectors/mediapipe.npz by
benchmarks/record_mediapipe_vectors.py (cases in tests/vector_cases.py). Tolerances, from
what the engine reaches (the differences come from OpenCV's fixed-point warp and XNNPACK's
arithmetic, and the landmark model amplifies them for unsure points):

* faces and pose proposals: the same detections (those within 0.02 of the decoding
  threshold may fall either side), boxes and keypoints within 1 pixel, scores within 0.01;
* poses: found for the same crops; keypoints within 1% of the crop's long side in median
  and 7% at most, visibility within 0.06; masks (> 0.5) with IoU >= 0.96 and a mean absolute
  difference of the probabilities <= 0.006.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sganon.plugins.offline import blaze, tflite
from vector_cases import CASES, case_image, pose_crops

VECTORS = np.load(Path(__file__).parent / "vectors" / "mediapipe.npz")
THRESHOLD_MARGIN = 0.02


def image_or_skip(name: str) -> np.ndarray:
    image = case_image(name)
    if image is None:
        pytest.skip(f"needs {CASES[name][0]} (../shared/data)")
    return image


def assert_same_detections(reference: np.ndarray, found: np.ndarray, threshold: float, scale: np.ndarray) -> None:
    """Rows: relative values then score at ``score_column``; ``scale`` turns values into pixels."""
    score = 4
    for row in reference:
        distance = np.abs((found[:, :score] - row[:score]) * scale[:score]).max(axis=1) if len(found) else np.array([])
        if row[score] < threshold + THRESHOLD_MARGIN and (not len(found) or distance.min() > 1.0):
            continue  # a borderline detection: MediaPipe kept it, the engine may not
        assert len(found) and distance.min() <= 1.0, f"missed {row}"
        match = found[distance.argmin()]
        assert np.abs((match - row) * scale).max() <= 1.0, (row, match)
        assert abs(match[score] - row[score]) <= 0.01
    for row in found:
        if row[score] >= threshold + THRESHOLD_MARGIN:
            distance = np.abs((reference[:, :score] - row[:score]) * scale[:score]).max(axis=1)
            assert len(reference) and distance.min() <= 1.0, f"extra detection {row}"


@pytest.mark.parametrize("name", list(CASES))
def test_faces_match_mediapipe(name: str) -> None:
    image = image_or_skip(name)
    height, width = image.shape[:2]
    detector = blaze.FaceDetector(min_score=0.5)
    candidates = detector.candidates([image], detector.GRAPH_MIN_SCORE)[0]
    found = np.array([[*c.box[:2], *(c.box[2:] - c.box[:2]), c.score] for c in candidates]).reshape(-1, 5)
    scale = np.array([width, height, width, height, 100.0])  # a score off by 0.01 counts as 1
    assert_same_detections(VECTORS[f"{name}/faces"], found, detector.GRAPH_MIN_SCORE, scale)
    boxes = detector.detect_batch([image])[0]
    assert len(boxes) == len(candidates)


@pytest.mark.parametrize("name", list(CASES))
def test_pose_proposals_match_mediapipe(name: str) -> None:
    image = image_or_skip(name)
    height, width = image.shape[:2]
    detector = blaze.PoseDetector()
    candidates = detector.candidates([image], detector.GRAPH_MIN_SCORE)[0]
    found = np.array(
        [[*c.box[:2], *(c.box[2:] - c.box[:2]), c.score, *c.keypoints.ravel()] for c in candidates]
    ).reshape(-1, 13)
    scale = np.array([width, height, width, height, 100.0] + [width, height] * 4)
    assert_same_detections(VECTORS[f"{name}/poses"], found, detector.GRAPH_MIN_SCORE, scale)
    proposals = detector.detect_batch([image])[0]
    assert [p.score for p in proposals] == [c.score for c in candidates if c.score >= 0.5]


@pytest.mark.parametrize("name", list(CASES))
def test_poses_match_mediapipe(name: str) -> None:
    image = image_or_skip(name)
    crops = pose_crops(image, VECTORS[f"{name}/poses"])
    results = blaze.PoseLandmarker().estimate_batch([image[y0:y1, x0:x1] for x0, y0, x1, y1 in crops])
    for k, ((x0, y0, x1, y1), result) in enumerate(zip(crops, results)):
        key = f"{name}/crop{k}"
        assert tuple(VECTORS[f"{key}/box"]) == (x0, y0, x1, y1)
        assert (result is not None) == (f"{key}/keypoints" in VECTORS.files), f"{key}: pose found by one only"
        if result is None:
            continue
        reference = VECTORS[f"{key}/keypoints"]
        width, height = x1 - x0, y1 - y0
        distance = np.hypot(reference[:, 0] * width - result.keypoints[:, 0], reference[:, 1] * height - result.keypoints[:, 1])
        assert np.median(distance) <= 0.01 * max(width, height), key
        assert distance.max() <= 0.07 * max(width, height), key
        assert np.abs(reference[:, 2] - result.keypoints[:, 2]).max() <= 0.06, key
        mask = VECTORS[f"{key}/mask"].astype(np.float32) / 255
        assert result.segmentation is not None and result.segmentation.shape == mask.shape
        a, b = mask > 0.5, result.segmentation > 0.5
        assert (a & b).sum() / max((a | b).sum(), 1) >= 0.96, key
        assert np.abs(mask - result.segmentation).mean() <= 0.006, key


SELFIE_VECTORS = np.load(Path(__file__).parent / "vectors" / "selfie.npz")


@pytest.mark.parametrize("name", list(CASES))
def test_person_segmentation_matches_mediapipe(name: str) -> None:
    """MediaPipe's selfie segmentation of the whole picture (recorded as uint8): probabilities
    within 0.003 in mean, regions over 0.5 with IoU >= 0.97 (measured: 0.9999 and 1e-4 on the
    astronaut and erling cases; the COCO ones, with many unsure pixels, reach 0.971 and 0.0023,
    from XNNPACK's arithmetic); a batch of differently sized pictures gives the same."""
    image = image_or_skip(name)
    reference = SELFIE_VECTORS[name].astype(np.float32) / 255
    segmenter = blaze.PersonSegmenter()
    found = segmenter.segment_batch([image])[0]
    assert found.shape == reference.shape == image.shape[:2]
    assert np.abs(found - reference).mean() <= 0.003
    a, b = found > 0.5, reference > 0.5
    assert (a & b).sum() / max((a | b).sum(), 1) >= 0.97
    tile = np.ascontiguousarray(image[: image.shape[0] // 2])
    together = segmenter.segment_batch([image, tile])
    np.testing.assert_allclose(together[0], found, atol=1e-4)
    np.testing.assert_allclose(together[1], segmenter.segment_batch([tile])[0], atol=1e-4)


def test_a_batch_gives_what_single_calls_give() -> None:
    """Batching images of different sizes changes nothing (each is letterboxed on its own)."""
    image = image_or_skip("astronaut")
    tiles = [image, image[:300, :300], np.ascontiguousarray(image[100:, 50:400])]
    faces, poses = blaze.FaceDetector(), blaze.PoseDetector()
    def rounded(found: list[list[tuple]]) -> list[list[tuple]]:
        return [[(box, round(score, 4)) for box, score in per_image] for per_image in found]

    assert rounded(faces.detect_batch(tiles)) == rounded([faces.detect_batch([t])[0] for t in tiles])
    batched = poses.detect_batch(tiles)
    single = [poses.detect_batch([t])[0] for t in tiles]
    for one, other in zip(batched, single):
        assert [(p.face, round(p.score, 4)) for p in one] == [(p.face, round(p.score, 4)) for p in other]
    landmarker = blaze.PoseLandmarker()
    together = landmarker.estimate_batch(tiles)
    for tile, result in zip(tiles, together):
        alone = landmarker.estimate_batch([tile])[0]
        assert (alone is None) == (result is None)
        if result is not None:
            np.testing.assert_allclose(result.keypoints, alone.keypoints, atol=0.1)  # float noise of batched convolutions
            np.testing.assert_allclose(result.segmentation, alone.segmentation, atol=0.02)


def test_the_reader_decodes_the_bundled_models() -> None:
    """Every operator of the bundled files is supported; sparse weights are densified to the
    declared shapes; the module runs a batch and keeps the declared output shapes."""
    for name, outputs in [
        (blaze.FACE_MODEL, [(2304, 16), (2304, 1)]),
        (blaze.POSE_DETECTOR_MODEL, [(2254, 12), (2254, 1)]),
        (blaze.POSE_LANDMARK_MODEL, [(195,), (1,), (1, 256, 256), (39, 64, 64), (117,)]),
        (blaze.SELFIE_MODEL, [(1, 256, 256)]),
    ]:
        graph = tflite.read_graph(blaze.model_path(name))
        assert {op.kind for op in graph.operators} <= tflite.SUPPORTED - {"DENSIFY"}
        for op in graph.operators:
            for index in op.inputs:
                tensor = graph.tensors[index]
                if tensor.data is not None and op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                    assert tensor.data.shape == tensor.shape and tensor.data.dtype in (np.float32, np.int32)
        module = tflite.TfliteModule(blaze.model_path(name))
        _, size, _, channels = graph.tensors[graph.inputs[0]].shape
        with torch.inference_mode():
            result = module(torch.zeros(3, channels, size, size))
        assert [tuple(r.shape[1:]) for r in result] == outputs and all(r.shape[0] == 3 for r in result)


@pytest.mark.parametrize(
    "name", [blaze.FACE_MODEL, blaze.POSE_DETECTOR_MODEL, blaze.POSE_LANDMARK_MODEL, blaze.SELFIE_MODEL]
)
def test_torch_and_onnxruntime_run_the_same_network(name: str) -> None:
    """The CPU path (ONNX in onnxruntime, what the vectors above test) and the torch module
    (the CUDA path) give the same outputs on a real picture: probabilities within 5e-3,
    regressed pixels within 0.01 (segmentation logits reach +-1600: compared as probabilities)."""
    image = image_or_skip("astronaut")
    graph = tflite.read_graph(blaze.model_path(name))
    _, size, _, _ = graph.tensors[graph.inputs[0]].shape
    x = blaze.warp_into_tensor(blaze.image_tensor(image, "cpu"), blaze.Region(256, 256, 512, 512), size, "zeros")
    batch = torch.stack([x, x.flip(2)]) / 255.0
    with torch.inference_mode():
        by_torch = tflite.TfliteModule(blaze.model_path(name))(batch)
    by_onnxruntime = tflite.OnnxRunner(blaze.model_path(name))(batch)
    for a, b in zip(by_torch, by_onnxruntime):
        assert a.shape == b.shape
        if a.dim() == 4:
            assert (torch.sigmoid(a) - torch.sigmoid(b)).abs().max() <= 5e-3
        else:
            assert (a - b).abs().max() <= 0.01


def test_densify_matches_a_dense_matrix() -> None:
    """A CSR-encoded matrix (dense rows, sparse columns) built as a FlatBuffer densifies back."""
    import flatbuffers
    from flatbuffers.table import Table

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 7)).astype(np.float32) * (rng.random((5, 7)) < 0.4)
    rows, cols = np.nonzero(dense)
    segments = np.searchsorted(rows, np.arange(6)).astype(np.int32)
    builder = flatbuffers.Builder(256)

    def int_vector(values: np.ndarray) -> int:
        vector = builder.CreateNumpyVector(values.astype(np.int32))
        builder.StartObject(1)
        builder.PrependUOffsetTRelativeSlot(0, vector, 0)
        return builder.EndObject()

    segment_table, index_table = int_vector(segments), int_vector(cols)
    builder.StartObject(6)  # DimensionMetadata, SPARSE_CSR
    builder.PrependInt8Slot(0, 1, 0)
    builder.PrependUint8Slot(2, 1, 0)
    builder.PrependUOffsetTRelativeSlot(3, segment_table, 0)
    builder.PrependUint8Slot(4, 1, 0)
    builder.PrependUOffsetTRelativeSlot(5, index_table, 0)
    sparse_dim = builder.EndObject()
    builder.StartObject(6)  # DimensionMetadata, DENSE
    builder.PrependInt8Slot(0, 0, 0)
    builder.PrependInt32Slot(1, 5, 0)
    dense_dim = builder.EndObject()
    order = builder.CreateNumpyVector(np.array([0, 1], np.int32))
    builder.StartVector(4, 2, 4)
    builder.PrependUOffsetTRelative(sparse_dim)
    builder.PrependUOffsetTRelative(dense_dim)
    levels = builder.EndVector()
    builder.StartObject(3)  # SparsityParameters
    builder.PrependUOffsetTRelativeSlot(0, order, 0)
    builder.PrependUOffsetTRelativeSlot(2, levels, 0)
    builder.Finish(builder.EndObject())
    data = builder.Output()
    sparsity = Table(bytearray(data), flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    np.testing.assert_array_equal(tflite.densify(dense[rows, cols], dense.shape, sparsity), dense)


def test_centerface_as_a_torch_module_equals_onnxruntime_and_batches():
    """CenterFace's graph in torch (the path of `--device cuda`, checked here on the CPU) gives
    onnxruntime's outputs, and a batch gives each image's outputs alone."""
    import torch
    from skimage import data
    from sganon.plugins.offline.centerface import CenterFace, CenterFaceNet

    image = data.astronaut()
    blob = np.zeros((2, 3, 512, 512), np.float32)
    blob[0], blob[1] = image.transpose(2, 0, 1), image[:, ::-1].transpose(2, 0, 1)
    expected = CenterFace().run(blob)
    with torch.inference_mode():
        got = [out.numpy() for out in CenterFaceNet()(torch.from_numpy(blob))]
        alone = [out.numpy() for out in CenterFaceNet()(torch.from_numpy(blob[1:]))]
    for a, b, c in zip(expected, got, alone):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
        assert np.abs(b[1:] - c).max() < 1e-4
    images = [image, image[:, ::-1], image[:256]]  # two of one size go through torch together
    by_onnxruntime = CenterFace().detect_batch(images, 0.4, [1.0, 1.0, 1.5])
    by_torch = CenterFace(backend="torch").detect_batch(images, 0.4, [1.0, 1.0, 1.5])
    assert [len(found) for found in by_torch] == [len(found) for found in by_onnxruntime]
    for found_a, found_b in zip(by_onnxruntime, by_torch):
        for (box_a, score_a), (box_b, score_b) in zip(found_a, found_b):
            assert max(abs(u - v) for u, v in zip(box_a, box_b)) <= 1 and abs(score_a - score_b) < 1e-3
