"""Record the MediaPipe runtime's outputs on real photos as test vectors for the torch engine.

The offline detectors used to run MediaPipe's own runtime (``mediapipe==0.10.21``, Python
3.11/3.12 only); they now run the same ``.tflite`` files in torch (plugins/offline/blaze.py).
This script ran the original runtime once and wrote ``tests/vectors/mediapipe.npz``, which
``tests/test_blaze.py`` compares the torch engine against (so the tests do not need
mediapipe). To re-record, install ``mediapipe==0.10.21`` into a Python 3.11 or 3.12 venv
beside sganon and run::

    python benchmarks/record_mediapipe_vectors.py --out tests/vectors/mediapipe.npz

``--selfie`` records MediaPipe's selfie segmentation (``SelfieSegmentation(model_selection=0)``)
of each case instead, into ``tests/vectors/selfie.npz`` (recorded with mediapipe 0.10.14, whose
``selfie_segmentation.tflite`` is byte for byte the one of 0.10.21 that sganon ships).

Cases (``CASES``): each names an image source and a transform (see ``case_image``); faces
and pose proposals are recorded on the whole picture, the pose (keypoints, mask) on the crop
around each proposal's body and on the whole picture.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from vector_cases import CASES, case_image, pose_crops  # noqa: E402


class MediaPipeRuntime:
    """The MediaPipe 0.10.21 graphs as the offline detectors used them (before the torch engine)."""

    def __init__(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(
            'input_stream: "image" output_stream: "detections" '
            'node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" '
            'output_stream: "DETECTIONS:detections" }',
            calculator_pb2.CalculatorGraphConfig(),
        )
        self.pose_detector = SolutionBase(graph_config=config, outputs=["detections"])
        self.pose = mp.solutions.pose.Pose(
            static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
        )
        self.faces = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        self.selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def segment(self, image: np.ndarray) -> np.ndarray:
        """The selfie segmentation's person probabilities as uint8 0..255 ``[H, W]``."""
        mask = np.asarray(self.selfie.process(np.ascontiguousarray(image)).segmentation_mask, np.float32)
        return np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8)

    def detect_faces(self, image: np.ndarray) -> np.ndarray:
        """``[F, 5]``: relative box (xmin, ymin, width, height) and score."""
        output = self.faces.process(np.ascontiguousarray(image))
        rows = []
        for d in output.detections or []:
            b = d.location_data.relative_bounding_box
            rows.append([b.xmin, b.ymin, b.width, b.height, d.score[0]])
        return np.array(rows, np.float64).reshape(-1, 5)

    def detect_poses(self, image: np.ndarray) -> np.ndarray:
        """``[P, 13]``: relative face box (4), score, 4 relative keypoints (x, y) of every proposal."""
        output = self.pose_detector.process({"image": np.ascontiguousarray(image)})
        rows = []
        for d in output.detections or []:
            b = d.location_data.relative_bounding_box
            points = [v for p in d.location_data.relative_keypoints for v in (p.x, p.y)]
            rows.append([b.xmin, b.ymin, b.width, b.height, d.score[0], *points])
        return np.array(rows, np.float64).reshape(-1, 13)

    def estimate_pose(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Relative keypoints ``[33, 3]`` (x, y, visibility) and the segmentation as uint8 0..255."""
        output = self.pose.process(np.ascontiguousarray(image))
        if output.pose_landmarks is None:
            return None
        keypoints = np.array([(p.x, p.y, p.visibility) for p in output.pose_landmarks.landmark], np.float64)
        mask = np.asarray(output.segmentation_mask, np.float32)
        return keypoints, np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8)


def record(out: Path) -> None:
    runtime = MediaPipeRuntime()
    arrays: dict[str, Any] = {}
    summary = {}
    for name in CASES:
        image = case_image(name)
        if image is None:
            raise SystemExit(f"case {name}: its image is missing")
        arrays[f"{name}/faces"] = runtime.detect_faces(image)
        poses = runtime.detect_poses(image)
        arrays[f"{name}/poses"] = poses
        crops = pose_crops(image, poses)
        found = 0
        for k, crop in enumerate(crops):
            result = runtime.estimate_pose(image[crop[1] : crop[3], crop[0] : crop[2]])
            arrays[f"{name}/crop{k}/box"] = np.array(crop)
            if result is not None:
                arrays[f"{name}/crop{k}/keypoints"], arrays[f"{name}/crop{k}/mask"] = result
                found += 1
        summary[name] = {"faces": len(arrays[f"{name}/faces"]), "poses": len(poses), "crops": len(crops), "posed": found}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(json.dumps(summary, indent=1))


def record_selfie(out: Path) -> None:
    runtime = MediaPipeRuntime()
    arrays = {}
    for name in CASES:
        image = case_image(name)
        if image is None:
            raise SystemExit(f"case {name}: its image is missing")
        arrays[name] = runtime.segment(image)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(json.dumps({name: round(float((mask > 127).mean()), 3) for name, mask in arrays.items()}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="default: tests/vectors/mediapipe.npz (selfie.npz)")
    parser.add_argument("--selfie", action="store_true", help="record the selfie segmentation only")
    args = parser.parse_args()
    vectors = ROOT / "tests" / "vectors"
    if args.selfie:
        record_selfie(args.out or vectors / "selfie.npz")
    else:
        record(args.out or vectors / "mediapipe.npz")


if __name__ == "__main__":
    main()
