"""Baseline anonymizers of the paper's comparisons: mask-out, Gaussian blur, pixelation.

They are :class:`~sganon.core.interfaces.Generator` components that work at any crop
size and never change a pixel outside the region they are given (``mask == 0``).
"""

from .anonymizers import GaussianBlur, MaskOut, Pixelate

__all__ = ["GaussianBlur", "MaskOut", "Pixelate"]
