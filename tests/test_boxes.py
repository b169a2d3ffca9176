"""Box expansion of SPEC §7.3 (core/boxes.py): worked examples and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sganon.core.boxes import PAPER_ASPECT, expand_axis, expand_box, expand_person_box, tight_box
from sganon.core.errors import InputError
from sganon.core.structures import Box


def test_expand_axis_grows_both_ends_and_puts_the_odd_pixel_at_the_end():
    assert expand_axis(10, 20, 14, 100) == (8, 22)
    assert expand_axis(10, 20, 15, 100) == (8, 23)


def test_expand_axis_shifts_inside_the_image():
    assert expand_axis(2, 12, 20, 100) == (0, 20)  # would start at -3: shifted right by 3
    assert expand_axis(90, 98, 20, 100) == (80, 100)  # would end at 104: shifted left
    assert expand_axis(0, 10, 40, 30) == (-10, 30)  # longer than the image: (-15, 25) shifted right by min(15, 5)
    assert expand_axis(-5, 35, 60, 30) == (-15, 45)  # past both ends: kept


def test_tight_box_adds_one_pixel_at_the_end_capped_at_the_box():
    mask = np.zeros((10, 8), bool)
    mask[2:5, 3:6] = True
    assert tight_box(mask, Box(100, 200, 108, 210)) == Box(103, 202, 107, 206)
    mask[:, 7] = True
    assert tight_box(mask, Box(0, 0, 8, 10)) == Box(3, 0, 8, 10)
    with pytest.raises(InputError):
        tight_box(mask, Box(0, 0, 9, 10))


def test_worked_example_follows_each_step():
    # tight 21x81 -> margin 23x89 -> aspect: width floor(89/1.8)=49 -> background share already met.
    mask = np.zeros((100, 60), bool)
    mask[10:90, 20:40] = True
    assert expand_person_box(mask, Box(100, 50, 160, 150), 400, 400) == Box(106, 56, 155, 145)


def test_background_share_grows_a_full_box():
    # A filled 100x180 person: margin -> 110x198 (aspect exactly 1.8 -> width floor(198/1.8)=110),
    # then area 21780 < floor(18000/0.7)=25714 -> scale both sides by sqrt(25714/21780).
    mask = np.ones((180, 100), bool)
    box = expand_person_box(mask, Box(200, 200, 300, 380), 1000, 1000)
    scale = math.sqrt(math.floor(18000 / 0.7) / (110 * 198))
    assert (box.width, box.height) == (math.floor(scale * 110), math.floor(scale * 198))


def test_small_persons_are_skipped():
    mask = np.zeros((40, 40), bool)
    mask[:31, :31] = True  # tight box 32x32 (one extra pixel) = 1024: kept
    assert expand_person_box(mask, Box(0, 0, 40, 40), 100, 100) is not None
    mask[:, 30] = False  # tight box 31x32 < 1024: skipped
    assert expand_person_box(mask, Box(0, 0, 40, 40), 100, 100) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(-50, 200),
    length=st.integers(1, 150),
    grow=st.integers(-20, 300),
    limit=st.integers(1, 400),
)
def test_expand_axis_reaches_the_target_and_stays_inside_when_it_can(start, length, grow, limit):
    target = max(1, length + grow)
    new_start, new_end = expand_axis(start, start + length, target, limit)
    assert new_end - new_start == target
    if 0 <= start and start + length <= limit and target <= limit and grow >= 0:
        assert 0 <= new_start and new_end <= limit


@st.composite
def person_masks(draw):
    height, width = draw(st.integers(8, 120)), draw(st.integers(8, 120))
    y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    y1, x1 = draw(st.integers(y0 + 1, height)), draw(st.integers(x0 + 1, width))
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    image_h, image_w = draw(st.integers(height, 400)), draw(st.integers(width, 400))
    bx, by = draw(st.integers(0, image_w - width)), draw(st.integers(0, image_h - height))
    return mask, Box(bx, by, bx + width, by + height), image_h, image_w


@settings(max_examples=200, deadline=None)
@given(person_masks())
def test_expanded_box_holds_the_person_with_the_aspect_and_background(case):
    mask, box, image_h, image_w = case
    tight = tight_box(mask, box)
    expanded = expand_person_box(mask, box, image_h, image_w, min_area=1)
    # The person is inside, the aspect is the generator's (up to the floors), and at least
    # 30 % is background (up to the floors of step d).
    assert expanded.x0 <= tight.x0 and expanded.y0 <= tight.y0 and expanded.x1 >= tight.x1 and expanded.y1 >= tight.y1
    assert abs(expanded.height - PAPER_ASPECT * expanded.width) <= PAPER_ASPECT + 2
    assert expanded.area >= mask.sum() / 0.7 - (expanded.width + expanded.height + 1)
    assert expanded == expand_box(tight, image_h, image_w, int(mask.sum()))


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 3000), width=st.integers(1, 3000), max_side=st.integers(64, 2000))
def test_the_detection_copy_keeps_a_pixel_budget_and_the_aspect(height, width, max_side):
    """``downscaled``: at most ``max_side x 2/3 max_side`` pixels (with rounding) and ``4 max_side``
    long; never enlarged; the aspect kept; a picture within the budget is detected as it is."""
    from sganon.core.detections import downscaled

    image = np.zeros((height, width, 3), np.uint8)
    small, factor = downscaled(image, max_side)
    h, w = small.shape[:2]
    assert 0 < factor <= 1.0
    if height * width <= max_side * max_side * 2 / 3 and max(height, width) <= 4 * max_side:
        assert small is image and factor == 1.0
    else:
        assert (h - 1) * (w - 1) <= max_side * max_side * 2 / 3 and max(h, w) <= 4 * max_side + 1
        assert abs(w / width - h / height) <= 1.0 / min(h, w) + 1e-9


def test_a_wide_group_photo_keeps_its_resolution_for_detection():
    from sganon.core.detections import downscaled

    wide = np.zeros((683, 2771, 3), np.uint8)  # faces of 30-40 px: a longest side of 1920 made them 21-28
    assert downscaled(wide, 1920)[1] == 1.0
    photo = np.zeros((4000, 6000, 3), np.uint8)  # a 3:2 photo: the longest side as before
    assert downscaled(photo, 1920)[0].shape[:2] == (1280, 1920)
    assert downscaled(np.zeros((1080, 1920, 3), np.uint8), 1920)[1] == 1.0  # 1080p as it is


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(2, 30), width=st.integers(2, 30), turns=st.integers(-4, 4), data=st.data()
)
def test_a_detection_of_a_turned_image_maps_back_pixel_for_pixel(height, width, turns, data):
    """``unrotate_detection``: the mask of a detection found on ``np.rot90(image, turns)``
    lands on the pixels it covered there, and a keypoint at a pixel's centre on that pixel."""
    from sganon.core.detections import unrotate_detection
    from sganon.core.structures import Detection

    th, tw = (width, height) if turns % 2 else (height, width)  # the turned image's size
    x0 = data.draw(st.integers(0, tw - 1))
    x1 = data.draw(st.integers(x0 + 1, tw))
    y0 = data.draw(st.integers(0, th - 1))
    y1 = data.draw(st.integers(y0 + 1, th))
    mask = data.draw(st.lists(st.booleans(), min_size=(y1 - y0) * (x1 - x0), max_size=(y1 - y0) * (x1 - x0)))
    mask = np.array(mask, bool).reshape(y1 - y0, x1 - x0)
    px, py = data.draw(st.integers(x0, x1 - 1)), data.draw(st.integers(y0, y1 - 1))
    found = Detection(Box(x0, y0, x1, y1), 0.5, mask, np.array([[px + 0.5, py + 0.5, 1.0]], np.float32))
    back = unrotate_detection(found, turns, height, width)
    expected = np.rot90(found.mask_in_image(th, tw), -turns)
    assert np.array_equal(back.mask_in_image(height, width), expected)
    marker = np.zeros((th, tw), bool)
    marker[py, px] = True
    (row,), (column,) = np.nonzero(np.rot90(marker, -turns))
    assert back.keypoints[0, :2].tolist() == [column + 0.5, row + 0.5]
