"""DensePose-CSE (R50/R101-FPN, R101-FPN-DL) in plain PyTorch: the whole detectron2 inference
path from an RGB photo to persons with boxes, scores, coarse masks, CSE embeddings and
closest mesh vertices; and the given-boxes path.

>>> from sganon.plugins.cse.config import CSEConfig
>>> tiny = CSEConfig.resolve("R50_FPN", ["MODEL.RESNETS.STEM_OUT_CHANNELS", "8",
...     "MODEL.RESNETS.RES2_OUT_CHANNELS", "16", "MODEL.RESNETS.WIDTH_PER_GROUP", "4",
...     "MODEL.FPN.OUT_CHANNELS", "8", "MODEL.ROI_DENSEPOSE_HEAD.DECODER_CONV_DIMS", "8",
...     "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NUM_CLASSES", "8", "MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM", "8",
...     "MODEL.ROI_BOX_HEAD.FC_DIM", "8", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"])
>>> model = DensePoseCSE(tiny).eval()
>>> image = np.zeros((40, 60, 3), dtype=np.uint8)
>>> out = model.densepose_from_boxes([image], [torch.tensor([[5.0, 5.0, 30.0, 35.0]])])
>>> out["embedding"].shape, out["closest_vertices"][0]["vertices"].shape
(torch.Size([1, 16, 112, 112]), torch.Size([30, 25]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sganon.core.errors import InputError
from sganon.core.precision import without_autocast

from .config import CSEConfig
from .detection import (
    anchors_for_level,
    batch_images,
    boxes_to_input,
    boxes_to_original,
    nonempty,
    resize_bgr,
    select_detections,
    select_proposals,
)
from .network import FPN_STRIDES, FPNBackbone, ProposalGenerator, ROIHeads
from .surface import DEFAULT_CHUNK_SIZE, box_xywh_int, closest_vertices_in_box, resize_to_box


def rois_from_boxes(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Per-image ``[n_i, 4]`` boxes -> ``[R, 5]`` rows (image index, x0, y0, x1, y1) for ROIAlign."""
    rois = [torch.cat((torch.full((len(b), 1), float(i), device=b.device, dtype=b.dtype), b), dim=1)
            for i, b in enumerate(boxes)]
    return torch.cat(rois)


@dataclass
class CSEPerson:
    """One detected person, in original-image pixels.

    Attributes:
        box: float32 ``[4]`` XYXY box (rescaled to the original image and clipped).
        score: Person probability.
        box_xywh: ``(x, y, w, h)`` ints, each truncated from the float box: the placement of
            ``mask``/``embedding``/``vertices`` (rows ``y..y+h``, columns ``x..x+w``).
        mask: bool ``[h, w]`` coarse foreground (``S1 > S0`` after resizing to the box).
        embedding: float32 ``[E, h, w]`` raw CSE embedding resized to the box.
        vertices: int64 ``[h, w]`` closest mesh vertex inside ``mask``, 0 outside; ``None``
            when not computed.
        embedding_roi: ``[E, 112, 112]`` the head's raw output over the (unclipped) box.
        coarse_segm_roi: ``[2, 112, 112]`` likewise.
    """

    box: torch.Tensor
    score: float
    box_xywh: tuple[int, int, int, int]
    mask: torch.Tensor
    embedding: torch.Tensor
    vertices: torch.Tensor | None
    embedding_roi: torch.Tensor
    coarse_segm_roi: torch.Tensor


class DensePoseCSE(nn.Module):
    """GeneralizedRCNN with the DensePose-CSE ROI branch; ``state_dict()`` keys are detectron2's.

    Args:
        config: Architecture and inference settings (see :class:`CSEConfig`).
    """

    def __init__(self, config: CSEConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = FPNBackbone(config)
        self.proposal_generator = ProposalGenerator(config.fpn_channels)
        self.roi_heads = ROIHeads(config)

    @property
    def device(self) -> torch.device:
        return self.roi_heads.embedder.embedder_smpl_27554.embeddings.device

    @property
    def mesh_vertex_embeddings(self) -> torch.Tensor:
        """``[K, E]`` unit-norm embeddings of the ``smpl_27554`` mesh vertices (K = 27554), in
        the weights' dtype also under autocast (the vertex search needs full precision)."""
        with torch.no_grad(), without_autocast(self.device):
            return self.roi_heads.embedder.embedder_smpl_27554()

    # -- preprocessing -----------------------------------------------------------------

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]], list[np.ndarray]]:
        """RGB uint8 ``[H, W, 3]`` images -> padded input batch ``[N, 3, Hp, Wp]``, resized (h, w) per image, BGR uint8."""
        if not isinstance(images, (list, tuple)) or not images:
            raise InputError("expected a non-empty list of uint8 RGB images [H, W, 3]")
        resized = [resize_bgr(image, self.config.min_size, self.config.max_size) for image in images]
        sizes = [(int(image.shape[1]), int(image.shape[2])) for image in resized]
        return batch_images(resized, self.device), sizes, resized

    # -- the given-boxes path ----------------------------------------------------------

    @torch.no_grad()
    def densepose_from_boxes(
        self,
        images: list[np.ndarray],
        boxes: list[torch.Tensor | np.ndarray],
        with_vertices: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        trace: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """DensePose outputs for given boxes (detectron2's ``forward_with_given_boxes`` + vertex visualizer).

        Args:
            images: RGB uint8 ``[H, W, 3]`` images.
            boxes: Per image, float ``[n_i, 4]`` XYXY boxes in original-image pixels (not clipped
                before pooling, as in detectron2).
            with_vertices: Also compute the closest vertices per ROI.
            chunk_size: Pixels per distance-matrix chunk of the vertex search.
            trace: When given, receives the intermediate stages (input tensor, backbone, FPN,
                decoder, ROI features, head, lowres outputs, boxes in both frames).
        Returns:
            ``embedding`` ``[R, E, 112, 112]`` and ``coarse_segm`` ``[R, 2, 112, 112]`` (raw, ROIs
            ordered image by image), ``boxes`` (per ROI, float32 ``[4]`` postprocessed box: rescaled
            and clipped to the original image) and ``closest_vertices``: per ROI
            ``{"box_xywh": (x, y, w, h), "mask": bool [h, w], "vertices": int64 [h, w],
            "embedding": [E, h, w]}`` (only with ``with_vertices``; zero-size arrays for a box
            that is empty after clipping).
        """
        if len(boxes) != len(images):
            raise InputError(f"got {len(images)} images but boxes for {len(boxes)}")
        boxes = [self._as_boxes(b) for b in boxes]
        batch, sizes, resized = self.preprocess(images)
        bottom_up = self.backbone.bottom_up(batch)
        features = self.backbone.fpn(bottom_up)
        input_boxes = [
            boxes_to_input(b, image.shape[:2], size) for b, image, size in zip(boxes, images, sizes)
        ]
        rois = rois_from_boxes(input_boxes)
        stages: dict[str, Any] = {}
        outputs = self.roi_heads.densepose(features, rois, stages)
        result: dict[str, Any] = {"embedding": outputs["embedding"], "coarse_segm": outputs["coarse_segm"]}
        final_boxes = [
            boxes_to_original(b, size, image.shape[:2]) for b, size, image in zip(input_boxes, sizes, images)
        ]
        result["boxes"] = list(torch.cat(final_boxes)) if rois.shape[0] else []
        if with_vertices:
            vertex_embeddings = self.mesh_vertex_embeddings
            result["closest_vertices"] = [
                self._surface(box, e, s, vertex_embeddings, chunk_size)
                for box, e, s in zip(result["boxes"], outputs["embedding"], outputs["coarse_segm"])
            ]
        if trace is not None:
            trace.update(
                resized_bgr=resized, input_tensor=batch, bottom_up=bottom_up, fpn=features,
                boxes_input=input_boxes, **stages,
                embed_lowres=outputs["embed_lowres"], coarse_segm_lowres=outputs["coarse_segm_lowres"],
            )
        return result

    # -- the detector path -------------------------------------------------------------

    @torch.no_grad()
    def detect_persons(
        self,
        images: list[np.ndarray],
        with_vertices: bool = True,
        score_threshold: float | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> list[list[CSEPerson]]:
        """Persons in each RGB uint8 image: RPN, box head, DensePose on the survivors, rescale.

        Args:
            images: RGB uint8 ``[H, W, 3]`` images.
            with_vertices: Also compute the closest vertices per person.
            score_threshold: Keep persons scoring strictly above this (default: the config's).
            chunk_size: Pixels per distance-matrix chunk of the vertex search.
        Returns:
            Per image, persons by decreasing score.
        """
        threshold = self.config.score_threshold if score_threshold is None else float(score_threshold)
        batch, sizes, _ = self.preprocess(images)
        features = self.backbone(batch)
        proposals = self.proposals(features, sizes)
        rois = rois_from_boxes(proposals)
        class_logits, box_deltas = self.roi_heads.box_predictor(
            self.roi_heads.box_head(self.roi_heads.pool_boxes(features, rois))
        )
        detections = []
        start = 0
        for image_proposals, size in zip(proposals, sizes):
            stop = start + image_proposals.shape[0]
            detections.append(
                select_detections(
                    image_proposals, class_logits[start:stop], box_deltas[start:stop], size, threshold,
                    self.config.nms_threshold, self.config.detections_per_image,
                )
            )
            start = stop
        det_rois = rois_from_boxes([boxes for boxes, _ in detections])
        outputs = self.roi_heads.densepose(features, det_rois) if det_rois.shape[0] else None
        vertex_embeddings = self.mesh_vertex_embeddings if with_vertices else None
        persons: list[list[CSEPerson]] = []
        start = 0
        for (boxes, scores), size, image in zip(detections, sizes, images):
            stop = start + boxes.shape[0]
            final_boxes = boxes_to_original(boxes, size, image.shape[:2])
            image_persons = []
            for index in torch.nonzero(nonempty(final_boxes)).squeeze(1).tolist():
                e, s = outputs["embedding"][start + index], outputs["coarse_segm"][start + index]
                surface = self._surface(final_boxes[index], e, s, vertex_embeddings, chunk_size)
                image_persons.append(
                    CSEPerson(
                        box=final_boxes[index], score=float(scores[index]), box_xywh=surface["box_xywh"],
                        mask=surface["mask"], embedding=surface["embedding"], vertices=surface.get("vertices"),
                        embedding_roi=e, coarse_segm_roi=s,
                    )
                )
            persons.append(image_persons)
            start = stop
        return persons

    def rpn_outputs(self, features: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Raw RPN objectness ``[N, A, h, w]`` and deltas ``[N, 4A, h, w]`` per level p2..p6."""
        outputs = [self.proposal_generator.rpn_head(features[level]) for level in FPN_STRIDES]
        return [o for o, _ in outputs], [d for _, d in outputs]

    def proposals(self, features: dict[str, torch.Tensor], sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """RPN proposals ``[P_i, 4]`` per image (input pixels)."""
        objectness, deltas = self.rpn_outputs(features)
        anchors = [
            anchors_for_level(level, *features[level].shape[-2:], features[level].device) for level in FPN_STRIDES
        ]
        return [
            select_proposals(
                [o[n] for o in objectness], [d[n] for d in deltas], anchors, size,
                self.config.rpn_pre_nms_topk, self.config.rpn_post_nms_topk, self.config.rpn_nms_threshold,
            )
            for n, size in enumerate(sizes)
        ]

    # -- helpers -----------------------------------------------------------------------

    def _as_boxes(self, boxes: torch.Tensor | np.ndarray) -> torch.Tensor:
        boxes = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, torch.Tensor) else boxes)
        if boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype.is_complex or boxes.dtype == torch.bool:
            raise InputError(f"boxes must be real [n, 4] XYXY per image, got {boxes.dtype} {list(boxes.shape)}")
        # float64 boxes keep their precision for the rescale to the input frame (done in float64)
        boxes = boxes.to(device=self.device, dtype=torch.float64 if boxes.dtype == torch.float64 else torch.float32)
        if not torch.isfinite(boxes).all():
            raise InputError("boxes must be finite")
        return boxes

    @staticmethod
    def _surface(
        box: torch.Tensor,
        embedding: torch.Tensor,
        coarse_segm: torch.Tensor,
        vertex_embeddings: torch.Tensor | None,
        chunk_size: int,
    ) -> dict[str, Any]:
        x, y, w, h = box_xywh_int(box)
        resized_e, _, mask = resize_to_box(embedding, coarse_segm, h, w)
        surface: dict[str, Any] = {"box_xywh": (x, y, max(w, 0), max(h, 0)), "mask": mask, "embedding": resized_e}
        if vertex_embeddings is not None:
            surface["vertices"] = closest_vertices_in_box(resized_e, mask, vertex_embeddings, chunk_size)
        return surface
