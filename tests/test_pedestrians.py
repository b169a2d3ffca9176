"""People without faces: the HOG pedestrian finder and its merge into the offline person detector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sganon.core.structures import Box, Detection
from sganon.core.boxes import grow_box, non_maximum_suppression
from sganon.plugins.offline.detectors import OfflinePersonDetector, pedestrian_person
from sganon.plugins.offline.pedestrians import (
    PERSON_IN_WINDOW,
    WINDOW,
    PedestrianFinder,
    PedestrianSettings,
    is_covered,
    is_known,
    pedestrian_crop,
    pedestrian_region,
)

boxes = st.builds(
    lambda x, y, w, h: Box(x, y, x + w, y + h),
    st.integers(-50, 400), st.integers(-50, 400), st.integers(1, 200), st.integers(1, 300),
)


@given(st.integers(1, 4000), st.integers(1, 4000))
def test_scales_stay_within_the_pixel_budget_and_the_window(height, width):
    finder = PedestrianFinder()
    settings_ = finder.settings
    scales = finder.scales(height, width)
    assert scales == sorted(scales, reverse=True)
    for scale in scales:
        assert height * width * scale**2 <= settings_.max_pixels * 1.0001
        assert height * scale >= WINDOW[1] and width * scale >= WINDOW[0]
    person = PERSON_IN_WINDOW * WINDOW[1]  # pixels tall a person is in the window
    if scales:  # from the smallest person asked for (or the budget's) to the largest, or the image's
        assert person / scales[0] >= settings_.min_height * 0.999
        next_scale = scales[-1] / settings_.scale_step
        assert person / scales[-1] >= settings_.max_height / settings_.scale_step**0.5 * 0.999 or (
            height * next_scale < WINDOW[1] or width * next_scale < WINDOW[0]
        )


@given(st.lists(st.tuples(boxes, st.floats(0, 1)), max_size=12), st.floats(0.1, 0.9))
def test_merged_boxes_are_the_best_and_no_two_overlap(items, overlap):
    kept = non_maximum_suppression(items, overlap, inside=0.7)  # as PedestrianFinder merges its windows
    assert all(item in items for item in kept)
    assert [score for _, score in kept] == sorted((score for _, score in kept), reverse=True)
    if items:
        assert kept[0][1] == max(score for _, score in items)
    for i, (a, _) in enumerate(kept):
        for b, _ in kept[i + 1 :]:
            common = a.intersect(b).area
            assert common <= overlap * (a.area + b.area - common) + 1e-9 and common < 0.7 * min(a.area, b.area)


@given(boxes)
def test_pose_looks_upright_at_the_box_inside_its_crop(box):
    region, crop = pedestrian_region(box), pedestrian_crop(box)
    assert region.rotation == 0 and region.width == region.height >= max(box.height, box.width)
    assert (region.cx, region.cy) == ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
    assert crop.x0 <= region.cx - region.width / 2 and crop.x1 >= region.cx + region.width / 2
    assert crop.y0 <= region.cy - region.height / 2 and crop.y1 >= region.cy + region.height / 2


@settings(max_examples=30, deadline=None)
@given(st.integers(48, 300), st.integers(48, 300), st.integers(0, 2**31))
def test_found_boxes_lie_inside_the_image(height, width, seed):
    """On noise with a dark upright bar (a crude figure that HOG may or may not take)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(100, 160, (height, width, 3), dtype=np.uint8)
    image[height // 4 : height - height // 8, width // 2 - width // 10 : width // 2 + width // 10] = 20
    for box, score in PedestrianFinder(PedestrianSettings(min_score=-1.0)).find(image):
        assert box == box.clip(height, width) and not box.is_empty()
        assert 0 < score < 1


@given(boxes, st.integers(0, 2**31))
@settings(max_examples=50)
def test_the_merge_rule_on_masks(box, seed):
    """A box whose body (middle third) masks cover adds nothing; a kept box never overlaps
    the masks found before; Pose's person is kept only where it covers the box."""
    rng = np.random.default_rng(seed)
    covered = rng.random((240, 320)) < rng.random()
    box = box.clip(240, 320)
    if box.is_empty():
        return
    person = pedestrian_person(None, box, 0.9, True, covered)
    around = grow_box(box, 0.1, 240, 320)
    if person is not None:  # the box grown, less what was covered
        mask = person.mask_in_image(240, 320)
        assert not (mask & covered).any() and person.keypoints is None
        expected = np.zeros((240, 320), bool)
        expected[around.y0 : around.y1, around.x0 : around.x1] = True
        assert np.array_equal(mask, expected & ~covered)
    else:  # only when everything around the box was covered already
        assert covered[around.y0 : around.y1, around.x0 : around.x1].all()
    assert pedestrian_person(None, box, 0.6, False, covered) is None  # weak and unconfirmed
    full = np.ones((box.height, box.width), bool)
    pose_person = Detection(box, 0.9, full, np.zeros((33, 3), np.float32))
    assert pedestrian_person(pose_person, box, 0.6, False, covered) is pose_person  # Pose confirms it
    everywhere = np.ones((240, 320), bool)
    assert is_covered(box, everywhere) and is_known(box, everywhere, [])
    assert not is_covered(box, np.zeros((240, 320), bool))


def test_a_box_inside_a_much_taller_person_is_part_of_that_person():
    nothing = np.zeros((600, 400), bool)
    tall = Box(100, 0, 300, 600)
    assert is_known(Box(150, 100, 190, 180), nothing, [tall])  # a face or a print on the clothes
    assert not is_known(Box(150, 100, 190, 420), nothing, [tall])  # over half its height: someone
    assert not is_known(Box(320, 100, 360, 180), nothing, [tall])  # beside it


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def test_a_box_under_a_found_mask_adds_nothing(astronaut, monkeypatch):
    """A pedestrian box on the astronaut's body (found by BlazePose) gives no second person
    (NanoDet off: its tiles take the flag beside her for someone)."""
    detector = OfflinePersonDetector(bodies=False)
    monkeypatch.setattr(detector.pedestrian_finder, "find", lambda image: [(Box(150, 250, 250, 450), 0.9)])
    with_box = detector.detect(astronaut)
    without = OfflinePersonDetector(pedestrians=False, bodies=False).detect(astronaut)
    assert [p.box for p in with_box] == [p.box for p in without] and len(without) == 1
    assert np.array_equal(with_box[0].full_mask(), without[0].full_mask())


def test_a_box_where_pose_finds_nobody_is_still_a_person(monkeypatch):
    """A pedestrian box on a flat wall: Pose finds nobody there, the box (grown) is kept."""
    wall = np.full((240, 320, 3), 128, np.uint8)
    detector = OfflinePersonDetector()
    monkeypatch.setattr(detector.pedestrian_finder, "find", lambda image: [(Box(140, 60, 180, 140), 0.95)])
    persons = detector.detect(wall)
    assert len(persons) == 1 and persons[0].keypoints is None and persons[0].score == 0.95
    mask = persons[0].mask_in_image(240, 320)
    assert mask[60:140, 140:180].all() and mask.sum() < 2 * 40 * 80
    assert OfflinePersonDetector(pedestrians=False).detect(wall) == []


def test_switched_off_is_the_same_as_finding_no_pedestrian(astronaut, monkeypatch):
    """``pedestrians=False`` runs no finder and gives what the detector gives when the finder
    finds nobody (the golden outputs of tests/test_golden.py, recorded before the finder,
    were checked equal with it switched off)."""
    off = OfflinePersonDetector(pedestrians=False)
    assert off.pedestrian_finder is None
    on = OfflinePersonDetector()
    assert on.detect(astronaut) != off.detect(astronaut)  # HOG takes the shuttle for someone
    monkeypatch.setattr(on.pedestrian_finder, "find", lambda image: [])
    found, expected = on.detect(astronaut), off.detect(astronaut)
    assert [p.box for p in found] == [p.box for p in expected]
    assert all(np.array_equal(a.full_mask(), b.full_mask()) for a, b in zip(found, expected))


def small_coco(shared) -> np.ndarray:
    from PIL import Image

    image = Image.open(shared("data/coco_val2017_000000001000.jpg")).convert("RGB")
    return np.asarray(image.resize((160, 120), Image.Resampling.BILINEAR))


#: The girl at the left of COCO 1000 seen at a quarter size (~50 pixels tall, head of 8
#: pixels: no face detector finds it and BlazePose proposes no body), by eye.
SMALL_GIRL = Box(12, 47, 27, 99)


def test_a_small_person_without_a_face_is_anonymized(shared):
    """Real photo, person seen small: with pedestrians (HOG) or NanoDet's bodies, most of her
    box is under a person (the benchmark's 70 %); with neither, none of it."""
    image = small_coco(shared)
    height, width = image.shape[:2]

    def covered(detector: OfflinePersonDetector) -> float:
        mask = np.zeros((height, width), bool)
        for person in detector.detect(image):
            mask |= person.mask_in_image(height, width)
        return float(mask[SMALL_GIRL.y0 : SMALL_GIRL.y1, SMALL_GIRL.x0 : SMALL_GIRL.x1].mean())

    # Pose confirms her (a mask: the box by eye holds some court too) or her box is kept.
    assert covered(OfflinePersonDetector()) >= 0.7
    assert covered(OfflinePersonDetector(bodies=False)) >= 0.7
    assert covered(OfflinePersonDetector(pedestrians=False)) >= 0.5  # NanoDet's box (measured 0.63)
    assert covered(OfflinePersonDetector(pedestrians=False, bodies=False)) < 0.1
