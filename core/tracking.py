"""Tracking persons across video frames so no frame leaks a person its neighbours saw.

:class:`PersonTracker` matches each frame's person detections to tracks by box overlap
(greedy, best IoU first). A track keeps its id, so the generator gets the same latent,
the same synthetic identity, for it in every frame. A track missed for up to
``max_gap`` frames is *carried*: its last detection is anonymized again in the frames
where the detector missed it. :class:`FrameWindow` holds the last few frames back, so a
person first detected in frame t is also anonymized in the frames just before t, and
faces are shared between neighbouring frames the same way.

>>> from sganon.core.structures import Box, Detection
>>> tracker = PersonTracker()
>>> [track for _, track in tracker.update([Detection(Box(0, 0, 10, 20), 0.9)])]
[0]
>>> [track for _, track in tracker.update([])]  # missed: carried with the same id
[0]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .boxes import box_iou
from .structures import Detection


@dataclass
class Track:
    """A person followed across frames."""

    id: int
    detection: Detection
    missed: int = 0


class PersonTracker:
    """Greedy IoU tracker with carry-over of missed tracks.

    Args:
        iou_threshold: Minimum box IoU for a detection to continue a track.
        max_gap: Frames a track may be missed and still be anonymized (carried).
    """

    def __init__(self, iou_threshold: float = 0.3, max_gap: int = 5) -> None:
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self.next_id = 0
        self.born: list[int] = []

    def update(self, persons: list[Detection] | None) -> list[tuple[Detection, int]]:
        """Persons to anonymize in this frame with their track ids (detected + carried).

        ``persons=None`` means the frame was not run through the detector (every track is
        carried without counting as missed). :attr:`born` lists the ids new in this frame.
        """
        self.born = []
        if persons is None:
            return [(track.detection, track.id) for track in self.tracks]
        pairs = sorted(
            (
                (box_iou(track.detection.box, person.box), t, p)
                for t, track in enumerate(self.tracks)
                for p, person in enumerate(persons)
            ),
            key=lambda item: -item[0],
        )
        matched_tracks: set[int] = set()
        matched_persons: set[int] = set()
        for iou, t, p in pairs:
            if iou < self.iou_threshold:
                break
            if t in matched_tracks or p in matched_persons:
                continue
            matched_tracks.add(t)
            matched_persons.add(p)
            self.tracks[t].detection = persons[p]
            self.tracks[t].missed = 0
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= self.max_gap]
        for p, person in enumerate(persons):
            if p not in matched_persons:
                self.tracks.append(Track(self.next_id, person))
                self.born.append(self.next_id)
                self.next_id += 1
        return [(track.detection, track.id) for track in self.tracks]


@dataclass
class PendingFrame:
    """A frame waiting in the window: its pixels and what will be anonymized in it."""

    payload: Any
    persons: list[Detection] = field(default_factory=list)
    track_ids: list[int] = field(default_factory=list)
    faces: list[Detection] = field(default_factory=list)


class FrameWindow:
    """Holds back ``lookback`` frames so detections can be shared with earlier frames.

    Args:
        lookback: Frames a new track (and each face) is also applied to, backwards.
        face_carry: Frames each face is also applied to, forwards.
    """

    def __init__(self, lookback: int = 2, face_carry: int = 2) -> None:
        self.lookback = lookback
        self.face_carry = face_carry
        self.frames: deque[PendingFrame] = deque()
        self.recent_faces: deque[list[Detection]] = deque(maxlen=max(face_carry, 0) or None)

    def push(
        self, payload: Any, tracked: list[tuple[Detection, int]], born: list[int], faces: list[Detection]
    ) -> list[PendingFrame]:
        """Add a frame; returns the frames now complete (oldest first)."""
        frame = PendingFrame(payload, [d for d, _ in tracked], [t for _, t in tracked], list(faces))
        newborn = [(d, t) for d, t in tracked if t in born]
        for earlier in self.frames:
            for detection, track in newborn:
                if track not in earlier.track_ids:
                    earlier.persons.append(detection)
                    earlier.track_ids.append(track)
            earlier.faces.extend(faces)
        if self.face_carry > 0:
            for previous in self.recent_faces:
                frame.faces.extend(previous)
            self.recent_faces.append(list(faces))
        self.frames.append(frame)
        ready = []
        while len(self.frames) > self.lookback:
            ready.append(self.frames.popleft())
        return ready

    def drain(self) -> list[PendingFrame]:
        """The frames still held (end of the video)."""
        ready = list(self.frames)
        self.frames.clear()
        return ready
