"""The offline plugin: bone surface embedder, tiling/NMS, MediaPipe detectors on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sganon.core.components import build_component
from sganon.core.structures import Box, Detection
from sganon.plugins.offline.detectors import non_maximum_suppression, tiles
from sganon.plugins.offline.embedder import BONE_NAMES, CHANNELS, bone_surface


def standing_keypoints(x0: float, y0: float, scale: float = 1.0) -> np.ndarray:
    """MediaPipe-33 keypoints of a person facing the camera (its left on the image's right)."""
    points = np.zeros((33, 3), np.float32)
    named = {0: (50, 10), 11: (65, 30), 12: (35, 30), 13: (70, 55), 14: (30, 55), 15: (72, 80), 16: (28, 80),
             19: (73, 88), 20: (27, 88), 23: (60, 90), 24: (40, 90), 25: (62, 130), 26: (38, 130),
             27: (62, 170), 28: (38, 170), 31: (66, 178), 32: (34, 178)}  # fmt: skip
    for index, (x, y) in named.items():
        points[index] = (x0 + x * scale, y0 + y * scale, 0.99)
    return points


def test_bone_surface_assigns_every_valid_pixel_one_bone_with_coordinates():
    mask = np.zeros((180, 100), bool)
    mask[5:178, 25:75] = True
    embedding, valid = bone_surface(standing_keypoints(0, 0), mask, (0, 0))
    assert embedding.shape == (CHANNELS, 180, 100) and embedding.dtype == np.float32
    assert valid.any() and not (valid & ~mask).any()
    one_hot = embedding[: len(BONE_NAMES)]
    assert np.array_equal(one_hot.sum(axis=0)[valid], np.ones(valid.sum()))
    assert (embedding[:, ~valid] == 0).all()
    along, side, facing = embedding[len(BONE_NAMES)], embedding[len(BONE_NAMES) + 1], embedding[len(BONE_NAMES) + 2]
    assert along[valid].min() >= 0 and along[valid].max() <= 1
    assert np.abs(side[valid]).max() <= 1
    assert (facing[valid] == 1).all()  # facing the camera
    # A pixel on the left shin (image right, x=62) belongs to that bone, half-way down it.
    shin = BONE_NAMES.index("shin-left")
    assert one_hot[shin, 150, 62] == 1 and along[150, 62] == pytest.approx(0.5, abs=0.03)


def test_bone_surface_is_translation_equivariant_and_knows_the_back():
    mask = np.ones((180, 100), bool)
    here, valid_here = bone_surface(standing_keypoints(0, 0), mask, (0, 0))
    there, valid_there = bone_surface(standing_keypoints(200, 50), mask, (200, 50))
    assert np.allclose(here, there, atol=1e-5) and np.array_equal(valid_here, valid_there)
    mirrored = standing_keypoints(0, 0)
    mirrored[[11, 12]] = mirrored[[12, 11]]  # shoulders swapped: seen from the back
    back, _ = bone_surface(mirrored, mask, (0, 0))
    assert (back[len(BONE_NAMES) + 2][valid_here] == -1).all()


def test_bone_surface_without_keypoints_is_all_invalid():
    embedding, valid = bone_surface(None, np.ones((10, 10), bool), (0, 0))
    assert not valid.any() and not embedding.any()
    low = standing_keypoints(0, 0)
    low[:, 2] = 0.1
    assert not bone_surface(low, np.ones((180, 100), bool), (0, 0))[1].any()


def test_bones_embedder_gives_one_map_per_person_over_its_box():
    embedder = build_component("embedder", "bones")
    mask = np.ones((180, 100), bool)
    persons = [Detection(Box(10, 0, 110, 180), 0.9, mask, standing_keypoints(10, 0)), Detection(Box(0, 0, 5, 5), 0.5)]
    maps = embedder.embed(np.zeros((200, 200, 3), np.uint8), persons)
    assert [m.box for m in maps] == [p.box for p in persons]
    assert maps[0].valid.sum() > 0.5 * mask.sum() and not maps[1].valid.any()


@settings(max_examples=50, deadline=None)
@given(height=st.integers(1, 900), width=st.integers(1, 900), grid=st.integers(1, 4))
def test_tiles_cover_the_image(height, width, grid):
    covered = np.zeros((height, width), bool)
    for tile in tiles(height, width, grid):
        assert tile.clip(height, width) == tile
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered.all()


def test_non_maximum_suppression_keeps_the_best_of_overlapping_boxes():
    kept = non_maximum_suppression(
        [(Box(0, 0, 10, 10), 0.5), (Box(1, 1, 11, 11), 0.9), (Box(50, 50, 60, 60), 0.3)], 0.3
    )
    assert kept == [(Box(1, 1, 11, 11), 0.9), (Box(50, 50, 60, 60), 0.3)]


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def test_offline_detectors_find_the_astronaut_and_her_face(astronaut):
    """A real photo shipped with scikit-image: one person, whose mask covers her face."""
    persons = build_component("detector", "offline").detect(astronaut)
    faces = build_component("detector", "offline-face").detect(astronaut)
    assert len(persons) == 1 and len(faces) == 1
    person, face = persons[0], faces[0]
    assert person.keypoints.shape == (33, 3) and person.score >= 0.5
    on_face = person.mask_in_image(512, 512)[face.box.y0 : face.box.y1, face.box.x0 : face.box.x1]
    assert on_face.mean() > 0.9
    assert person.box.height > 400  # the whole visible body, to the bottom of the photo
    nose_x, nose_y = person.keypoints[0, :2]
    assert face.box.x0 <= nose_x < face.box.x1 and face.box.y0 <= nose_y < face.box.y1


def test_offline_detectors_find_nothing_in_noise():
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert build_component("detector", "offline").detect(noise) == []
    assert build_component("detector", "offline-face").detect(noise) == []
