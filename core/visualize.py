"""Drawings of what the pipeline did (``--visualize``): detections and surface maps."""

from __future__ import annotations

import numpy as np

from .anonymizer import AnonymizedImage


def draw_detections(result: AnonymizedImage) -> np.ndarray:
    """The anonymized image with person boxes (red), keypoints (yellow), face regions (blue)
    and each person's surface map (its channels projected to colours) overlaid."""
    from PIL import Image, ImageDraw

    canvas = result.image.astype(np.float32)
    for surface in result.surfaces:
        box, valid = surface.box, surface.valid
        if not valid.any() or surface.channels == 0:
            continue
        # A fixed random projection of the E channels to RGB, stretched over the valid pixels.
        projection = np.random.default_rng(0).standard_normal((3, surface.channels)).astype(np.float32)
        colour = np.tensordot(projection, surface.embedding, axes=1).transpose(1, 2, 0)
        low, high = colour[valid].min(axis=0), colour[valid].max(axis=0)
        colour = (colour - low) / np.maximum(high - low, 1e-6) * 255
        inside = box.clip(*canvas.shape[:2])
        rows = slice(inside.y0 - box.y0, inside.y1 - box.y0)
        cols = slice(inside.x0 - box.x0, inside.x1 - box.x0)
        target = canvas[inside.y0 : inside.y1, inside.x0 : inside.x1]
        keep = valid[rows, cols]
        target[keep] = 0.3 * target[keep] + 0.7 * colour[rows, cols][keep]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for person in result.detections.persons:
        draw.rectangle(
            [person.box.x0, person.box.y0, person.box.x1 - 1, person.box.y1 - 1], outline=(255, 0, 0), width=2
        )
        if person.keypoints is not None:
            for x, y, confidence in person.keypoints:
                if confidence >= 0.3:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 255, 0))
    for face in result.detections.faces:
        draw.rectangle([face.box.x0, face.box.y0, face.box.x1 - 1, face.box.y1 - 1], outline=(0, 96, 255), width=2)
    return np.asarray(image)
