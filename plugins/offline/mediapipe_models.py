"""The MediaPipe models that ship inside the ``mediapipe==0.10.21`` wheel, run offline.

* pose detection (``modules/pose_detection/pose_detection.tflite``, BlazePose detector):
  every person proposal in an image, through MediaPipe's ``PoseDetectionCpu`` subgraph
  (the packaged Pose solution keeps only the first one);
* pose landmarks + segmentation (``modules/pose_landmark/pose_landmark_full.tflite``):
  33 keypoints and a person mask for one person per call;
* face detection, full range (``modules/face_detection/face_detection_full_range_sparse.tflite``).

Nothing here downloads: only model complexity 1 of the Pose solution is used, whose files
are in the wheel. Licence of the models and of MediaPipe: Apache-2.0.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from typing import Any, Iterator

import numpy as np
from sganon.core.errors import PluginError
from sganon.core.structures import Box

from .blaze import PoseProposal, PoseResult


#: What MediaPipe and TensorFlow Lite print to fd 2 while their graphs start (native code,
#: outside Python's logging; no environment variable of this wheel silences them).
START_UP_LINES = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\])"
)


@contextlib.contextmanager
def start_up_lines_hidden() -> Iterator[None]:
    """Hide the native start-up lines of the graphs started in this block.

    Only in the main thread, once per graph set, while the pipeline is built (no stage
    thread runs yet): fd 2 is pointed at an anonymous file for the block, and whatever was
    written there that is not a known start-up line is written back to fd 2 afterwards, so
    no message is lost. In any other thread nothing is changed (the lines then show):
    swapping a process-wide file descriptor from worker threads lost other messages.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded interpreters)
        yield
        return
    sys.stderr.flush()
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace")
                others = "".join(line for line in text.splitlines(keepends=True) if not START_UP_LINES.match(line))
                if others:  # not ours to drop: somebody else's message, written back where it was going
                    os.write(2, others.encode("utf-8"))
    finally:
        os.close(saved)


def import_mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as error:  # pragma: no cover - mediapipe is a dependency
        raise PluginError(
            "the offline detector needs mediapipe==0.10.21 (a dependency of sganon); reinstall with "
            f"`pip install -e .`: {error}"
        ) from error
    if not hasattr(mediapipe, "solutions"):
        raise PluginError("this mediapipe has no `solutions` API; sganon needs mediapipe==0.10.21")
    return mediapipe


class MediaPipeModels:
    """MediaPipe graphs (one set per detector instance; not thread-safe).

    Args:
        min_pose_score: Minimum BlazePose detector confidence of a proposal.
        min_face_score: Minimum face detector confidence.
        start: The graphs to start now (``"poses"``, ``"pose"``, ``"faces"``), so their
            start-up lines are hidden once, here (:func:`start_up_lines_hidden`); the others
            start on first use.
    """

    def __init__(self, min_pose_score: float = 0.5, min_face_score: float = 0.5, start: tuple[str, ...] = ()) -> None:
        self.min_pose_score = min_pose_score
        self.min_face_score = min_face_score
        self._pose_detector: Any = None
        self._pose: Any = None
        self._faces: Any = None
        if start:
            with start_up_lines_hidden():
                blank = np.zeros((64, 64, 3), np.uint8)  # one run each: graphs open their models on first input
                for graph in start:
                    {"poses": self.detect_poses, "pose": self.estimate_pose, "faces": self.detect_faces}[graph](blank)

    def pose_detector(self) -> Any:
        if self._pose_detector is None:
            mp = import_mediapipe()
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python.solution_base import SolutionBase

            config = text_format.Parse(
                'input_stream: "image" output_stream: "detections" '
                'node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" '
                'output_stream: "DETECTIONS:detections" }',
                calculator_pb2.CalculatorGraphConfig(),
            )
            del mp
            self._pose_detector = SolutionBase(graph_config=config, outputs=["detections"])
        return self._pose_detector

    def pose(self) -> Any:
        if self._pose is None:
            mp = import_mediapipe()
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
            )
        return self._pose

    def faces(self) -> Any:
        if self._faces is None:
            mp = import_mediapipe()
            self._faces = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_face_score
            )
        return self._faces

    def detect_poses(self, image: np.ndarray) -> list[PoseProposal]:
        """Every BlazePose person proposal in ``image`` (uint8 RGB), in its pixels."""
        height, width = image.shape[:2]
        graph = self.pose_detector()
        output = graph.process({"image": np.ascontiguousarray(image)})
        proposals = []
        for detection in output.detections or []:
            score = float(detection.score[0]) if detection.score else 0.0
            if score < self.min_pose_score:
                continue
            points = [(p.x * width, p.y * height) for p in detection.location_data.relative_keypoints]
            if len(points) < 2:
                continue
            (cx, cy), (ex, ey) = points[0], points[1]
            face = relative_box(detection.location_data.relative_bounding_box, height, width)
            proposals.append(PoseProposal(score, (cx, cy), float(np.hypot(ex - cx, ey - cy)), face))
        return proposals

    def estimate_pose(self, image: np.ndarray) -> PoseResult | None:
        """Keypoints and segmentation of the most prominent person in ``image``, or ``None``."""
        height, width = image.shape[:2]
        graph = self.pose()
        output = graph.process(np.ascontiguousarray(image))
        if output.pose_landmarks is None:
            return None
        keypoints = np.array(
            [(p.x * width, p.y * height, p.visibility) for p in output.pose_landmarks.landmark], dtype=np.float32
        )
        segmentation = None if output.segmentation_mask is None else np.asarray(output.segmentation_mask, np.float32)
        return PoseResult(keypoints, segmentation)

    def detect_faces(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes (image pixels, may pass the borders) and scores in ``image``."""
        height, width = image.shape[:2]
        graph = self.faces()
        output = graph.process(np.ascontiguousarray(image))
        found = []
        for detection in output.detections or []:
            score = float(detection.score[0]) if detection.score else 0.0
            found.append((relative_box(detection.location_data.relative_bounding_box, height, width), score))
        return found


def relative_box(box: Any, height: int, width: int) -> Box:
    """A MediaPipe relative bounding box in pixels (rounded outwards)."""
    x0, y0 = box.xmin * width, box.ymin * height
    x1, y1 = x0 + box.width * width, y0 + box.height * height
    return Box(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
