"""The ``cse`` detector and the ``cse`` surface embedder of the pipeline.

Both *are* the DensePose-CSE network (:class:`DensePoseCSE`, so their ``state_dict()`` holds
the detectron2 checkpoint names) with the pipeline interface on top:

* :class:`CSEDetector` -> :class:`~sganon.core.structures.Detection` per person as the
  paper's anonymizer sees it (V-SAM SPEC 7.1-7.2, :func:`.anonymize.instances_from_predictor`):
  the rounded XYXY box, the score, the mask ``S_box`` over that box, and the person's
  surface map from the same forward in ``Detection.surface``. ``as_embedder()`` is an
  embedder sharing the detector's network (one copy of the weights, no second forward).
* :class:`CSEEmbedder` -> :class:`~sganon.core.structures.SurfaceMap` per detection, over
  the detection's box: ``embedding`` = the raw 16-d CSE embedding bilinearly resized
  (align_corners=False) from the 112x112 ROI grid to ``[16, h, w]``; ``valid`` = ``S_box``;
  ``vertices`` = closest mesh vertex of each valid pixel, 0 elsewhere.

Both embedders implement ``surface_at_crop`` (SPEC 7.6): the vertex of each crop pixel is
the nearest vertex-table row to the crop-resolution embedding, and the generator reads that
row (:func:`.anonymize.vertex_surface`, on the model's device).

``S_box`` is SPEC section 7.1/7.2's mask: the 112x112 argmax of the coarse segmentation,
bilinearly resized to the box as a 0/1 map, then ``> 0``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from sganon.core.errors import InputError
from sganon.core.capabilities import DetectorCapabilities, EmbedderCapabilities
from sganon.core.interfaces import Detector, SurfaceEmbedder
from sganon.core.registry import MODELS
from sganon.core.structures import Detection, SurfaceMap

from .anonymize import instances_from_predictor, vertex_surface
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

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> DetectorCapabilities:
        return DetectorCapabilities(labels=("person",), serves_embedder=CSEEmbedder.name)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """One DensePose forward over all ``images`` (video frames), SPEC §7.1-7.2 per image.

        Frames of one size give what :meth:`detect` gives each; frames of different sizes
        are zero-padded to the largest (as DensePose batches), which moves results near the
        padding, so give such images one at a time."""
        if not images:
            return []
        found = self.detect_persons(list(images), with_vertices=False, score_threshold=self.score_threshold)
        return [self.detections_of(image, persons) for image, persons in zip(images, found)]

    def detections_of(self, image: np.ndarray, persons: list) -> list[Detection]:
        """The §7.1-7.2 detections (with their surfaces) of one image's predicted persons."""
        if not persons:
            return []
        boxes = torch.stack([p.box for p in persons])
        densepose = {
            "boxes_xywh": torch.cat((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]), dim=1),
            "coarse_segm": torch.stack([p.coarse_segm_roi for p in persons]),
            "embedding": torch.stack([p.embedding_roi for p in persons]),
        }
        detections = []
        for instance in instances_from_predictor(densepose, *image.shape[:2]):
            score = min(max(persons[instance.det_index].score, 0.0), 1.0)
            surface = SurfaceMap(instance.box, instance.embedding.cpu().numpy(), instance.segmentation)
            detections.append(Detection(instance.box, score, instance.segmentation, surface=surface))
        return detections

    def as_embedder(self) -> "SharedCSEEmbedder":
        """An embedder on this detector's network (one copy of the weights)."""
        return SharedCSEEmbedder(self)


def embed_detections(
    network: DensePoseCSE, image: np.ndarray, detections: list[Detection], chunk_size: int
) -> list[SurfaceMap]:
    """Surface maps of ``detections``: the ones they carry (same forward), else one DensePose pass."""
    if all(d.surface is not None and d.surface.box == d.box for d in detections):
        return [d.surface for d in detections]  # type: ignore[misc]
    for detection in detections:
        if detection.box.is_empty():
            raise InputError(f"cannot embed a detection with an empty box {detection.box}")
    boxes = torch.tensor([list(d.box) for d in detections], dtype=torch.float64)
    outputs = network.densepose_from_boxes([image], [boxes], with_vertices=False)
    vertex_embeddings = network.mesh_vertex_embeddings
    surfaces = []
    for detection, e, s in zip(detections, outputs["embedding"], outputs["coarse_segm"]):
        height, width = detection.box.height, detection.box.width
        embedding, _, _ = resize_to_box(e, s, height, width)
        valid = segmentation_box_mask(s, height, width)
        vertices = closest_vertices_in_box(embedding, valid, vertex_embeddings, chunk_size)
        surfaces.append(SurfaceMap(detection.box, embedding.cpu().numpy(), valid.cpu().numpy(), vertices.cpu().numpy()))
    return surfaces


class SharedCSEEmbedder(SurfaceEmbedder):
    """The ``cse`` embedder on a :class:`CSEDetector`'s network (from ``detector.as_embedder()``).

    Not registered: the assembly makes it when the detector serves the embedder role.
    """

    name: ClassVar[str] = "cse"
    description: ClassVar[str] = "DensePose-CSE surface embedding sharing the cse detector's network"

    def __init__(self, network: DensePoseCSE, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.network = network
        self.chunk_size = int(chunk_size)

    @classmethod
    def capabilities(cls, args: dict[str, Any]) -> EmbedderCapabilities:
        return CSEEmbedder.capabilities(args)

    def to(self, device: str | torch.device) -> "SharedCSEEmbedder":
        self.network.to(device)
        return self

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.network.device

    def embed(self, image: np.ndarray, detections: list[Detection]) -> list[SurfaceMap]:
        return embed_detections(self.network, image, detections, self.chunk_size) if detections else []

    def surface_at_crop(self, embedding: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return vertex_surface(self.network.mesh_vertex_embeddings, self.chunk_size)(embedding, mask)


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
        return EmbedderCapabilities(surface_channels=config.embed_size, vertices=True, crop_surface=True)

    def embed(self, image: np.ndarray, detections: list[Detection]) -> list[SurfaceMap]:
        return embed_detections(self, image, detections, self.chunk_size) if detections else []

    def surface_at_crop(self, embedding: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return vertex_surface(self.mesh_vertex_embeddings, self.chunk_size)(embedding, mask)
