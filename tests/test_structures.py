"""Serialization round trips and box/crop arithmetic of the core data structures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sganon.core import Box, Crop, Detection, InputError, SurfaceMap
from sganon.core.rle import decode_rle, encode_rle, polygons_to_mask


def boxes(max_size: int = 40):
    return st.tuples(
        st.integers(-20, 60), st.integers(-20, 60), st.integers(1, max_size), st.integers(1, max_size)
    ).map(lambda t: Box(t[0], t[1], t[0] + t[2], t[1] + t[3]))


@st.composite
def detections(draw):
    box = draw(boxes())
    mask = draw(st.none() | arrays(bool, (box.height, box.width)))
    keypoints = draw(st.none() | arrays(np.float32, (draw(st.integers(1, 5)), 3), elements=st.floats(-100, 100, width=32)))
    score = draw(st.floats(0, 1))
    return Detection(box, score, mask, keypoints, draw(st.sampled_from(["person", "face"])))


@given(arrays(bool, st.tuples(st.integers(0, 12), st.integers(0, 12))))
def test_rle_round_trip(mask):
    rle = encode_rle(mask)
    assert rle["size"] == list(mask.shape)
    json.dumps(rle)
    assert np.array_equal(decode_rle(rle), mask)


def column_runs(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed counts, computed here independently of pycocotools."""
    flat = mask.ravel(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1] if flat.size else 0]])))
    return np.diff(np.concatenate([[0], edges])).tolist()[: len(edges)] if flat.size else [0]


@given(arrays(bool, st.tuples(st.integers(1, 8), st.integers(1, 8))))
def test_our_masks_round_trip_through_pycocotools(mask):
    from pycocotools import mask as coco_mask

    ours = encode_rle(mask)
    theirs = coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()}).astype(bool)
    assert np.array_equal(theirs, mask)
    assert np.array_equal(decode_rle({"size": list(mask.shape), "counts": column_runs(mask)}), mask)


def test_polygons_are_rasterized_inside_their_outline():
    mask = polygons_to_mask([[1, 1, 6, 1, 6, 4, 1, 4], [0, 0]], 8, 9)
    assert mask.shape == (8, 9) and mask[2:4, 2:6].all() and not mask[6:].any() and not mask[:, 8].any()


def test_rle_known_coco_string():
    # COCO's string for counts [2, 3, 100, 3, 92]: delta coding after the third count.
    mask = np.zeros((20, 10), bool).ravel(order="F")
    mask[2:5] = True
    mask[105:108] = True
    mask = mask.reshape((20, 10), order="F")
    rle = encode_rle(mask)
    assert column_runs(mask) == [2, 3, 100, 3, 92]
    # Worked by hand from COCO's scheme: 2, 3, 100 -> "T3", 3-3=0, 92-100=-8 -> "H".
    assert rle["counts"] == "23T30H"
    assert np.array_equal(decode_rle({"size": [20, 10], "counts": [2, 3, 100, 3, 92]}), mask)
    assert np.array_equal(decode_rle(rle), mask)


@pytest.mark.parametrize("bad", [{"size": [2, 2], "counts": [1, 1]}, {"counts": "0"}, {"size": [2, 2], "counts": "~~~"}])
def test_rle_rejects_malformed(bad):
    with pytest.raises(InputError):
        decode_rle(bad)


@given(detections())
def test_detection_round_trip(detection):
    data = json.loads(json.dumps(detection.to_dict()))
    back = Detection.from_dict(data)
    assert back.box == detection.box and back.label == detection.label
    assert back.score == pytest.approx(detection.score)
    assert np.array_equal(back.full_mask(), detection.full_mask())
    if detection.keypoints is None:
        assert back.keypoints is None
    else:
        assert np.array_equal(back.keypoints, detection.keypoints)


@st.composite
def surface_maps(draw):
    box = draw(boxes(12))
    channels = draw(st.integers(1, 4))
    embedding = draw(arrays(np.float32, (channels, box.height, box.width), elements=st.floats(-2, 2, width=32)))
    valid = draw(arrays(bool, (box.height, box.width)))
    vertices = draw(st.none() | arrays(np.int64, (box.height, box.width), elements=st.integers(0, 27553)))
    return SurfaceMap(box, embedding, valid, vertices)


@given(surface_maps())
def test_surface_map_round_trip(surface):
    back = SurfaceMap.from_dict(json.loads(json.dumps(surface.to_dict())))
    assert back.box == surface.box
    assert np.array_equal(back.embedding, surface.embedding)
    assert np.array_equal(back.valid, surface.valid)
    assert (back.vertices is None) == (surface.vertices is None)
    if surface.vertices is not None:
        assert np.array_equal(back.vertices, surface.vertices)


def test_structures_reject_inconsistent_shapes():
    with pytest.raises(InputError, match="mask"):
        Detection(Box(0, 0, 4, 4), 1.0, np.zeros((3, 4), bool))
    with pytest.raises(InputError, match="embedding"):
        SurfaceMap(Box(0, 0, 4, 4), np.zeros((16, 4, 5)), np.zeros((4, 4), bool))
    with pytest.raises(InputError):
        Crop(Box(0, 0, 0, 5), (10, 10))


@settings(max_examples=60)
@given(
    st.integers(1, 30), st.integers(1, 30), boxes(), st.integers(0, 2**31 - 1)
)
def test_crop_maps_back_exactly_to_the_source_box(height, width, box, seed):
    """Extracting a crop and pasting it back reproduces the image; only the box is touched."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    crop = Crop(box, (7, 5))
    patch = crop.extract(image)
    assert patch.shape == (box.height, box.width, 3)
    inside = box.clip(height, width)
    # Pixels outside the image are padding; inside ones equal the source.
    if not inside.is_empty():
        assert np.array_equal(
            patch[inside.y0 - box.y0 : inside.y1 - box.y0, inside.x0 - box.x0 : inside.x1 - box.x0],
            image[inside.y0 : inside.y1, inside.x0 : inside.x1],
        )
    pasted = image.copy()
    crop.paste(pasted, patch, np.ones(patch.shape[:2], bool))
    assert np.array_equal(pasted, image)
    # A constant patch changes exactly the pixels of the box inside the image.
    changed = image.copy()
    crop.paste(changed, np.full_like(patch, 7), np.ones(patch.shape[:2], bool))
    touched = np.zeros((height, width), bool)
    touched[inside.y0 : inside.y1, inside.x0 : inside.x1] = True
    assert np.array_equal(changed[~touched], image[~touched])
    assert (changed[touched] == 7).all()


@given(boxes(), st.integers(1, 300), st.integers(1, 300), st.floats(0, 1), st.floats(0, 1))
def test_crop_coordinate_maps_are_inverse(box, crop_height, crop_width, fy, fx):
    crop = Crop(box, (crop_height, crop_width))
    y, x = fy * crop_height, fx * crop_width
    sy, sx = crop.crop_to_source(y, x)
    assert box.y0 <= sy <= box.y1 and box.x0 <= sx <= box.x1
    back = crop.source_to_crop(sy, sx)
    assert back == pytest.approx((y, x), abs=1e-9)
    assert Crop.from_dict(crop.to_dict()) == crop


@given(boxes(), st.integers(1, 80), st.integers(1, 80))
def test_box_clip_lies_inside_image(box, height, width):
    inside = box.clip(height, width)
    assert 0 <= inside.x0 <= inside.x1 <= width or inside.is_empty()
    assert inside.area <= box.area
    assert Box.from_list(box.to_list()) == box


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=6, max_size=6))
def test_a_shifted_box_keeps_its_size_and_shifts_back(values):
    x0, y0, w, h, dx, dy = values
    box = Box(x0, y0, x0 + abs(w), y0 + abs(h))
    moved = box.shifted(dx, dy)
    assert (moved.width, moved.height) == (box.width, box.height)
    assert (moved.x0 - box.x0, moved.y1 - box.y1) == (dx, dy)
    assert moved.shifted(-dx, -dy) == box
