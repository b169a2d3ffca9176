"""Video tracking (core/tracking.py): stable ids, carried gaps, look-back, shared faces."""

from __future__ import annotations

from sganon.core.structures import Box, Detection
from sganon.core.tracking import FrameWindow, PersonTracker


def at(x: int, y: int = 0) -> Detection:
    return Detection(Box(x, y, x + 20, y + 40), 0.9)


def test_a_moving_person_keeps_its_id_and_a_new_one_gets_another():
    tracker = PersonTracker()
    ids = [track for _, track in tracker.update([at(0)])]
    ids += [track for _, track in tracker.update([at(3)])]
    both = tracker.update([at(6), at(100)])
    assert ids == [0, 0]
    assert sorted(track for _, track in both) == [0, 1] and tracker.born == [1]


def test_a_missed_person_is_carried_for_max_gap_frames_then_dropped():
    tracker = PersonTracker(max_gap=2)
    tracker.update([at(10)])
    assert [d.box for d, _ in tracker.update([])] == [at(10).box]
    assert [d.box for d, _ in tracker.update([])] == [at(10).box]
    assert tracker.update([]) == []
    # Frames not run through the detector carry every track without counting as misses.
    tracker.update([at(50)])
    for _ in range(5):
        assert [t for _, t in tracker.update(None)] == [1]


def test_a_person_first_seen_later_is_applied_to_the_frames_held_back():
    tracker, window = PersonTracker(), FrameWindow(lookback=2)
    done = []
    for index, persons in enumerate([[], [], [], [at(30)], [at(32)]]):
        tracked = tracker.update(persons)
        done += window.push(index, tracked, tracker.born, [])
    done += window.drain()
    assert [frame.payload for frame in done] == [0, 1, 2, 3, 4]
    # Seen first in frame 3: also anonymized in the 2 frames before (frame 0 was already written).
    assert [frame.track_ids for frame in done] == [[], [0], [0], [0], [0]]


def test_faces_are_shared_with_neighbouring_frames():
    window = FrameWindow(lookback=1, face_carry=1)
    face = Detection(Box(5, 5, 15, 15), 0.8, label="face")
    done = []
    for index, faces in enumerate([[], [], [face], [], []]):
        done += window.push(index, [], [], faces)
    done += window.drain()
    assert [len(frame.faces) for frame in done] == [0, 1, 1, 1, 0]
