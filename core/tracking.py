"""Persons and faces across video frames, so no frame leaks someone its neighbours saw.

Detectors miss people in single frames (motion blur, a turned head, a face at the edge),
and a person entering the picture is often found a few frames after the first pixels of
them appear. :class:`Timeline` therefore holds the newest ``lookahead`` frames back before
they are anonymized, and follows persons and faces as *tracks*: each detection frame's
persons, and separately its faces, are matched to the tracks by the overlap of their boxes
with where each track is expected in that frame (greedy, best IoU first). A person track
keeps its id, so the generator gets the same latent, the same synthetic identity, for it in
every frame.

When a frame leaves the window, every track seen within ``max_gap`` frames of it is applied:

* seen in that frame: its detection;
* seen before and after it, with at most ``max_gap`` frames between the two sightings: the
  box interpolated between them (mask and keypoints of the nearer sighting, fitted into it);
* seen on one side only (it entered or left the picture, or the detector lost it for longer):
  the nearest sighting moved by the track's velocity (of its box's centre: sizes are not
  extrapolated) and grown by how far it could have moved since (per frame away: half its
  measured speed plus a tenth of a face's size or a twentieth of a person's, or, when a
  single sighting gave no speed, three tenths of a face's size and a tenth of a person's),
  mask dilated to match. Privacy first: an unneeded margin costs a little utility, a missed
  face costs an identity.

>>> from sganon.core.detections import Detections
>>> from sganon.core.structures import Box, Detection
>>> timeline = Timeline(lookahead=1, max_gap=2)
>>> face = Detection(Box(40, 40, 60, 60), 0.9, label="face")
>>> done = timeline.push("a", 100, 100, Detections([], [face]))   # held back
>>> done += timeline.push("b", 100, 100, Detections([], []))      # a missed face
>>> done += timeline.drain()
>>> [(frame.payload, [f.box for f in frame.faces]) for frame in done]
[('a', [Box(x0=40, y0=40, x1=60, y1=60)]), ('b', [Box(x0=34, y0=34, x1=66, y1=66)])]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .boxes import box_iou
from .crops import dilate, resize_nearest
from .detections import Detections
from .structures import Box, Detection

#: Per frame away from a sighting, a carried face grows by this fraction of its size on each
#: side (how far it or the camera may have moved that the velocity does not explain) ...
GROWTH_PER_FRAME = 0.1
#: ... a person, whose body changes speed and size slowly against its size, by this one ...
GROWTH_PER_FRAME_PERSON = 0.05
#: ... plus this fraction of the track's measured speed (pixels per frame, per coordinate);
SPEED_MARGIN = 0.5
#: with a single sighting (no speed known), by this fraction of its size instead: a face
#: may move a third of its size in a frame (a pan, a turned head) ...
UNKNOWN_SPEED_GROWTH = 0.3
#: ... a body, being larger, a tenth (a walker covers 2-5 % of his height per frame at 10-25
#: fps); 0.3 made single HOG boxes and motion regions in real footage cover large patches
#: (benchmarks/bench_pedestrians.py: a third of the frame replaced on average).
UNKNOWN_SPEED_GROWTH_PERSON = 0.1


def box_coordinates(box: Box) -> np.ndarray:
    return np.array(box, dtype=np.float64)


def outer_box(coordinates: np.ndarray) -> Box:
    """The integer box holding float ``[x0, y0, x1, y1]`` (rounded outwards)."""
    x0, y0, x1, y1 = coordinates
    return Box(math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))


@dataclass
class Track:
    """A person or a face followed across frames.

    Attributes:
        id: Stable id (persons: the key of the generator's latent).
        label: ``"person"`` or ``"face"``.
        sightings: Frame position -> the detection found there, in increasing order (the
            two before the oldest held frame and all after it).
    """

    id: int
    label: str
    sightings: dict[int, Detection] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return next(reversed(self.sightings))

    def velocity(self, near: int, towards: int) -> np.ndarray | None:
        """``[4]`` box-coordinate change per frame: the motion of the box's centre from the
        sighting next to ``near`` on the far side from ``towards`` to ``near`` (the box moves,
        its size is kept); ``None`` when there is no such sighting. Sizes are not
        extrapolated: one person's boxes from different sources (a mask, a motion blob, a
        pedestrian window) differ in size from frame to frame, and carrying that difference
        forward made carried boxes several times the person's size."""
        positions = list(self.sightings)
        index = positions.index(near)
        other = index - 1 if towards >= near else index + 1
        if not 0 <= other < len(positions):
            return None
        a, b = positions[other], near
        change = (box_coordinates(self.sightings[b].box) - box_coordinates(self.sightings[a].box)) / (b - a)
        centre = (change[:2] + change[2:]) / 2
        return np.concatenate([centre, centre])

    def expected_box(self, position: int) -> np.ndarray:
        """Where the track's box is expected at ``position`` after its last sighting."""
        last = self.last
        velocity = self.velocity(last, position)
        moved = np.zeros(4) if velocity is None else velocity * (position - last)
        return box_coordinates(self.sightings[last].box) + moved


def fitted(detection: Detection, coordinates: np.ndarray, grow: np.ndarray, height: int, width: int) -> Detection | None:
    """``detection`` moved and resized onto ``coordinates`` (float ``[x0, y0, x1, y1]``), its
    box then grown by ``grow`` pixels per side (``[4]``: left, top, right, bottom) and its mask
    dilated by as much, clipped to the frame; ``None`` when nothing of it is in the frame."""
    core = outer_box(coordinates)
    if core.width < 1 or core.height < 1:
        return None
    pad = np.ceil(np.maximum(grow, 0)).astype(int)
    grown = Box(core.x0 - pad[0], core.y0 - pad[1], core.x1 + pad[2], core.y1 + pad[3])
    inside = grown.clip(height, width)
    if inside.is_empty():
        return None
    keypoints = None
    if detection.keypoints is not None:
        source = detection.box
        scale = np.array([core.width / max(source.width, 1), core.height / max(source.height, 1)])
        keypoints = detection.keypoints.copy()
        keypoints[:, :2] = (keypoints[:, :2] - [source.x0, source.y0]) * scale + [core.x0, core.y0]
    mask = None
    if detection.mask is not None:
        placed = np.zeros((grown.height, grown.width), dtype=bool)
        placed[pad[1] : pad[1] + core.height, pad[0] : pad[0] + core.width] = resize_nearest(
            detection.mask, (core.height, core.width)
        )
        radius = int(pad.max())
        if radius > 0:
            placed = dilate(torch.from_numpy(placed), radius).numpy()
        mask = placed[inside.y0 - grown.y0 : inside.y1 - grown.y0, inside.x0 - grown.x0 : inside.x1 - grown.x0]
        if not mask.any():
            return None
    return Detection(inside, detection.score, mask, keypoints, detection.label)


@dataclass
class PendingFrame:
    """A frame leaving the window: its payload and what is anonymized in it.

    Attributes:
        payload: What the caller pushed (e.g. the frame's pixels).
        persons: Persons to anonymize, each with the id of its track in ``track_ids``.
        track_ids: Track id of each person.
        faces: Faces to anonymize.
    """

    payload: Any
    persons: list[Detection] = field(default_factory=list)
    track_ids: list[int] = field(default_factory=list)
    faces: list[Detection] = field(default_factory=list)


@dataclass
class HeldFrame:
    position: int
    payload: Any
    height: int
    width: int


class Timeline:
    """Tracks of persons and faces over a window of frames (module docstring).

    Args:
        lookahead: Frames held back before they are anonymized, so tracks are filled
            backwards too (a person found late, a face missed in between). Memory: that
            many decoded frames; latency: that many frames.
        max_gap: A track is applied up to this many frames away from a sighting, and
            ends when a detection frame finds it no nearer than that to its last one.
        iou_threshold: Minimum IoU of a detection with a track's expected box to continue it.
    """

    def __init__(self, lookahead: int = 5, max_gap: int = 5, iou_threshold: float = 0.3) -> None:
        if lookahead < 0 or max_gap < 0:
            raise ValueError(f"lookahead and max_gap must be >= 0, got {lookahead} and {max_gap}")
        self.lookahead = lookahead
        self.max_gap = max_gap
        self.iou_threshold = iou_threshold
        self.frames: deque[HeldFrame] = deque()
        self.tracks: list[Track] = []  # active: still matched against new detections
        self.ended: list[Track] = []  # no longer matched, still needed by held frames
        self.next_id = {"person": 0, "face": 0}
        self.position = 0

    def push(self, payload: Any, height: int, width: int, found: Detections | None) -> list[PendingFrame]:
        """Add the next frame (``height x width``) with what the detectors found in it
        (``None``: the detectors did not run on it); returns the frames now complete,
        oldest first."""
        position = self.position
        self.position += 1
        if found is not None:
            self.match(position, found.persons, "person")
            self.match(position, found.faces, "face")
        self.frames.append(HeldFrame(position, payload, height, width))
        ready = []
        while len(self.frames) > self.lookahead:
            ready.append(self.complete(self.frames.popleft()))
        self.forget()
        return ready

    def drain(self) -> list[PendingFrame]:
        """The frames still held (end of the video)."""
        ready = [self.complete(frame) for frame in self.frames]
        self.frames.clear()
        return ready

    def match(self, position: int, detections: list[Detection], label: str) -> None:
        tracks = [track for track in self.tracks if track.label == label]
        expected = [outer_box(track.expected_box(position)) for track in tracks]
        pairs = sorted(
            (
                (box_iou(box, detection.box), t, d)
                for t, box in enumerate(expected)
                for d, detection in enumerate(detections)
            ),
            key=lambda item: -item[0],
        )
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for iou, t, d in pairs:
            if iou < self.iou_threshold:
                break
            if t in matched_tracks or d in matched_detections:
                continue
            matched_tracks.add(t)
            matched_detections.add(d)
            tracks[t].sightings[position] = detections[d]
        for t, track in enumerate(tracks):
            if t not in matched_tracks and position - track.last > self.max_gap:
                self.tracks.remove(track)
                self.ended.append(track)
        for d, detection in enumerate(detections):
            if d not in matched_detections:
                self.tracks.append(Track(self.next_id[label], label, {position: detection}))
                self.next_id[label] += 1

    def forget(self) -> None:
        """Drop what no held or future frame can need: ended tracks out of reach, and the
        sightings of every track but the two last before the oldest held frame (a track's
        velocity needs two)."""
        oldest = self.frames[0].position if self.frames else self.position
        self.ended = [track for track in self.ended if track.last + self.max_gap >= oldest]
        for track in [*self.tracks, *self.ended]:
            old = [p for p in track.sightings if p < oldest]
            for p in old[:-2]:
                del track.sightings[p]

    def complete(self, frame: HeldFrame) -> PendingFrame:
        pending = PendingFrame(frame.payload)
        for track in [*self.tracks, *self.ended]:
            detection = self.track_at(track, frame)
            if detection is None:
                continue
            if track.label == "person":
                pending.persons.append(detection)
                pending.track_ids.append(track.id)
            else:
                pending.faces.append(detection)
        return pending

    def track_at(self, track: Track, frame: HeldFrame) -> Detection | None:
        """What of ``track`` is anonymized in ``frame`` (module docstring), or ``None``."""
        position = frame.position
        if position in track.sightings:
            return track.sightings[position]
        before = max((p for p in track.sightings if p < position), default=None)
        after = min((p for p in track.sightings if p > position), default=None)
        if before is not None and after is not None and after - before - 1 <= self.max_gap:
            weight = (position - before) / (after - before)
            start, end = box_coordinates(track.sightings[before].box), box_coordinates(track.sightings[after].box)
            nearer = track.sightings[before if weight <= 0.5 else after]
            return fitted(nearer, start + (end - start) * weight, np.zeros(4), frame.height, frame.width)
        nearest = min(
            (p for p in (before, after) if p is not None and abs(position - p) <= self.max_gap),
            key=lambda p: abs(position - p),
            default=None,
        )
        if nearest is None:
            return None
        sighting = track.sightings[nearest]
        away = abs(position - nearest)
        velocity = track.velocity(nearest, position)
        size = np.array([sighting.box.width, sighting.box.height] * 2, dtype=np.float64)
        if velocity is None:
            coordinates = box_coordinates(sighting.box)
            growth = UNKNOWN_SPEED_GROWTH_PERSON if track.label == "person" else UNKNOWN_SPEED_GROWTH
            grow = away * growth * size
        else:
            coordinates = box_coordinates(sighting.box) + velocity * (position - nearest)
            growth = GROWTH_PER_FRAME_PERSON if track.label == "person" else GROWTH_PER_FRAME
            grow = away * (SPEED_MARGIN * np.abs(velocity) + growth * size)
        return fitted(sighting, coordinates, grow, frame.height, frame.width)
