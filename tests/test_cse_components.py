"""The ``cse`` detector and surface embedder (tiny random-weight variant): what they hand the
pipeline, the model's two inference paths, and the presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sganon.core import Box, Detection, InputError, SurfaceMap
from sganon.core.components import component_class
from sganon.core.presets import all_presets
from sganon.plugins.cse import CSEDetector, CSEEmbedder
from sganon.plugins.cse.surface import closest_vertex_ids, resize_to_box, segmentation_box_mask


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector() -> CSEDetector:
    torch.manual_seed(0)
    return CSEDetector(**CSEDetector.default_args("tiny"), device="cpu")


@pytest.fixture(scope="module")
def embedder() -> CSEEmbedder:
    torch.manual_seed(1)
    return CSEEmbedder(**CSEEmbedder.default_args("tiny"), device="cpu")


def test_registered_as_cse_detector_and_embedder():
    assert component_class("detector", "cse") is CSEDetector
    assert component_class("embedder", "cse") is CSEEmbedder
    caps = CSEEmbedder.capabilities(CSEEmbedder.default_args("paper"))
    assert (caps.surface_channels, caps.vertices) == (16, True)
    assert CSEDetector.default_args("paper")["variant"] == "R101_FPN_DL"


def test_detections_follow_the_persons_of_the_model(detector):
    """Boxes and masks as the paper's anonymizer takes them (SPEC 7.1-7.2: rounded XYXY boxes,
    argmax mask resized to the box), each with its surface map from the same forward."""
    image = random_image(120, 90)
    detections = detector.detect(image)
    persons = detector.detect_persons([image], with_vertices=False, score_threshold=detector.score_threshold)[0]
    assert detections, "the random tiny model scores about 0.5 everywhere, above the 0.3 threshold"
    rounded = [Box(*torch.round(p.box).long().tolist()) for p in persons]
    kept = [(p, box) for p, box in zip(persons, rounded) if not box.is_empty()]
    assert len(detections) == len(kept) <= detector.config.detections_per_image
    for detection, (person, box) in zip(detections, kept):
        assert detection.box == box and detection.box.clip(120, 90) == detection.box
        assert detection.label == "person" and 0.3 < detection.score <= 1.0
        assert detection.score == pytest.approx(person.score)
        assert np.array_equal(detection.mask, segmentation_box_mask(person.coarse_segm_roi, box.height, box.width).numpy())
        assert detection.surface is not None and detection.surface.box == box
        assert np.array_equal(detection.surface.valid, detection.mask)
        expected, _, _ = resize_to_box(person.embedding_roi, person.coarse_segm_roi, box.height, box.width)
        assert np.allclose(detection.surface.embedding, expected.numpy(), atol=1e-6)
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)


def test_a_batch_of_frames_gives_what_each_frame_gives_alone(detector):
    """detect_batch: one forward over video frames (one size, so no extra padding), the
    detections of detect() per frame."""
    frames = [random_image(120, 90, seed=seed) for seed in (1, 2, 3)]
    together = detector.detect_batch(frames)
    assert len(together) == 3 and all(together)
    for frame, batched in zip(frames, together):
        alone = detector.detect(frame)
        assert [d.box for d in batched] == [d.box for d in alone]
        for a, b in zip(alone, batched):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            assert (a.mask != b.mask).mean() < 0.01
            assert np.allclose(a.surface.embedding, b.surface.embedding, atol=1e-3)
    assert detector.detect_batch([]) == []


def test_one_network_serves_detector_and_embedder_with_one_forward(detector):
    """The detector's own embedder view: same weights object, no second backbone pass."""
    embedder = detector.as_embedder()
    assert embedder.network is detector
    calls = []
    handle = detector.backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        image = random_image(120, 90, 3)
        detections = detector.detect(image)
        surfaces = embedder.embed(image, detections)
    finally:
        handle.remove()
    assert len(calls) == 1 and len(surfaces) == len(detections)
    assert all(s is d.surface for s, d in zip(surfaces, detections))


def test_surface_at_crop_gives_vertex_table_rows(embedder):
    """SPEC 7.6: each crop pixel's vertex is the nearest table row, and the generator reads that row."""
    table = embedder.mesh_vertex_embeddings
    embedding = torch.randn(16, 12, 8)
    mask = torch.rand(12, 8) > 0.4
    surface, vertices = embedder.surface_at_crop(embedding, mask)
    pixels = embedding[:, mask].t()
    brute = torch.cdist(pixels.double(), table.double()).argmin(dim=1)
    assert torch.equal(vertices[mask], brute) and (vertices[~mask] == 0).all()
    assert torch.equal(surface[:, mask], table[vertices[mask]].t()) and (surface[:, ~mask] == 0).all()


def test_detect_persons_outputs(detector):
    images = [random_image(120, 90, 1), random_image(70, 150, 2)]
    persons = detector.detect_persons(images)
    assert len(persons) == 2
    for image, image_persons in zip(images, persons):
        for person in image_persons:
            x, y, w, h = person.box_xywh
            assert 0 <= person.box[0] <= person.box[2] <= image.shape[1]
            assert 0 <= person.box[1] <= person.box[3] <= image.shape[0]
            assert person.mask.shape == (h, w) and person.mask.dtype == torch.bool
            assert person.embedding.shape == (16, h, w) and person.vertices.shape == (h, w)
            assert person.vertices.dtype == torch.int64 and bool((person.vertices[~person.mask] == 0).all())
            assert person.embedding_roi.shape == (16, 112, 112) and person.coarse_segm_roi.shape == (2, 112, 112)


def test_surface_maps_contract(embedder):
    image = random_image(96, 128)
    detections = [Detection(Box(20, 10, 60, 70), 0.9), Detection(Box(70, 30, 110, 90), 0.8), Detection(Box(0, 0, 5, 3), 0.5)]
    surfaces = embedder.embed(image, detections)
    assert len(surfaces) == 3
    outputs = embedder.densepose_from_boxes([image], [torch.tensor([list(d.box) for d in detections], dtype=torch.float64)],
                                            with_vertices=False)
    table = embedder.mesh_vertex_embeddings
    for k, (surface, detection) in enumerate(zip(surfaces, detections)):
        assert isinstance(surface, SurfaceMap) and surface.box == detection.box
        h, w = detection.box.height, detection.box.width
        expected_e, _, _ = resize_to_box(outputs["embedding"][k], outputs["coarse_segm"][k], h, w)
        assert np.allclose(surface.embedding, expected_e.numpy(), atol=1e-6)
        assert np.array_equal(surface.valid, segmentation_box_mask(outputs["coarse_segm"][k], h, w).numpy())
        assert surface.vertices.dtype == np.int64 and (surface.vertices[~surface.valid] == 0).all()
        assert surface.vertices.min() >= 0 and surface.vertices.max() < table.shape[0]
        pixels = torch.from_numpy(surface.embedding)[:, torch.from_numpy(surface.valid)].t()
        assert np.array_equal(surface.vertices[surface.valid], closest_vertex_ids(pixels, table).numpy())
    assert embedder.embed(image, []) == []


def test_mesh_vertex_table(embedder):
    table = embedder.mesh_vertex_embeddings
    assert table.shape == (27554, 16)
    assert torch.allclose(table.norm(dim=1), torch.ones(27554), atol=1e-5)


def test_densepose_from_boxes_edge_boxes(embedder):
    """A box partly outside the image is pooled unclipped and placed clipped; one fully outside is empty."""
    image = random_image(50, 80)
    boxes = np.array([[60.0, -10.0, 100.0, 30.0], [90.0, 10.0, 120.0, 40.0], [10.5, 10.25, 13.0, 12.0]])
    out = embedder.densepose_from_boxes([image], [boxes])
    assert out["embedding"].shape == (3, 16, 112, 112)
    placements = [entry["box_xywh"] for entry in out["closest_vertices"]]
    x, y, w, h = placements[0]
    # the placement comes from detectron2's float32 round trip through the input frame (60 -> 59.99998)
    assert x in (59, 60) and y == 0 and x + w <= 80 and (w, h) == (20, 30)
    assert placements[1][2] == 0 and out["closest_vertices"][1]["vertices"].shape[1] == 0
    assert placements[2] == (10, 10, 2, 1)
    for entry, (x, y, w, h) in zip(out["closest_vertices"], placements):
        assert entry["mask"].shape == (h, w) and entry["mask"].dtype == torch.bool
        assert entry["vertices"].shape == (h, w) and entry["vertices"].dtype == torch.int64


@pytest.mark.parametrize(
    "image, boxes, message",
    [
        (np.zeros((10, 10), np.uint8), [np.zeros((0, 4))], "uint8 RGB"),
        (np.zeros((10, 10, 3), np.float32), [np.zeros((0, 4))], "uint8 RGB"),
        (np.zeros((10, 10, 3), np.uint8), [np.zeros((2, 3))], r"\[n, 4\]"),
        (np.zeros((10, 10, 3), np.uint8), [np.array([[0, 0, np.nan, 4]])], "finite"),
        (np.zeros((10, 10, 3), np.uint8), [], "boxes for 0"),
    ],
)
def test_bad_input_is_an_input_error(embedder, image, boxes, message):
    with pytest.raises(InputError, match=message):
        embedder.densepose_from_boxes([image], boxes)


def test_cse_presets():
    presets = all_presets()
    first_embedder = next(p for p in presets.values() if p.kind == "embedder" and p.component == "cse" and p.weights)
    assert first_embedder.name == "cse.embedder-r101-fpn-dl"
    assert first_embedder.weights.url.endswith("densepose_rcnn_R_101_FPN_DL_soft_s1x/250713061/model_final_1d3314.pkl")
    assert first_embedder.weights.format == "densepose-pkl"
    assert presets["cse.detector-r101-fpn-dl"].weights.url == first_embedder.weights.url
    assert presets["vsam.fba-configE"].expects_embedder == "cse"
    for name in ("cse.embedder-r50-fpn", "cse.detector-r50-fpn"):
        assert presets[name].args["variant"] == "R50_FPN"
