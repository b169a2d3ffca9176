"""Faces are replaced whole (the head, not the detector's tight box), as strongly when the
frame's edge cuts them as in full view, and `sganon audit` judges the head."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sganon.core.anonymizer import Anonymizer
from sganon.core.assembly import PipelineOptions, assemble
from sganon.core.audit import audit_images
from sganon.core.boxes import head_box
from sganon.core.components import build_component
from sganon.core.detections import Detections
from sganon.core.interfaces import Detector
from sganon.core.structures import Box, Detection


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pixelating_anonymizer(blocks: int = 8) -> Anonymizer:
    parts = assemble(detector="none", face_detector="none")
    parts = replace(parts, region_generator=build_component("generator", "pixelate", blocks=blocks))
    return Anonymizer(parts, PipelineOptions())


def longest_run(row: np.ndarray) -> int:
    """The longest run of equal pixels in ``row`` ``[W, 3]`` (a pixelation's block width)."""
    changes = np.flatnonzero(np.any(row[1:] != row[:-1], axis=1)) + 1
    edges = np.concatenate([[0], changes, [len(row)]])
    return int(np.diff(edges).max())


def test_a_face_region_is_the_whole_head():
    image = noise(240, 200)
    face = Box(80, 100, 120, 150)
    result = pixelating_anonymizer().anonymize(image, Detections([], [Detection(face, 0.9, label="face")]))
    head = head_box(face, 0.2)
    assert head.y0 < face.y0 - 0.4 * face.height  # forehead and hair
    assert result.replaced[head.y0 : head.y1, head.x0 : head.x1].all()
    assert result.replaced.sum() == head.area
    assert [d.box for d in result.detections.faces] == [head]


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(30, 70),
    aspect=st.floats(0.6, 0.9),
    cut=st.floats(0.2, 0.8),
    side=st.sampled_from(["left", "right"]),
    blocks=st.integers(4, 12),
)
def test_a_face_cut_by_the_frame_is_pixelated_as_strongly_as_in_full_view(height, aspect, cut, side, blocks):
    width = max(8, round(height * aspect))
    image = noise(260, 260, seed=height)
    face = Box(110, 120, 110 + width, 120 + height)
    anonymizer = pixelating_anonymizer(blocks)
    full = anonymizer.anonymize(image, Detections([], [Detection(face, 0.9, label="face")]))
    # The same picture with the frame's edge through the face: the detector boxes what is left.
    edge = face.x0 + round(cut * width)
    framed = image[:, edge:] if side == "left" else image[:, :edge]
    visible = face.shifted(-edge, 0).clip(*framed.shape[:2]) if side == "left" else face.clip(260, edge)
    cut_result = anonymizer.anonymize(
        np.ascontiguousarray(framed), Detections([], [Detection(visible, 0.9, label="face")])
    )
    row = face.y0 + height // 2
    in_full = full.image[row][full.replaced[row]]
    in_cut = cut_result.image[row][cut_result.replaced[row]]
    block = longest_run(in_full)  # the full view's row spans several blocks
    assert len(in_full) >= 2 * block
    assert longest_run(in_cut) == min(block, len(in_cut))  # not finer where the edge cuts the face


class FixedFace(Detector):
    name = "fixed-face"
    description = "one face at a fixed box (tests)"
    labels = ("face",)

    def __init__(self, box: Box) -> None:
        super().__init__()
        self.box = box

    def detect(self, image):
        return [Detection(self.box, 0.9, label="face")]


def test_the_audit_judges_the_head_not_the_tight_box():
    original = noise(240, 200, seed=3)
    face = Box(80, 100, 120, 150)
    detectors = [FixedFace(face)]
    only_the_box = original.copy()
    only_the_box[face.y0 : face.y1, face.x0 : face.x1] = 0
    (check,), _ = audit_images(detectors, original, only_the_box)
    assert check.left and check.replaced < 0.7  # hair and forehead still there
    head = head_box(face, 0.2)
    whole_head = original.copy()
    whole_head[head.y0 : head.y1, head.x0 : head.x1] = 0
    (check,), _ = audit_images(detectors, original, whole_head)
    assert not check.left
