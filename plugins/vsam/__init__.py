"""V-SAM surface-guided generator, FPN surface discriminator and losses (config E of the paper).

Public API:

* :class:`VSAMGenerator` (generator ``vsam``), :class:`FPNSurfaceDiscriminator`
  (discriminator ``vsam-fpn``) and the losses ``nsgan``, ``surface-l1``, ``epsilon``,
  ``r1`` (see :mod:`.losses`), all registered in ``sganon.core.registry.MODELS``;
* :func:`load_fba_checkpoint` reads an official checkpoint into our modules;
* :class:`VSAMReferenceChecker` backs ``sganon check-reference`` for the official vectors.
"""

from .discriminator import FPNSurfaceDiscriminator
from .fba import load_fba_checkpoint
from .generator import PAPER_CONFIGS, VSAMGenerator
from .hooks import sganon_reference_checkers, sganon_weight_converters
from .losses import (
    EpsilonPenalty,
    NonSaturatingLoss,
    R1Penalty,
    SurfaceSupervisionLoss,
    discriminator_losses,
    generator_losses,
)
from .reference import VSAMReferenceChecker

__all__ = [
    "EpsilonPenalty",
    "FPNSurfaceDiscriminator",
    "NonSaturatingLoss",
    "PAPER_CONFIGS",
    "R1Penalty",
    "SurfaceSupervisionLoss",
    "VSAMGenerator",
    "VSAMReferenceChecker",
    "discriminator_losses",
    "generator_losses",
    "load_fba_checkpoint",
    "sganon_reference_checkers",
    "sganon_weight_converters",
]
