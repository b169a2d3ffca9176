"""Registry-driven matrix: every registered component builds with its "tiny" defaults and
satisfies its interface. New plugins are covered without touching this file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sganon.core import CropBatch, Detection, Box, SurfaceMap
from sganon.core.components import registered
from sganon.core.interfaces import INTERFACES, Component
from sganon.core.registry import MODELS

COMPONENTS = [(kind, name) for kind in INTERFACES for name in sorted(registered(kind))]


def build(kind: str, name: str) -> tuple[Component, dict]:
    cls = registered(kind)[name]
    args = cls.default_args("tiny")
    component = MODELS.build({"type": cls.__name__, **args})
    assert isinstance(component, INTERFACES[kind])
    assert type(component).name == name and type(component).kind == kind
    return component, cls.capabilities(args)


def random_image(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def crop_batch(n: int, height: int, width: int, channels: int, vertices: bool) -> CropBatch:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(n, 1, height, width)
    mask[:, :, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 0
    border = torch.zeros_like(mask)
    border[:, :, height // 4, width // 4 : 3 * width // 4] = 1
    person = 1 - mask - border
    return CropBatch(
        image=torch.rand(n, 3, height, width, generator=g) * 2 - 1,
        mask=mask,
        border=border,
        embedding=torch.randn(n, channels, height, width, generator=g) * person,
        vertices=torch.zeros(n, height, width, dtype=torch.long) if vertices else None,
    )


def test_the_matrix_is_not_empty():
    assert ("generator", "pixelate") in COMPONENTS


@pytest.mark.parametrize("kind,name", COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_component_satisfies_its_interface(kind, name):
    component, caps = build(kind, name)
    assert isinstance(type(component).description, str) and type(component).description
    if kind == "detector":
        image = random_image()
        detections = component.detect(image)
        assert isinstance(detections, list)
        for detection in detections:
            assert isinstance(detection, Detection)
            assert detection.label in type(component).labels
            assert detection.box.clip(96, 128) == detection.box and not detection.box.is_empty()
            assert 0.0 <= detection.score <= 1.0
    elif kind == "embedder":
        image = random_image()
        mask = np.zeros((60, 40), bool)
        mask[10:50, 8:32] = True
        detections = [Detection(Box(20, 10, 60, 70), 0.9, mask), Detection(Box(70, 30, 110, 90), 0.8, mask)]
        surfaces = component.embed(image, detections)
        assert len(surfaces) == len(detections)
        for surface, detection in zip(surfaces, detections):
            assert isinstance(surface, SurfaceMap)
            assert surface.embedding.shape == (caps.surface_channels, detection.box.height, detection.box.width)
            assert np.isfinite(surface.embedding).all()
            assert (surface.vertices is not None) == caps.vertices
    elif kind == "generator":
        height, width = caps.resolution or (40, 24)
        batch = crop_batch(2, height, width, caps.surface_channels, caps.vertices)
        with torch.no_grad():
            out = component.eval().anonymize(batch, rng=torch.Generator().manual_seed(0))
        assert out.shape == batch.image.shape
        assert torch.isfinite(out).all()
        known = batch.mask.bool().expand_as(out)
        assert torch.equal(out[known], batch.image[known]), "a generator changed known pixels"
    elif kind == "discriminator":
        height, width = caps.resolution
        batch = crop_batch(2, height, width, 0, False)
        with torch.no_grad():
            outputs = component(batch.image, batch.condition, batch.mask)
        assert outputs["score"].shape == (2, 1)
        assert torch.isfinite(outputs["score"]).all()
    elif kind == "loss":
        assert isinstance(component, torch.nn.Module)
