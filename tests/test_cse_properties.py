"""Properties of the CSE plugin's pieces: config overrides, the input resize, anchors, box
decoding and post-processing (proposals, detections, rescale), and the closest-vertex search
(chunked, against a float64 brute force)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.core.errors import ConfigError
from sganon.plugins.cse.config import CSEConfig
from sganon.plugins.cse.detection import (
    anchors_for_level,
    boxes_to_input,
    boxes_to_original,
    clip_boxes,
    decode_boxes,
    resized_size,
    select_detections,
    select_proposals,
)
from sganon.plugins.cse.surface import (
    box_xywh_int,
    closest_vertex_ids,
    closest_vertices_in_box,
    resize_to_box,
    segmentation_box_mask,
)

FAST = settings(max_examples=40, deadline=None)


def random_boxes(g: torch.Generator, n: int, height: int, width: int) -> torch.Tensor:
    x0 = torch.rand(n, generator=g) * width * 0.8
    y0 = torch.rand(n, generator=g) * height * 0.8
    w = torch.rand(n, generator=g) * width * 0.5 + 1
    h = torch.rand(n, generator=g) * height * 0.5 + 1
    return torch.stack((x0, y0, x0 + w, y0 + h), dim=1)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


# -- config ------------------------------------------------------------------------------


def test_overrides_resolve_like_detectron2():
    config = CSEConfig.resolve("R101_FPN_DL", ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", "160",
                                               "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.9"])
    assert (config.depth, config.head, config.min_size, config.score_threshold) == (101, "deeplab", 160, 0.9)
    assert CSEConfig.resolve("R101_FPN_DL", ["MODEL.ROI_DENSEPOSE_HEAD.NAME", "DensePoseV1ConvXHead"]).head == "v1convx"
    assert CSEConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["MODEL.RESNETS.NUM_GROUPS", "32"], "not supported"),
        (["INPUT.MIN_SIZE_TEST"], "KEY VALUE pairs"),
        (["INPUT.MIN_SIZE_TEST", "big"], "must be int"),
        (["INPUT.MIN_SIZE_TEST", "1.5"], "must be int"),
        (["MODEL.FPN.OUT_CHANNELS", "48"], "DECODER_NUM_CLASSES must equal"),
        (["MODEL.RESNETS.DEPTH", "34"], "50 or 101"),
        (["MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM", "40"], "multiples of 32"),
    ],
)
def test_bad_overrides_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        CSEConfig.resolve("R101_FPN_DL", overrides)


# -- input resize ---------------------------------------------------------------------------


def test_resize_examples_of_the_spec():
    assert resized_size(512, 512, 800, 1333) == (800, 800)
    assert resized_size(300, 600, 800, 1333) == (667, 1333)
    assert resized_size(90, 270, 192, 320) == (107, 320)  # the max-size cap of the S50 vector


@FAST
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(16, 1000), st.integers(16, 2000))
def test_resize_shortest_edge_or_cap(height, width, min_size, max_size):
    new_h, new_w = resized_size(height, width, min_size, max_size)
    assert max(new_h, new_w) <= max_size + 1  # rounding half up may add one pixel to the capped side
    if max(height, width) * min_size / min(height, width) <= max_size:
        assert min(new_h, new_w) == min_size
    else:
        assert max(new_h, new_w) == max_size
    scale = min(min_size / min(height, width), max_size / max(height, width))
    assert abs(new_h - height * scale) <= 0.5 + 1e-6 or new_h == 1
    assert abs(new_w - width * scale) <= 0.5 + 1e-6 or new_w == 1


# -- anchors and box decoding ------------------------------------------------------------------


def test_anchors_are_centred_on_the_grid_with_the_level_area():
    anchors = anchors_for_level("p3", 4, 5, torch.device("cpu"))
    assert anchors.shape == (4 * 5 * 3, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    grid = centres.reshape(4, 5, 3, 2)[:, :, 0]
    assert torch.allclose(grid[..., 0], torch.arange(5.0).expand(4, 5) * 8, atol=1e-4)
    assert torch.allclose(grid[..., 1], torch.arange(4.0)[:, None].expand(4, 5) * 8, atol=1e-4)
    areas = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    assert torch.allclose(areas, torch.full_like(areas, 64.0**2), rtol=1e-5)
    ratios = ((anchors[:, 3] - anchors[:, 1]) / (anchors[:, 2] - anchors[:, 0]))[:3]
    assert torch.allclose(ratios, torch.tensor([0.5, 1.0, 2.0]), rtol=1e-5)


@FAST
@given(st.integers(0, 2**31 - 1))
def test_zero_deltas_keep_boxes_and_shifts_move_them(seed):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, 20, 500, 700)
    same = decode_boxes(torch.zeros(20, 4), boxes, (10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(same, boxes, atol=1e-3)
    shifted = decode_boxes(torch.tensor([[10.0, 0.0, 0.0, 0.0]]).expand(20, 4), boxes, (10.0, 10.0, 5.0, 5.0))
    width = boxes[:, 2] - boxes[:, 0]
    assert torch.allclose(shifted[:, 0] - boxes[:, 0], width, rtol=1e-4, atol=1e-3)
    huge = decode_boxes(torch.tensor([[0.0, 0.0, 100.0, 100.0]]).expand(20, 4), boxes, (1.0, 1.0, 1.0, 1.0))
    assert torch.allclose(huge[:, 2] - huge[:, 0], width * 1000 / 16, rtol=1e-4)  # clamped at log(1000/16)


# -- proposals and detections ----------------------------------------------------------------


@FAST
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.9), st.integers(1, 10))
def test_detections_pass_threshold_nms_and_cap(seed, threshold, cap):
    g = torch.Generator().manual_seed(seed)
    height, width = 200, 300
    proposals = random_boxes(g, 60, height, width)
    logits = torch.randn(60, 2, generator=g) * 2
    deltas = torch.randn(60, 4, generator=g)
    boxes, scores = select_detections(proposals, logits, deltas, (height, width), threshold, 0.5, cap)
    assert len(boxes) == len(scores) <= cap
    assert bool((scores > threshold).all()) and bool((scores[:-1] >= scores[1:]).all())
    assert bool((boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= width).all())
    assert bool((boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= height).all())
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert iou(boxes[i], boxes[j]) <= 0.5 + 1e-6
    # below the cap, every candidate above the threshold is kept or overlaps a kept, better box
    if len(boxes) < cap:
        probabilities = torch.softmax(logits, dim=1)[:, 0]
        candidates = clip_boxes(decode_boxes(deltas, proposals, (10.0, 10.0, 5.0, 5.0)), height, width)
        for box, probability in zip(candidates[probabilities > threshold], probabilities[probabilities > threshold]):
            kept = any(torch.equal(box, other) for other in boxes)
            suppressed = any(iou(box, other) > 0.5 and s >= probability for other, s in zip(boxes, scores))
            assert kept or suppressed


def test_detection_scores_are_the_person_probability():
    proposals = torch.tensor([[10.0, 10.0, 50.0, 80.0]])
    logits = torch.tensor([[2.0, -1.0]])  # person, background
    boxes, scores = select_detections(proposals, logits, torch.zeros(1, 4), (100, 100), 0.05, 0.5, 100)
    assert scores.tolist() == pytest.approx([math.exp(2) / (math.exp(2) + math.exp(-1))])
    assert torch.allclose(boxes, proposals)
    none, _ = select_detections(proposals, torch.tensor([[-1.0, 2.0]]), torch.zeros(1, 4), (100, 100), 0.5, 0.5, 100)
    assert len(none) == 0


@FAST
@given(st.integers(0, 2**31 - 1))
def test_proposals_are_clipped_nonempty_and_capped(seed):
    g = torch.Generator().manual_seed(seed)
    height, width = 64, 96
    levels = [("p2", 16, 24), ("p3", 8, 12)]
    objectness = [torch.randn(3, h, w, generator=g) for _, h, w in levels]
    deltas = [torch.randn(12, h, w, generator=g) for _, h, w in levels]
    anchors = [anchors_for_level(level, h, w, torch.device("cpu")) for level, h, w in levels]
    proposals = select_proposals(objectness, deltas, anchors, (height - 5, width - 7), 100, 50, 0.7)
    assert 0 < len(proposals) <= 50
    assert bool((proposals[:, 2] > proposals[:, 0]).all() and (proposals[:, 3] > proposals[:, 1]).all())
    assert bool((proposals[:, 0::2] <= width - 7).all() and (proposals[:, 1::2] <= height - 5).all())
    assert bool((proposals >= 0).all())


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(20, 900), st.integers(20, 900))
def test_rescale_between_frames_round_trips_and_clips(seed, height, width):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, 8, height, width).double()
    size = resized_size(height, width, 800, 1333)
    there = boxes_to_input(boxes, (height, width), size)
    back = boxes_to_original(there, size, (height, width))
    expected = boxes.float().clone()
    expected[:, 0::2] = expected[:, 0::2].clamp(0, width)
    expected[:, 1::2] = expected[:, 1::2].clamp(0, height)
    assert torch.allclose(back, expected, rtol=1e-5, atol=1e-3)
    assert bool((back[:, 0::2] <= width).all() and (back[:, 1::2] <= height).all() and (back >= 0).all())


def test_box_placement_truncates_each_value():
    assert box_xywh_int(torch.tensor([0.0, 250.5, 180.25, 500.0])) == (0, 250, 180, 249)
    assert box_xywh_int(torch.tensor([10.9, 3.2, 20.1, 3.9])) == (10, 3, 9, 0)


# -- closest vertices ---------------------------------------------------------------------------


def unit_rows(g: torch.Generator, count: int, dim: int) -> torch.Tensor:
    v = torch.randn(count, dim, generator=g)
    return v / v.norm(dim=1, keepdim=True)


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(1, 300), st.integers(1, 400), st.integers(1, 64))
def test_closest_vertex_equals_brute_force(seed, pixels, vertices, chunk):
    g = torch.Generator().manual_seed(seed)
    table = unit_rows(g, vertices, 16)
    embeddings = torch.randn(pixels, 16, generator=g) * 2
    ids = closest_vertex_ids(embeddings, table, chunk_size=chunk)
    distances = torch.cdist(embeddings.double(), table.double()) ** 2  # float64 brute force
    best = distances.min(dim=1)
    chosen = distances.gather(1, ids[:, None])[:, 0]
    # the same vertex, or one whose distance equals the best within float32 rounding (a near-tie)
    assert bool(((ids == best.indices) | (chosen - best.values <= 1e-4)).all())
    assert torch.equal(ids, closest_vertex_ids(embeddings, table, chunk_size=pixels))


def test_closest_vertex_on_exact_ties_takes_the_first_index():
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    pixels = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-3.0, 0.0], [0.0, 0.0]])
    assert closest_vertex_ids(pixels, table, chunk_size=3).tolist() == [1, 0, 3, 0]


def test_closest_vertex_handles_non_unit_rows():
    """argmin |e - v|^2, not argmax e.v: a short vertex near e beats a long one in its direction."""
    table = torch.tensor([[3.0, 0.0], [0.9, 0.1]])
    assert closest_vertex_ids(torch.tensor([[1.0, 0.0]]), table).tolist() == [1]


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(1, 40))
def test_vertex_map_is_zero_outside_the_mask(seed, height, width):
    g = torch.Generator().manual_seed(seed)
    table = unit_rows(g, 50, 16)
    embedding = torch.randn(16, height, width, generator=g)
    mask = torch.rand(height, width, generator=g) > 0.5
    vertices = closest_vertices_in_box(embedding, mask, table, chunk_size=7)
    assert vertices.dtype == torch.int64 and vertices.shape == (height, width)
    assert bool((vertices[~mask] == 0).all())
    assert torch.equal(vertices[mask], closest_vertex_ids(embedding[:, mask].t(), table))


# -- resizing the ROI outputs to the box ------------------------------------------------------------


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(1, 250), st.integers(1, 250))
def test_resize_to_box_mask_is_foreground_over_background(seed, height, width):
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(16, 112, 112, generator=g)
    segm = torch.randn(2, 112, 112, generator=g)
    resized_e, resized_s, mask = resize_to_box(embedding, segm, height, width)
    assert resized_e.shape == (16, height, width) and resized_s.shape == (2, height, width)
    assert torch.equal(mask, resized_s[1] > resized_s[0])
    box_mask = segmentation_box_mask(segm, height, width)
    assert box_mask.shape == (height, width) and box_mask.dtype == torch.bool


def test_masks_on_ties_and_uniform_segmentations():
    tie = torch.zeros(2, 112, 112)
    assert not resize_to_box(torch.zeros(16, 112, 112), tie, 30, 20)[2].any()
    assert not segmentation_box_mask(tie, 30, 20).any()
    foreground = torch.stack((torch.zeros(112, 112), torch.ones(112, 112)))
    assert segmentation_box_mask(foreground, 300, 17).all()
    one_cell = tie.clone()
    one_cell[1, 50, 60] = 1.0  # one foreground cell of 112x112 marks at least one box pixel (S_box)
    assert segmentation_box_mask(one_cell, 224, 224).sum() >= 1
    assert resize_to_box(torch.zeros(16, 112, 112), tie, 0, 5)[2].shape == (0, 5)
