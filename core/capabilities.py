"""What each kind of component offers and needs: typed, checked when a pipeline is assembled.

A component class states its capabilities for given constructor arguments with the
classmethod ``capabilities(args)``, returning the dataclass of its kind. ``sganon build``
and :func:`sganon.core.spec.resolve_spec` compare them without building anything heavy.

>>> GeneratorCapabilities(resolution=(288, 160), surface_channels=16, vertices=True).fits(
...     EmbedderCapabilities(surface_channels=16, vertices=True))
''
"""

from __future__ import annotations

from dataclasses import dataclass

#: Build profiles every component's ``default_args(profile)`` knows.
PROFILES = ("paper", "tiny")


@dataclass(frozen=True)
class DetectorCapabilities:
    """A detector's offer.

    Attributes:
        labels: What it reports: ``"person"`` and/or ``"face"``.
        serves_embedder: The short name of an embedder this detector's model also is: one
            instance then serves both roles with one forward per image (its detections carry
            their :class:`~sganon.core.structures.SurfaceMap` in ``Detection.surface``).
    """

    labels: tuple[str, ...] = ("person",)
    serves_embedder: str | None = None


@dataclass(frozen=True)
class EmbedderCapabilities:
    """An embedder's offer.

    Attributes:
        surface_channels: Channels ``E`` of the surface maps it gives.
        vertices: Whether its maps carry mesh vertex ids.
        crop_surface: Whether it implements ``surface_at_crop`` (recomputes the surface at
            the generator's crop resolution, e.g. nearest mesh vertex per crop pixel).
    """

    surface_channels: int = 0
    vertices: bool = False
    crop_surface: bool = False


@dataclass(frozen=True)
class GeneratorCapabilities:
    """A generator's needs and offer.

    Attributes:
        resolution: ``(H, W)`` of its crops, or ``None`` (works at any size).
        surface_channels: Channels of the surface map it reads (0: none).
        vertices: Whether it reads mesh vertex ids.
        realistic: Whether it synthesizes realistic people (else a baseline).
        trainable: Whether it has trained weights (and can be trained here).
        latent_size: Size of its latent ``z`` (0: it draws no latent).
        vertex_count: Rows of the mesh vertex table it was built for (0: none).
    """

    resolution: tuple[int, int] | None = None
    surface_channels: int = 0
    vertices: bool = False
    realistic: bool = False
    trainable: bool = False
    latent_size: int = 0
    vertex_count: int = 0

    def fits(self, embedder: EmbedderCapabilities | None) -> str:
        """Why ``embedder`` cannot feed this generator ('' when it can)."""
        if self.surface_channels == 0:
            return ""
        if embedder is None:
            return f"it reads a {self.surface_channels}-channel surface map and no embedder is chosen"
        if embedder.surface_channels != self.surface_channels:
            return (
                f"it reads {self.surface_channels}-channel surface maps and the embedder produces "
                f"{embedder.surface_channels}"
            )
        if self.vertices and not embedder.vertices:
            return "it reads mesh vertex ids and the embedder gives none"
        return ""


@dataclass(frozen=True)
class DiscriminatorCapabilities:
    """A discriminator's needs and offer.

    Attributes:
        resolution: ``(H, W)`` it scores, or ``None``.
        surface_channels: Channels of the surface map it predicts (0: none).
    """

    resolution: tuple[int, int] | None = None
    surface_channels: int = 0


@dataclass(frozen=True)
class LossCapabilities:
    """Losses state nothing yet; the type keeps every kind uniform."""


def as_resolution(value: object) -> tuple[int, int] | None:
    """``[H, W]`` (list, tuple or None) as a tuple of two ints."""
    if value is None:
        return None
    height, width = value  # type: ignore[misc]
    return int(height), int(width)
