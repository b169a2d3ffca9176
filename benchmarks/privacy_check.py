"""Privacy check: does an independent face-recognition model still find or identify anyone?

Uses dlib's ResNet face-recognition model (MIT/CC0 packages, not a project dependency):

    .venv/bin/pip install dlib-bin face-recognition-models
    .venv/bin/sganon anonymize PHOTO... -o anonymized/ --ext png
    .venv/bin/python benchmarks/privacy_check.py ORIGINAL ANONYMIZED [ORIGINAL ANONYMIZED ...]

For each pair it prints how many faces dlib's HOG detector finds before and after, and for
each original face the smallest descriptor distance to any face found after (dlib's
convention: < 0.6 means the same person).
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image


def main(paths: list[str]) -> None:
    import dlib
    import face_recognition_models as models

    if not paths or len(paths) % 2:
        raise SystemExit("usage: privacy_check.py ORIGINAL ANONYMIZED [ORIGINAL ANONYMIZED ...]")
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(models.pose_predictor_model_location())
    encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def descriptors(path: str) -> list[np.ndarray]:
        image = np.asarray(Image.open(path).convert("RGB"))
        return [np.array(encoder.compute_face_descriptor(image, landmarks(image, box))) for box in detector(image, 1)]

    for original, anonymized in zip(paths[::2], paths[1::2]):
        before, after = descriptors(original), descriptors(anonymized)
        distances = [min(float(np.linalg.norm(a - b)) for b in after) for a in before] if after else []
        closest = f"{min(distances):.3f}" if distances else "n/a (no face found after)"
        verdict = "IDENTIFIABLE" if distances and min(distances) < 0.6 else "not identifiable"
        print(f"{original}: faces before {len(before)}, after {len(after)}, closest distance {closest} -> {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
