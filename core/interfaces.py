"""The interfaces every plugin component implements.

A component is a class registered in :data:`sganon.core.registry.MODELS`. Its *kind* is
the interface it derives from (``Detector`` -> ``"detector"``, ...), and its ``name`` is
the short name users type (``sganon build --generator NAME``). Names are unique within a
kind; the registry key (the class name) is unique across all kinds.

Each component class says what it needs and gives through the classmethod
``capabilities(args)``, which returns the typed dataclass of its kind
(:mod:`sganon.core.capabilities`), so ``sganon build`` and the pipeline assembly can check
that parts fit without building anything heavy. Every component can be moved to a torch
device with ``to(device)``; the assembly does so for each part.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .capabilities import (
    DetectorCapabilities,
    DiscriminatorCapabilities,
    EmbedderCapabilities,
    GeneratorCapabilities,
    LossCapabilities,
)
from .structures import CropBatch, Detection, SurfaceMap



class Component:
    """Mixin of every registered component.

    Class attributes:
        kind: The interface's kind name (set by the interface classes below).
        name: Short user-facing name, unique within the kind (what ``--generator`` etc. take).
        description: One line shown by ``sganon plugins list`` and ``sganon build``.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        """Constructor keyword arguments for a build profile (``"paper"`` or ``"tiny"``)."""
        return {}

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> Any:
        """What a component built with ``args`` offers and needs: the capabilities dataclass
        of its kind (:class:`DetectorCapabilities`, :class:`GeneratorCapabilities`, ...)."""
        raise NotImplementedError


class DeviceComponent:
    """``to(device)`` for components that are not ``torch.nn.Module`` s.

    The device is recorded in ``self.device``; a component that runs a torch model moves
    it there. Components whose models run outside torch (e.g. TFLite on the CPU) keep the
    record, so the assembly can still tell what each part was asked for.
    """

    device: torch.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "DeviceComponent":
        self.device = torch.device(device)
        return self


class Detector(DeviceComponent, Component, ABC):
    """Finds people (and/or faces) in an RGB image.

    A detector whose model also is a surface embedder (DensePose-CSE gives boxes and surface
    maps from one forward) declares ``DetectorCapabilities(serves_embedder=NAME)``, attaches
    each person's map to ``Detection.surface``, and implements::

        def as_embedder(self) -> SurfaceEmbedder

    an embedder sharing its model (one copy of the weights): the assembly uses it instead of
    building the embedder ``NAME``, and it returns the attached maps without a second forward.
    """

    kind = "detector"
    #: Which labels this detector reports (``"person"``, ``"face"``).
    labels: ClassVar[tuple[str, ...]] = ("person",)

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> DetectorCapabilities:
        return DetectorCapabilities(labels=tuple(cls.labels))

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect in ``image``, uint8 RGB ``[H, W, 3]``; boxes lie inside the image."""

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` of each image (video frames). Detectors whose model takes a batch
        override this with one forward; the results must equal per-image calls."""
        return [self.detect(image) for image in images]


class SurfaceEmbedder(DeviceComponent, Component, ABC):
    """Gives each detected person a dense pixel-to-surface map.

    Optional hook (declare it with ``EmbedderCapabilities(crop_surface=True)``)::

        def surface_at_crop(self, embedding: Tensor [E, H, W], mask: Tensor bool [H, W])
            -> tuple[Tensor [E, H, W], Tensor int64 [H, W]]

    recomputes the surface at the generator's crop resolution (CSE: nearest mesh vertex of
    each crop pixel and that vertex's embedding, SPEC §7.6).
    """

    kind = "embedder"

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> EmbedderCapabilities:
        return EmbedderCapabilities()

    @abstractmethod
    def embed(self, image: np.ndarray, detections: list[Detection]) -> list[SurfaceMap]:
        """One :class:`SurfaceMap` per person detection (same order), over its box."""


class Generator(nn.Module, Component):
    """Fills the unknown region of person crops.

    Implementations must leave known pixels (``mask == 1``) exactly unchanged.
    """

    kind = "generator"

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> GeneratorCapabilities:
        return GeneratorCapabilities()

    @abstractmethod
    def anonymize(
        self,
        batch: CropBatch,
        z: torch.Tensor | None = None,
        truncation: float | None = None,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Anonymize a batch of crops.

        Args:
            batch: The crops (see :class:`CropBatch`).
            z: ``[N, z_channels]`` latents, or ``None`` to draw them from ``rng``.
            truncation: ``t`` in [0, 1] pulling latents toward the average, if supported.
            rng: Random source for anything drawn.

        Returns:
            ``[N, 3, H, W]`` in [-1, 1], equal to ``batch.image`` where ``batch.mask == 1``.
        """


class Discriminator(nn.Module, Component):
    """Scores images as real/fake; may also predict auxiliary maps."""

    kind = "discriminator"

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> DiscriminatorCapabilities:
        return DiscriminatorCapabilities()

    @abstractmethod
    def forward(self, img: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns at least ``{"score": [N, 1]}`` for ``img``/``condition`` ``[N, 3, H, W]``, ``mask`` ``[N, 1, H, W]``."""


class Loss(nn.Module, Component):
    """A training objective term; returns a per-sample loss ``[N]``.

    Each loss documents the keyword tensors it reads in its ``forward``.
    """

    kind = "loss"

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> LossCapabilities:
        return LossCapabilities()


#: Interfaces by kind, in the order ``sganon plugins list`` shows them.
INTERFACES: dict[str, type] = {
    "detector": Detector,
    "embedder": SurfaceEmbedder,
    "generator": Generator,
    "discriminator": Discriminator,
    "loss": Loss,
}


def kind_of(cls: type) -> str:
    """The kind of a registered class: its interface's kind, or ``"other"``."""
    for kind, interface in INTERFACES.items():
        if isinstance(cls, type) and issubclass(cls, interface):
            return kind
    return "other"
