"""Video tracking (core/tracking.py): stable ids, interpolated gaps, carried and grown
tracks, the look-ahead window, bounded state."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sganon.core.detections import Detections
from sganon.core.structures import Box, Detection
from sganon.core.tracking import GROWTH_PER_FRAME_PERSON, Timeline, outer_box

SIZE = (480, 640)  # frame height, width


def person(x: float, y: float = 100, width: int = 20, height: int = 40) -> Detection:
    x0, y0 = int(round(x)), int(round(y))
    return Detection(Box(x0, y0, x0 + width, y0 + height), 0.9)


def face(x: float, y: float = 100, side: int = 20) -> Detection:
    x0, y0 = int(round(x)), int(round(y))
    return Detection(Box(x0, y0, x0 + side, y0 + side), 0.8, label="face")


def run(timeline: Timeline, frames: list[Detections | None]) -> list:
    done = []
    for index, found in enumerate(frames):
        done += timeline.push(index, *SIZE, found)
    return done + timeline.drain()


def covers(outer: Box, inner: Box) -> bool:
    inner = inner.clip(*SIZE)
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and outer.x1 >= inner.x1 and outer.y1 >= inner.y1


def test_every_frame_comes_out_once_in_order():
    done = run(Timeline(lookahead=3), [Detections([], [])] * 7)
    assert [frame.payload for frame in done] == list(range(7))


def test_a_moving_person_keeps_its_id_and_a_new_one_gets_another():
    done = run(Timeline(lookahead=0), [Detections([person(0)], []), Detections([person(3)], []),
                                       Detections([person(6), person(300)], [])])
    assert [frame.track_ids for frame in done] == [[0], [0], [0, 1]]


def test_a_gap_between_two_sightings_is_interpolated():
    frames = [Detections([person(0)], []), Detections([person(4)], [])] + [Detections([], [])] * 3
    frames.append(Detections([person(20)], []))
    done = run(Timeline(lookahead=5, max_gap=5), frames)
    assert [frame.persons[0].box.x0 for frame in done] == [0, 4, 8, 12, 16, 20]
    assert all(frame.track_ids == [0] for frame in done)


def test_a_lost_track_is_carried_along_its_motion_grown_then_dropped():
    frames = [Detections([person(0)], []), Detections([person(10)], [])] + [Detections([], [])] * 5
    done = run(Timeline(lookahead=0, max_gap=3), frames)
    boxes = [[d.box for d in frame.persons] for frame in done]
    assert [len(b) for b in boxes] == [1, 1, 1, 1, 1, 0, 0]
    for away, (box,) in enumerate(boxes[2:5], start=1):
        expected = person(10 + 10 * away).box
        assert covers(box, expected) and box.width > expected.width  # moved and grown
    assert boxes[4][0].width > boxes[2][0].width  # the further away, the larger


def test_a_carried_box_keeps_its_size_when_the_detectors_boxes_differ_in_size():
    """Two sightings of one standing person, a box and then a slightly looser one around the
    same centre: the carried box is the looser one grown by the margin, not a box that goes
    on widening by the difference every frame."""
    frames = [Detections([person(100, 100, 50, 100)], []), Detections([person(95, 90, 60, 120)], [])]
    done = run(Timeline(lookahead=0, max_gap=4), frames + [Detections([], [])] * 4)
    for away, frame in enumerate(done[2:], start=1):
        (box,) = [d.box for d in frame.persons]
        pad_x, pad_y = away * GROWTH_PER_FRAME_PERSON * 60, away * GROWTH_PER_FRAME_PERSON * 120
        expected = (95 - pad_x, 90 - pad_y, 155 + pad_x, 210 + pad_y)
        assert all(abs(a - b) <= 1 for a, b in zip(box, expected)), (away, box, expected)  # pads round up


def test_a_carried_mask_is_dilated_with_its_box():
    mask = np.zeros((40, 20), bool)
    mask[10:30, 5:15] = True
    seen = Detection(Box(100, 100, 120, 140), 0.9, mask)
    done = run(Timeline(lookahead=0, max_gap=2), [Detections([seen], []), Detections([], [])])
    carried = done[1].persons[0]
    assert carried.mask.shape == (carried.box.height, carried.box.width)
    assert carried.mask.sum() > mask.sum()
    assert carried.mask_in_image(*SIZE)[seen.mask_in_image(*SIZE)].all()


def test_a_person_first_seen_later_is_applied_to_the_frames_held_back():
    frames = [Detections([], [])] * 4 + [Detections([person(30)], []), Detections([person(32)], [])]
    done = run(Timeline(lookahead=2, max_gap=5), frames)
    # Seen first in frame 4: also anonymized in the 2 frames held back before it.
    assert [frame.track_ids for frame in done] == [[], [], [0], [0], [0], [0]]


def test_frames_without_detection_carry_every_track():
    frames = [Detections([], [face(50)]), None, None, Detections([], [face(56)])]
    done = run(Timeline(lookahead=3, max_gap=3), frames)
    assert [[f.box.x0 for f in frame.faces] for frame in done] == [[50], [52], [54], [56]]


def test_faces_and_persons_are_separate_tracks():
    frames = [Detections([person(100, 100, 60, 60)], [face(100, 100, 60)])]
    done = run(Timeline(lookahead=0), frames)
    assert len(done[0].persons) == 1 and len(done[0].faces) == 1


def test_the_state_stays_bounded_on_a_long_video():
    timeline = Timeline(lookahead=4, max_gap=3)
    for index in range(500):
        timeline.push(index, *SIZE, Detections([person(index % 600)], [face(5 + index % 300)]))
    assert all(len(track.sightings) <= 4 + 3 for track in [*timeline.tracks, *timeline.ended])
    assert len(timeline.frames) == 4


@settings(max_examples=80, deadline=None)
@given(
    start=st.tuples(st.integers(-30, 600), st.integers(-30, 440)),
    speed=st.tuples(st.floats(-0.25, 0.25), st.floats(-0.25, 0.25)),
    side=st.integers(12, 80),
    misses=st.lists(st.booleans(), min_size=20, max_size=20),
    lookahead=st.integers(0, 6),
    max_gap=st.integers(1, 6),
)
def test_a_face_in_steady_motion_is_covered_in_every_frame_near_a_sighting(
    start, speed, side, misses, lookahead, max_gap
):
    """Whatever frames the detector misses, a face moving steadily (the camera panning, up to
    a quarter of its size per frame) is covered in every frame up to ``max_gap`` frames after
    a sighting, and in every gap of at most ``max_gap`` frames between two sightings."""
    velocity = (speed[0] * side, speed[1] * side)
    truth = [face(start[0] + velocity[0] * t, start[1] + velocity[1] * t, side).box for t in range(20)]
    seen = [t < 2 or not missed for t, missed in enumerate(misses)]  # two sightings give the speed
    frames = [Detections([], [face(truth[t].x0, truth[t].y0, side)] if seen[t] else []) for t in range(20)]
    done = run(Timeline(lookahead=lookahead, max_gap=max_gap), frames)
    for t, frame in enumerate(done):
        before = max(s for s in range(t + 1) if seen[s])
        after = min((s for s in range(t, 20) if seen[s]), default=None)
        near = t - before <= max_gap or (after is not None and after - before - 1 <= max_gap)
        if near and not truth[t].clip(*SIZE).is_empty():
            assert any(covers(f.box, truth[t]) for f in frame.faces), (t, truth[t], [f.box for f in frame.faces])


@settings(max_examples=80, deadline=None)
@given(
    start=st.tuples(st.integers(-30, 560), st.integers(-30, 400)),
    speed=st.tuples(st.floats(-0.04, 0.04), st.floats(-0.02, 0.02)),
    height=st.integers(60, 200),
    change=st.floats(-0.02, 0.02),
    misses=st.lists(st.booleans(), min_size=20, max_size=20),
    max_gap=st.integers(1, 6),
)
# Standing, growing (walking towards the camera), lost for the last 5 frames: only the growth
# margin covers what the centre's motion does not.
@example(start=(300, 200), speed=(0.0, 0.0), height=100, change=0.02, misses=[False] * 15 + [True] * 5, max_gap=5)
def test_a_person_walking_steadily_is_covered_in_every_frame_near_a_sighting(
    start, speed, height, change, misses, max_gap
):
    """Whatever frames the detector misses, a person walking steadily (up to 4 % of its
    height per frame across, 2 % up or down: a walker covers 2-5 % of his height per frame at
    10-25 fps) and growing or shrinking by up to 2 % per frame (walking towards or away from
    the camera) is covered in every frame up to ``max_gap`` frames after a sighting, and in
    every gap of at most ``max_gap`` frames between two sightings."""

    def truth(t: int) -> Box:  # rounded outwards, so each box holds the person
        tall = height * (1 + change * t)
        wide = tall / 2
        centre_x, centre_y = start[0] + speed[0] * height * t, start[1] + speed[1] * height * t
        return outer_box(np.array([centre_x - wide / 2, centre_y - tall / 2, centre_x + wide / 2, centre_y + tall / 2]))

    seen = [t < 2 or not missed for t, missed in enumerate(misses)]  # two sightings give the speed
    frames = [Detections([Detection(truth(t), 0.9)] if seen[t] else [], []) for t in range(20)]
    done = run(Timeline(lookahead=6, max_gap=max_gap), frames)
    for t, frame in enumerate(done):
        before = max(s for s in range(t + 1) if seen[s])
        after = min((s for s in range(t, 20) if seen[s]), default=None)
        near = t - before <= max_gap or (after is not None and after - before - 1 <= max_gap)
        if near and not truth(t).clip(*SIZE).is_empty():
            assert any(covers(p.box, truth(t)) for p in frame.persons), (t, truth(t), [p.box for p in frame.persons])
