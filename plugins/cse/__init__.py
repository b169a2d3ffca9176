"""DensePose-CSE detector and surface embedder in plain PyTorch (no detectron2).

Loads the official model-zoo weights (``densepose_rcnn_R_101_FPN_DL_soft_s1x`` and
``densepose_rcnn_R_50_FPN_soft_s1x``) and reproduces detectron2's inference path; see
docs/cse.md. :func:`anonymize_densepose` is the paper's anonymizer after the DensePose forward.
"""

from .anonymize import anonymize_densepose
from .checkpoint import load_densepose_checkpoint, save_safetensors
from .components import CSEDetector, CSEEmbedder
from .config import CSEConfig
from .hooks import sganon_reference_checkers, sganon_weight_converters
from .model import CSEPerson, DensePoseCSE

__all__ = [
    "CSEConfig",
    "CSEDetector",
    "CSEEmbedder",
    "CSEPerson",
    "DensePoseCSE",
    "anonymize_densepose",
    "load_densepose_checkpoint",
    "save_safetensors",
    "sganon_reference_checkers",
    "sganon_weight_converters",
]
