"""``bones``: an offline body-surface embedding computed from keypoints and the person mask.

Every person pixel is assigned to its nearest *bone* (a segment between two keypoints)
and described by continuous coordinates on that bone. The 18 channels are:

==========  =====================================================================
channel     meaning
==========  =====================================================================
0..14       one-hot of the nearest bone (order: :data:`BONE_NAMES`)
15          position along the bone, 0 at its first keypoint, 1 at its second
16          signed distance from the bone axis (left/right of the bone direction as
            seen in the image), in units of a quarter torso length, clipped to [-1, 1]
17          facing: +1 when the person faces the camera, -1 when seen from the back
            (from the image order of the shoulders), 0 when unknown
==========  =====================================================================

A pixel is *valid* when it is in the mask, both keypoints of its bone are visible
(confidence >= ``min_confidence``) and it lies within ``max_distance`` torso lengths of
the bone; other person pixels carry no surface coordinate (the generator sees them as
"border": to be filled without guidance). Keypoints may be MediaPipe's 33 landmarks or
COCO's 17; with none, every pixel is invalid.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sganon.core.capabilities import EmbedderCapabilities
from sganon.core.interfaces import SurfaceEmbedder
from sganon.core.registry import MODELS
from sganon.core.structures import Detection, SurfaceMap

BONE_NAMES = (
    "head",
    "torso-left",
    "torso-right",
    "upper-arm-left",
    "forearm-left",
    "hand-left",
    "upper-arm-right",
    "forearm-right",
    "hand-right",
    "thigh-left",
    "shin-left",
    "foot-left",
    "thigh-right",
    "shin-right",
    "foot-right",
)

#: Named joints -> keypoint index (MediaPipe's 33 landmarks, COCO's 17 keypoints).
JOINTS = {
    33: {"nose": 0, "shoulder-l": 11, "shoulder-r": 12, "elbow-l": 13, "elbow-r": 14, "wrist-l": 15, "wrist-r": 16,
         "index-l": 19, "index-r": 20, "hip-l": 23, "hip-r": 24, "knee-l": 25, "knee-r": 26, "ankle-l": 27,
         "ankle-r": 28, "toe-l": 31, "toe-r": 32},
    17: {"nose": 0, "shoulder-l": 5, "shoulder-r": 6, "elbow-l": 7, "elbow-r": 8, "wrist-l": 9, "wrist-r": 10,
         "hip-l": 11, "hip-r": 12, "knee-l": 13, "knee-r": 14, "ankle-l": 15, "ankle-r": 16},
}  # fmt: skip

#: Bones as (start joint, end joint); "neck" is the shoulders' midpoint.
BONES = (
    ("nose", "neck"),
    ("shoulder-l", "hip-l"),
    ("shoulder-r", "hip-r"),
    ("shoulder-l", "elbow-l"),
    ("elbow-l", "wrist-l"),
    ("wrist-l", "index-l"),
    ("shoulder-r", "elbow-r"),
    ("elbow-r", "wrist-r"),
    ("wrist-r", "index-r"),
    ("hip-l", "knee-l"),
    ("knee-l", "ankle-l"),
    ("ankle-l", "toe-l"),
    ("hip-r", "knee-r"),
    ("knee-r", "ankle-r"),
    ("ankle-r", "toe-r"),
)

CHANNELS = len(BONE_NAMES) + 3


def joint_table(keypoints: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """``{joint: (x, y, confidence)}`` for a supported keypoint layout (else empty)."""
    layout = JOINTS.get(len(keypoints))
    if layout is None:
        return {}
    joints = {name: tuple(float(v) for v in keypoints[i]) for name, i in layout.items()}
    left, right = joints["shoulder-l"], joints["shoulder-r"]
    joints["neck"] = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2]))
    return joints  # type: ignore[return-value]


def bone_surface(
    keypoints: np.ndarray | None,
    mask: np.ndarray,
    origin: tuple[int, int],
    min_confidence: float = 0.3,
    max_distance: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """The embedding ``[18, h, w]`` and validity ``[h, w]`` of one person.

    Args:
        keypoints: ``[K, 3]`` (x, y, confidence) in image pixels, or ``None``.
        mask: bool ``[h, w]`` person mask of the box.
        origin: ``(x0, y0)`` of the box in the image.
        min_confidence: Keypoints below this confidence are not used.
        max_distance: Pixels farther than this many torso lengths from every usable bone
            are invalid.
    """
    height, width = mask.shape
    embedding = np.zeros((CHANNELS, height, width), dtype=np.float32)
    valid = np.zeros((height, width), dtype=bool)
    joints = joint_table(np.asarray(keypoints)) if keypoints is not None else {}
    if not joints or not mask.any():
        return embedding, valid
    neck, hip_l, hip_r = joints["neck"], joints["hip-l"], joints["hip-r"]
    torso = float(np.hypot(neck[0] - (hip_l[0] + hip_r[0]) / 2, neck[1] - (hip_l[1] + hip_r[1]) / 2))
    torso = max(torso, 4.0)
    ys, xs = np.nonzero(mask)
    px = xs.astype(np.float32) + origin[0] + 0.5
    py = ys.astype(np.float32) + origin[1] + 0.5
    best = np.full(px.shape, np.inf, dtype=np.float32)
    bone = np.full(px.shape, -1, dtype=np.int64)
    along = np.zeros(px.shape, dtype=np.float32)
    side = np.zeros(px.shape, dtype=np.float32)
    for index, (start, end) in enumerate(BONES):
        if start not in joints or end not in joints:
            continue
        (ax, ay, ac), (bx, by, bc) = joints[start], joints[end]
        if min(ac, bc) < min_confidence:
            continue
        dx, dy = bx - ax, by - ay
        length2 = max(dx * dx + dy * dy, 1e-6)
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1)
        ox, oy = px - (ax + t * dx), py - (ay + t * dy)
        distance = np.hypot(ox, oy)
        closer = distance < best
        best = np.where(closer, distance, best)
        bone = np.where(closer, index, bone)
        along = np.where(closer, t, along)
        cross = (dx * oy - dy * ox) / np.sqrt(length2)  # signed distance from the axis
        side = np.where(closer, np.clip(cross / (0.25 * torso), -1, 1), side)
    usable = (bone >= 0) & (best <= max_distance * torso)
    left, right = joints["shoulder-l"], joints["shoulder-r"]
    facing = 0.0
    if min(left[2], right[2]) >= min_confidence:
        facing = 1.0 if left[0] > right[0] else -1.0  # the person's left on the image's right
    rows, cols = ys[usable], xs[usable]
    embedding[bone[usable], rows, cols] = 1.0
    embedding[len(BONE_NAMES), rows, cols] = along[usable]
    embedding[len(BONE_NAMES) + 1, rows, cols] = side[usable]
    embedding[len(BONE_NAMES) + 2, rows, cols] = facing
    valid[rows, cols] = True
    return embedding, valid


@MODELS.register_module()
class BoneSurfaceEmbedder(SurfaceEmbedder):
    """Body-surface map from keypoints + mask: nearest bone, position along it, side, facing.

    Args:
        min_confidence: Keypoints below this confidence are not used.
        max_distance: Person pixels farther than this many torso lengths from every
            usable bone carry no surface coordinate.
    """

    name: ClassVar[str] = "bones"
    description: ClassVar[str] = (
        "offline surface map from keypoints: nearest bone one-hot, position along it, side, facing (18 ch)"
    )

    def __init__(self, min_confidence: float = 0.3, max_distance: float = 0.6) -> None:
        self.min_confidence = min_confidence
        self.max_distance = max_distance

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> EmbedderCapabilities:
        return EmbedderCapabilities(surface_channels=CHANNELS)

    def embed(self, image: np.ndarray, detections: list[Detection]) -> list[SurfaceMap]:
        maps = []
        for detection in detections:
            embedding, valid = bone_surface(
                detection.keypoints,
                detection.full_mask(),
                (detection.box.x0, detection.box.y0),
                self.min_confidence,
                self.max_distance,
            )
            maps.append(SurfaceMap(detection.box, embedding, valid))
        return maps
