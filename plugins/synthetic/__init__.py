"""Synthetic person-crop dataset (procedural silhouettes with surface maps) for smoke tests."""

from .dataset import SyntheticPersonCrops

__all__ = ["SyntheticPersonCrops"]
