"""The ``cse`` detector and the ``cse`` surface embedder of the pipeline.

Both *are* the DensePose-CSE network (:class:`DensePoseCSE`, so their ``state_dict()`` holds
the detectron2 checkpoint names) with the pipeline interface on top:

* :class:`CSEDetector` -> :class:`~sganon.core.structures.Detection` per person: the box
  ``(x, y, x + w, y + h)`` with ``x, y, w, h`` truncated from the float detectron2 box
  (DensePose's placement), the score, and the coarse mask ``S_box`` over that box.
* :class:`CSEEmbedder` -> :class:`~sganon.core.structures.SurfaceMap` per detection, over
  the detection's box (V-SAM SPEC section 7.2): ``embedding`` = the raw 16-d CSE embedding
  bilinearly resized (align_corners=False) from the 112x112 ROI grid to ``[16, h, w]``;
  ``valid`` = ``S_box``; ``vertices`` = closest mesh vertex of each valid pixel, 0 elsewhere.

``S_box`` is SPEC section 7.1/7.2's mask: the 112x112 argmax of the coarse segmentation,
bilinearly resized to the box as a 0/1 map, then ``> 0``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from sganon.core.errors import InputError
from sganon.core.capabilities import EmbedderCapabilities
from sganon.core.interfaces import Detector, SurfaceEmbedder
from sganon.core.registry import MODELS
from sganon.core.structures import Box, Detection, SurfaceMap

from .checkpoint import load_weights_into
from .config import CSEConfig
from .model import DensePoseCSE
from .surface import DEFAULT_CHUNK_SIZE, closest_vertices_in_box, resize_to_box, segmentation_box_mask

#: A narrow, random-weight R50 variant that builds and runs in well under a second on a CPU.
TINY_OVERRIDES = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "8",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "16",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "4",
    "MODEL.FPN.OUT_CHANNELS", "8",
    "MODEL.ROI_DENSEPOSE_HEAD.DECODER_CONV_DIMS", "8",
    "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NUM_CLASSES", "8",
    "MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM", "8",
    "MODEL.ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS", "2",
    "MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBEDDERS.smpl_27554.FEATURE_DIM", "8",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "16",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "213",
    "TEST.DETECTIONS_PER_IMAGE", "3",
]


def default_cse_args(profile: str) -> dict[str, Any]:
    """Constructor arguments shared by the detector and the embedder for a build profile."""
    if profile == "tiny":
        return {"variant": "R50_FPN", "overrides": list(TINY_OVERRIDES)}
    return {"variant": "R101_FPN_DL", "overrides": []}


def pick_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class CSENetwork(DensePoseCSE):
    """The network built from constructor arguments, optionally with weights.

    Args:
        variant: ``"R101_FPN_DL"`` or ``"R50_FPN"``.
        overrides: detectron2 config overrides ``[KEY, VALUE, ...]`` (widths, input sizes, ...).
        weights: A model-zoo ``.pkl`` or our ``.safetensors``; ``None`` leaves random weights.
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
    """

    def __init__(
        self,
        variant: str = "R101_FPN_DL",
        overrides: list[str] | None = None,
        weights: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(CSEConfig.resolve(variant, overrides))
        if weights is not None:
            load_weights_into(self, weights)
        self.eval().requires_grad_(False).to(pick_device(device))


@MODELS.register_module()
class CSEDetector(CSENetwork, Detector):
    """DensePose-CSE person detector (detectron2 model zoo): boxes, scores and coarse masks.

    Args:
        variant: ``"R101_FPN_DL"`` or ``"R50_FPN"``.
        overrides: detectron2 config overrides ``[KEY, VALUE, ...]``.
        score_threshold: Persons need a score strictly above this (0.3 as the SG-GAN anonymizer).
        weights: A model-zoo ``.pkl`` or our ``.safetensors``; ``None`` leaves random weights.
        device: ``None`` picks CUDA when available.
    """

    name: ClassVar[str] = "cse"
    description: ClassVar[str] = "DensePose-CSE person detector (R101-FPN-DL; boxes, scores, coarse body masks)"
    labels: ClassVar[tuple[str, ...]] = ("person",)

    def __init__(
        self,
        variant: str = "R101_FPN_DL",
        overrides: list[str] | None = None,
        score_threshold: float = 0.3,
        weights: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(variant, overrides, weights, device)
        self.score_threshold = float(score_threshold)

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return {**default_cse_args(profile), "score_threshold": 0.3}

    def detect(self, image: np.ndarray) -> list[Detection]:
        persons = self.detect_persons([image], with_vertices=False, score_threshold=self.score_threshold)[0]
        detections = []
        for person in persons:
            x, y, w, h = person.box_xywh
            if w <= 0 or h <= 0:
                continue
            mask = segmentation_box_mask(person.coarse_segm_roi, h, w)
            detections.append(Detection(Box(x, y, x + w, y + h), min(max(person.score, 0.0), 1.0), mask.cpu().numpy()))
        return detections


@MODELS.register_module()
class CSEEmbedder(CSENetwork, SurfaceEmbedder):
    """DensePose-CSE surface embedder: 16-d CSE embedding, body mask and SMPL vertex ids per person.

    Args:
        variant: ``"R101_FPN_DL"`` or ``"R50_FPN"``.
        overrides: detectron2 config overrides ``[KEY, VALUE, ...]``.
        weights: A model-zoo ``.pkl`` or our ``.safetensors``; ``None`` leaves random weights.
        device: ``None`` picks CUDA when available.
        chunk_size: Pixels per distance-matrix chunk of the closest-vertex search.
    """

    name: ClassVar[str] = "cse"
    description: ClassVar[str] = "DensePose-CSE surface embedding (16-d, SMPL 27554-vertex ids) per person"

    def __init__(
        self,
        variant: str = "R101_FPN_DL",
        overrides: list[str] | None = None,
        weights: str | None = None,
        device: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__(variant, overrides, weights, device)
        self.chunk_size = int(chunk_size)

    @classmethod
    def default_args(cls, profile: str = "paper") -> dict[str, Any]:
        return default_cse_args(profile)

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> EmbedderCapabilities:
        config = CSEConfig.resolve(args.get("variant", "R101_FPN_DL"), args.get("overrides"))
        return EmbedderCapabilities(surface_channels=config.embed_size, vertices=True)

    def embed(self, image: np.ndarray, detections: list[Detection]) -> list[SurfaceMap]:
        if not detections:
            return []
        for detection in detections:
            if detection.box.is_empty():
                raise InputError(f"cannot embed a detection with an empty box {detection.box}")
        boxes = torch.tensor([list(d.box) for d in detections], dtype=torch.float64)
        outputs = self.densepose_from_boxes([image], [boxes], with_vertices=False)
        vertex_embeddings = self.mesh_vertex_embeddings
        surfaces = []
        for detection, e, s in zip(detections, outputs["embedding"], outputs["coarse_segm"]):
            height, width = detection.box.height, detection.box.width
            embedding, _, _ = resize_to_box(e, s, height, width)
            valid = segmentation_box_mask(s, height, width)
            vertices = closest_vertices_in_box(embedding, valid, vertex_embeddings, self.chunk_size)
            surfaces.append(
                SurfaceMap(detection.box, embedding.cpu().numpy(), valid.cpu().numpy(), vertices.cpu().numpy())
            )
        return surfaces
