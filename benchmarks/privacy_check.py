"""Privacy check: does an independent face-recognition model still find or identify anyone?

Uses dlib's ResNet face-recognition model (MIT/CC0 packages, not a project dependency):

    pip install --target /tmp/dlibt dlib-bin face-recognition-models
    .venv/bin/sganon anonymize PHOTO... -o anonymized/ --ext png
    PYTHONPATH=/tmp/dlibt .venv/bin/python benchmarks/privacy_check.py ORIGINAL ANONYMIZED [ORIGINAL ANONYMIZED ...]

Two checks (dlib's convention: descriptors less than 0.6 apart are the same person):

* default, **found after**: how many faces dlib's HOG detector finds before and after, and for
  each original face the smallest distance to any face it finds after;
* ``--reidentify``, **an attacker who knows where each face was**: every face of the originals
  (dlib's HOG detector upsampled twice, or ``--faces mtcnn``: facenet-pytorch's MTCNN, which
  finds faces of 12-20 pixels; see benchmarks/independent_face_check.py) is described in the
  original and, at the same landmarks, in the output, found by a detector there or not. A face
  counts as *re-identified* when its own output is under 0.6 from it **and** nearer than the
  output of every face of the other photos (so a descriptor that says nothing, as on a face of
  a few blocks, where all outputs are about as near, does not count). Give several photos of
  different people, so that there are others to compare with.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

SAME_PERSON = 0.6


@dataclass
class Face:
    """One face of an original: where, and its descriptors before and after (``[128]``)."""

    photo: str
    box: tuple[int, int, int, int]  # x, y, width, height
    before: np.ndarray
    after: np.ndarray


def read_rgb(path: str) -> np.ndarray:
    try:
        return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    except OSError as error:  # missing, unreadable or not an image
        raise SystemExit(f"cannot read {path}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="ORIGINAL ANONYMIZED pairs")
    parser.add_argument("--reidentify", action="store_true", help="describe the outputs at the originals' landmarks")
    parser.add_argument("--faces", choices=("dlib", "mtcnn"), default="dlib", help="--reidentify: the face finder")
    args = parser.parse_args()
    if len(args.paths) % 2:
        raise SystemExit("usage: privacy_check.py ORIGINAL ANONYMIZED [ORIGINAL ANONYMIZED ...]")
    try:
        import dlib
        import face_recognition_models as models
    except ImportError as error:
        raise SystemExit(f"needs dlib and its models importable (see the module docstring): {error}")

    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(models.pose_predictor_model_location())
    encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    pairs = list(zip(args.paths[::2], args.paths[1::2]))

    def describe(image: np.ndarray, shape) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.array(encoder.compute_face_descriptor(image, shape))

    if not args.reidentify:
        for original, anonymized in pairs:
            found = []
            for path in (original, anonymized):
                image = read_rgb(path)
                found.append([describe(image, landmarks(image, box)) for box in detector(image, 1)])
            before, after = found
            distances = [min(float(np.linalg.norm(a - b)) for b in after) for a in before] if after else []
            closest = f"{min(distances):.3f}" if distances else "n/a (no face found after)"
            verdict = "IDENTIFIABLE" if distances and min(distances) < SAME_PERSON else "not identifiable"
            print(f"{original}: faces before {len(before)}, after {len(after)}, closest distance {closest} -> {verdict}")
        return

    if args.faces == "mtcnn":
        from independent_face_check import Mtcnn

        mtcnn = Mtcnn()
        find = lambda image: [dlib.rectangle(x, y, x + w, y + h) for x, y, w, h in mtcnn(image)]  # noqa: E731
    else:
        find = lambda image: list(detector(image, 2))  # noqa: E731
    faces = []
    for original, anonymized in pairs:
        before_image, after_image = read_rgb(original), read_rgb(anonymized)
        if before_image.shape != after_image.shape:
            raise SystemExit(f"{original} and {anonymized} differ in size")
        for rectangle in find(before_image):
            shape = landmarks(before_image, rectangle)
            box = (rectangle.left(), rectangle.top(), rectangle.width(), rectangle.height())
            faces.append(Face(original, box, describe(before_image, shape), describe(after_image, shape)))
    if len({face.photo for face in faces}) < 2:
        raise SystemExit("--reidentify needs faces in at least two photos (of different people) to compare with")
    reidentified = 0
    for face in faces:
        own = float(np.linalg.norm(face.before - face.after))
        others = [float(np.linalg.norm(face.before - other.after)) for other in faces if other.photo != face.photo]
        nearest = min(others, default=0.0)  # a photo's faces alone: nothing to compare with, nothing counted
        hit = own < SAME_PERSON and own < nearest
        reidentified += hit
        print(f"{face.photo} face {face.box}: own output {own:.2f}, nearest other output {nearest:.2f}"
              f"{'  -> RE-IDENTIFIED' if hit else ''}")
    print(f"faces {len(faces)} in {len(pairs)} photos, re-identified {reidentified}")


if __name__ == "__main__":
    main()
