"""People found by MediaPipe's selfie segmentation of the whole picture (``segmented_people``
in plugins/offline/detectors.py): people near the camera without a usable face."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sganon.core.errors import ConfigError
from sganon.plugins.offline.detectors import OfflinePersonDetector, segmented_people


def blob_map(height: int, width: int, blobs: list[tuple[int, int, int, int, float]]) -> np.ndarray:
    """A probability map: 0.05 everywhere, ``p`` inside each ``(x0, y0, x1, y1, p)`` rectangle."""
    probability = np.full((height, width), 0.05, np.float32)
    for x0, y0, x1, y1, p in blobs:
        probability[y0:y1, x0:x1] = p
    return probability


def test_a_sure_large_region_no_mask_covers_is_a_person():
    probability = blob_map(200, 300, [(100, 40, 160, 180, 0.95)])
    (person,) = segmented_people(probability, np.zeros((200, 300), bool))
    mask = person.mask_in_image(200, 300)
    assert mask[40:180, 100:160].all()  # the whole region, grown by its margin (2 % of 140 rows)
    assert not mask[:35].any() and not mask[:, :95].any()
    assert person.keypoints is None and person.label == "person" and person.score == pytest.approx(0.95)


def test_small_unsure_or_already_found_regions_are_not_people():
    covered = np.zeros((200, 300), bool)
    assert segmented_people(blob_map(200, 300, [(10, 10, 30, 30, 0.99)]), covered) == []  # 0.7 % of the picture
    assert segmented_people(blob_map(200, 300, [(100, 40, 160, 180, 0.7)]), covered) == []  # unsure
    covered[40:180, 100:140] = True  # two thirds of it belong to a person found before
    assert segmented_people(blob_map(200, 300, [(100, 40, 160, 180, 0.95)]), covered) == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 119), st.integers(0, 79), st.integers(1, 80), st.integers(1, 60), st.floats(0.3, 1.0)),
        max_size=5,
    ),
    st.integers(0, 2**31),
)
def test_segmented_people_never_take_a_pixel_found_before(blobs, seed):
    """Whatever the map: every person lies in the picture, takes no covered pixel, and comes
    from a region that passed the thresholds (size and mean probability)."""
    height, width = 80, 120
    probability = blob_map(height, width, [(x, y, x + w, y + h, p) for x, y, w, h, p in blobs])
    covered = np.random.default_rng(seed).random((height, width)) < 0.2
    for person in segmented_people(probability, covered, min_area=0.01, min_probability=0.85):
        assert 0 <= person.box.x0 < person.box.x1 <= width and 0 <= person.box.y0 < person.box.y1 <= height
        mask = person.mask_in_image(height, width)
        assert mask.any() and not (mask & covered).any()
        assert probability[mask].max() > 0.5


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def body_in_view(astronaut: np.ndarray, top: int) -> np.ndarray:
    """Her mask as the detector finds it on the whole photo, in the rows from ``top`` down."""
    detector = OfflinePersonDetector(segmentation=False)
    (person,) = [p for p in detector.detect(astronaut) if p.keypoints is not None]
    return person.mask_in_image(*astronaut.shape[:2])[top:]


def test_a_person_whose_head_is_outside_the_picture_is_anonymized(astronaut):
    """The astronaut cut at the chin: no face for BlazePose to start from, no whole body for
    HOG; the default detector covers her body, and so does the selfie segmentation alone
    (NanoDet, which also finds her, off)."""
    top = 170
    body = body_in_view(astronaut, top)
    cut = np.ascontiguousarray(astronaut[top:])
    by_default = OfflinePersonDetector().detect(cut)
    by_segmentation = OfflinePersonDetector(bodies=False).detect(cut)
    for found in (by_default, by_segmentation):
        covered = np.zeros(cut.shape[:2], bool)
        for person in found:
            covered |= person.mask_in_image(*cut.shape[:2])
        assert covered[body].mean() >= 0.9
    assert any(person.keypoints is None and person.box.width > 300 for person in by_segmentation)


def test_switched_off_it_adds_nobody(astronaut):
    """``segmentation=False`` runs no segmentation; on, a picture whose people are all found
    gets nothing more from it (her mask covers what it sees)."""
    off = OfflinePersonDetector(segmentation=False)
    assert off.segmenter is None
    on = OfflinePersonDetector()
    assert [p.box for p in on.detect(astronaut)] == [p.box for p in off.detect(astronaut)]


@pytest.mark.parametrize("settings", [{"segment_min_area": 0}, {"segment_min_area": 5}, {"segment_min_probability": 1.5}])
def test_thresholds_out_of_range_are_a_clear_error(settings):
    with pytest.raises(ConfigError, match="segment_min_area"):
        OfflinePersonDetector(**settings)
