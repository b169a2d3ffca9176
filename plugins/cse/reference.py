"""Checking the model against DensePose-CSE reference vectors (``densepose-cse-small-vector/1``,
../shared/reference/cse/VECTORS.md): every stage, with the tolerances and the mask and
near-tie rules of its section 7.

>>> checker = CSEReferenceChecker()
>>> checker.accepts({"format": "densepose-cse-small-vector/1"}), checker.accepts({"format": "other"})
(True, False)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch

from sganon.core.errors import InputError

from .checkpoint import load_densepose_checkpoint
from .model import DensePoseCSE, rois_from_boxes
from .network import FPN_STRIDES
from .surface import box_xywh_int, closest_vertex_ids, resize_to_box

VECTOR_FORMAT = "densepose-cse-small-vector/1"
#: Relative tolerance of a stage fed with the stored input of that stage.
STAGE_TOLERANCE = 1e-5
#: (chained through backbone/FPN/decoder/ROIAlign, end-to-end head outputs) per ResNet depth.
CHAIN_TOLERANCES = {50: (1e-4, 1e-4), 101: (2e-4, 1e-3)}
#: Near-tie margin below which a different vertex is accepted when starting from the stored E.
VERTEX_TIE_MARGIN = 1e-4
#: Relative tolerance of the boxes rescaled between frames (a float32 rounding step).
BOX_TOLERANCE = 1e-6


def relative_error(mine: torch.Tensor, reference: torch.Tensor) -> float:
    """``max|mine - ref| / max|ref|`` (float32); infinite on a shape mismatch."""
    mine, reference = torch.as_tensor(mine).detach().cpu().float(), torch.as_tensor(reference).detach().cpu().float()
    if mine.shape != reference.shape:
        return float("inf")
    scale = reference.abs().max().item() if reference.numel() else 0.0
    difference = (mine - reference).abs().max().item() if reference.numel() else 0.0
    return difference / scale if scale > 0 else difference


def decimal_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """float64 boxes from float32 ones: each value's shortest decimal that rounds to it.

    The vectors store float32 copies of boxes written as decimals (``170.4``); their generator
    scaled the decimal values in float64. Reading each float32 back as its shortest decimal
    recovers those values (for a value that really was float32 it moves by under half an ulp).
    """
    values = [[float(str(np.float32(v))) for v in row] for row in boxes.detach().cpu().reshape(-1, 4).tolist()]
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 4)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """TF32 off while checking (it keeps only 10 mantissa bits)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class CSEReferenceChecker:
    """Rebuilds the vector's model from its config and weights and compares every stage.

    Args:
        device: Where to run (``"cpu"`` by default).
    """

    name = "densepose-cse"

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)

    def accepts(self, vector: dict[str, Any]) -> bool:
        return isinstance(vector, dict) and vector.get("format") == VECTOR_FORMAT

    def build_model(self, vector: dict[str, Any]) -> DensePoseCSE:
        """The vector's model: base config from its config file name, its overrides, its weights."""
        config_file = str(vector.get("meta", {}).get("config_file", ""))
        if "R_101_FPN_DL" in config_file:
            base = "R101_FPN_DL"
        elif "R_50_FPN" in config_file:
            base = "R50_FPN"
        else:
            raise InputError(f"the vector's config file {config_file!r} is neither R_101_FPN_DL nor R_50_FPN")
        model = load_densepose_checkpoint(vector["state_dict"], base, list(vector.get("config_overrides", [])))
        return model.to(self.device)

    def check(self, vector: dict[str, Any], vertices: bool = True) -> list[dict[str, Any]]:
        """One row per compared quantity: ``{"name", "kind", "error", "tolerance", "ok"}`` (+ ``"detail"``).

        Args:
            vector: A loaded vector file (``torch.load(path, weights_only=True)``).
            vertices: Also check the postprocessed boxes, masks and closest vertices per ROI
                (the slow part: a search over 27554 vertices for every mask pixel).
        """
        if not self.accepts(vector):
            raise InputError(f"not a DensePose-CSE reference vector (format {vector.get('format')!r})")
        with full_precision(), torch.no_grad():
            model = self.build_model(vector)
            chain, end_to_end = CHAIN_TOLERANCES[model.config.depth]
            rows: list[dict[str, Any]] = []

            def add(name: str, kind: str, error: float, tolerance: float) -> None:
                rows.append({"name": name, "kind": kind, "error": float(error), "tolerance": tolerance,
                             "ok": bool(error <= tolerance)})

            def compare(name: str, kind: str, mine: torch.Tensor, reference: torch.Tensor, tolerance: float) -> None:
                add(name, kind, relative_error(mine, reference), tolerance)

            images = [image.numpy() for image in vector["images_rgb_uint8_hwc"]]
            boxes = [decimal_boxes(b) for b in vector["boxes_xyxy_orig"]]
            trace: dict[str, Any] = {}
            result = model.densepose_from_boxes(images, boxes, with_vertices=vertices, trace=trace)

            # -- chained from pixels --------------------------------------------------------
            for i, (mine, reference) in enumerate(zip(trace["resized_bgr"], vector["resized_bgr_uint8_chw"])):
                error = float("inf") if mine.shape != tuple(reference.shape) else float(
                    np.abs(mine.astype(np.int16) - reference.numpy().astype(np.int16)).max())
                add(f"resize[{i}]", "exact", error, 0.0)
            sizes = torch.tensor([list(image.shape[1:]) for image in trace["resized_bgr"]])
            add("image_sizes_resized_hw", "exact", 0.0 if torch.equal(sizes, vector["image_sizes_resized_hw"]) else 1.0, 0.0)
            compare("input_tensor", "exact", trace["input_tensor"], vector["input_tensor"], 0.0)
            for i, (mine, reference) in enumerate(zip(trace["boxes_input"], vector["boxes_xyxy_input"])):
                compare(f"boxes_xyxy_input[{i}]", "boxes", mine, reference, BOX_TOLERANCE)
            for stage, stats in vector["bottom_up_stats"].items():
                output = trace["bottom_up"][stage]
                add(f"bottom_up.{stage}.shape", "exact", 0.0 if list(output.shape) == stats["shape"].tolist() else 1.0, 0.0)
                compare(f"bottom_up.{stage}.channel_mean", "chained", output.mean((2, 3)), stats["channel_mean"], chain)
                compare(f"bottom_up.{stage}.channel_sq_mean", "chained", (output * output).mean((2, 3)),
                        stats["channel_sq_mean"], chain)
            for stage, reference in vector["bottom_up_full"].items():
                compare(f"bottom_up.{stage}", "chained", trace["bottom_up"][stage], reference, chain)
            for level, reference in vector["fpn"].items():
                compare(f"fpn.{level}", "chained", trace["fpn"][level], reference, chain)
            compare("decoder_out", "chained", trace["decoder_out"], vector["decoder_out"], chain)
            compare("roi_features", "chained", trace["roi_features"], vector["roi_features"], chain)
            for name in ("aspp_out", "head_out", "embed_lowres", "coarse_segm_lowres"):
                if name in vector:
                    compare(name, "chained", trace.get(name, torch.empty(0)), vector[name], end_to_end)
            compare("embedding", "chained", result["embedding"], vector["embedding"], end_to_end)
            compare("coarse_segm", "chained", result["coarse_segm"], vector["coarse_segm"], end_to_end)
            compare("mesh_vertex_embeddings", "stage", model.mesh_vertex_embeddings,
                    vector["mesh_vertex_embeddings_smpl_27554"], STAGE_TOLERANCE)

            # -- the box branch and the RPN head (extra checks) -----------------------------
            features = trace["fpn"]
            self._box_and_rpn(model, vector, features, "chained", chain, compare)

            # -- each stage fed with the stored input of that stage --------------------------
            stored = {level: vector["fpn"][level].to(self.device) for level in FPN_STRIDES}
            self._box_and_rpn(model, vector, stored, "stage", STAGE_TOLERANCE, compare, prefix="from_stored.")
            heads = model.roi_heads
            compare("from_stored.decoder_out", "stage", heads.decoder(stored), vector["decoder_out"], STAGE_TOLERANCE)
            rois = rois_from_boxes([b.to(self.device) for b in vector["boxes_xyxy_input"]])
            compare("from_stored.roi_features", "stage", heads.pool_densepose(vector["decoder_out"].to(self.device), rois),
                    vector["roi_features"], STAGE_TOLERANCE)
            roi_features = vector["roi_features"].to(self.device)
            if "aspp_out" in vector:
                compare("from_stored.aspp_out", "stage", heads.densepose_head.ASPP(roi_features), vector["aspp_out"],
                        STAGE_TOLERANCE)
            compare("from_stored.head_out", "stage", heads.densepose_head(roi_features), vector["head_out"], STAGE_TOLERANCE)
            predicted = heads.densepose_predictor(vector["head_out"].to(self.device))
            for name in ("embed_lowres", "coarse_segm_lowres", "embedding", "coarse_segm"):
                compare(f"from_stored.{name}", "stage", predicted[name], vector[name], STAGE_TOLERANCE)

            # -- postprocessed boxes, masks and closest vertices per ROI ---------------------
            vertex_embeddings = model.mesh_vertex_embeddings
            for k, reference in enumerate(vector["closest_vertices"] if vertices else []):
                rows.extend(self._check_roi(k, reference, result, vector, vertex_embeddings))
            return rows

    def _box_and_rpn(self, model, vector, features, kind, tolerance, compare, prefix: str = "") -> None:
        heads = model.roi_heads
        rois = rois_from_boxes([b.to(self.device) for b in vector["boxes_xyxy_input"]])
        fc2 = heads.box_head(heads.pool_boxes(features, rois))
        class_logits, box_deltas = heads.box_predictor(fc2)
        reference = vector["box_branch"]
        compare(f"{prefix}box_branch.box_head_fc2_out", kind, fc2, reference["box_head_fc2_out"], tolerance)
        compare(f"{prefix}box_branch.cls_logits", kind, class_logits, reference["cls_logits"], tolerance)
        compare(f"{prefix}box_branch.bbox_deltas", kind, box_deltas, reference["bbox_deltas"], tolerance)
        rpn = vector["rpn_head"]
        for level, objectness, deltas in zip(rpn["levels"], rpn["objectness_logits"], rpn["anchor_deltas"]):
            mine_objectness, mine_deltas = model.proposal_generator.rpn_head(features[level])
            compare(f"{prefix}rpn_head.{level}.objectness_logits", kind, mine_objectness, objectness, tolerance)
            compare(f"{prefix}rpn_head.{level}.anchor_deltas", kind, mine_deltas, deltas, tolerance)

    def _check_roi(self, k, reference, result, vector, vertex_embeddings) -> list[dict[str, Any]]:
        rows = []

        def add(name: str, kind: str, error: float, tolerance: float, detail: str = "") -> None:
            row = {"name": f"roi[{k}].{name}", "kind": kind, "error": float(error), "tolerance": tolerance,
                   "ok": bool(error <= tolerance)}
            rows.append({**row, "detail": detail} if detail else row)

        box = result["boxes"][k]
        add("box_xyxy_postprocessed", "boxes", relative_error(box, reference["box_xyxy_postprocessed"]), BOX_TOLERANCE)
        x, y, w, h = box_xywh_int(box)
        same_box = [x, y, w, h] == reference["box_xywh_int"].tolist()
        add("box_xywh_int", "exact", 0.0 if same_box else 1.0, 0.0)
        ref_mask = reference["mask"].to(self.device)
        ref_vertices = reference["closest_vertices"].to(self.device).long()
        margins = (reference["second_sqdist"] - reference["best_sqdist"]).to(self.device)
        # position of every reference-mask pixel in the row-major list of mask pixels
        order = torch.cumsum(ref_mask.reshape(-1).long(), 0).reshape(ref_mask.shape) - 1
        rh, rw = ref_mask.shape

        # from the stored E and S: identical mask; vertices may differ only at near-ties
        stored_e, stored_s = vector["embedding"][k].to(self.device), vector["coarse_segm"][k].to(self.device)
        resized_e, _, mask = resize_to_box(stored_e, stored_s, rh, rw)
        add("mask_from_stored", "pixels", (mask != ref_mask).sum().item(), 0, f"of {rh * rw} pixels")
        vertices = torch.zeros_like(ref_vertices)
        vertices[ref_mask] = closest_vertex_ids(resized_e[:, ref_mask].t(), vertex_embeddings)
        add("vertices_from_stored", "pixels",
            *self._unexplained(vertices, ref_vertices, ref_mask, margins, order, VERTEX_TIE_MARGIN))

        # from our own E and S (the API's output): mask and near-tie rules of VECTORS.md section 7
        mine = result["closest_vertices"][k]
        if not same_box or tuple(mine["mask"].shape) != (rh, rw):
            add("mask", "pixels", float("inf"), 0)
            add("vertices", "pixels", float("inf"), 0)
            return rows
        delta_s = (result["coarse_segm"][k] - stored_s).abs().max().item()
        delta_e = (result["embedding"][k] - stored_e).abs().max().item()
        _, ref_s_resized, _ = resize_to_box(stored_e, stored_s, rh, rw)
        undecided = (ref_s_resized[1] - ref_s_resized[0]).abs() < 2 * delta_s
        differs = mine["mask"] != ref_mask
        add("mask", "pixels", (differs & ~undecided).sum().item(), 0,
            f"{differs.sum().item()} differ; undecided where |S1 - S0| < {2 * delta_s:.2g}")
        both = mine["mask"] & ref_mask
        tie_margin = max(VERTEX_TIE_MARGIN, 16 * delta_e)
        add("vertices", "pixels", *self._unexplained(mine["vertices"], ref_vertices, both, margins, order, tie_margin))
        return rows

    @staticmethod
    def _unexplained(vertices, ref_vertices, region, margins, order, tie_margin) -> tuple[int, int, str]:
        """(pixels of ``region`` whose vertex differs without a near-tie (margin < ``tie_margin``), 0, a note)."""
        differs = (vertices != ref_vertices) & region
        unexplained = int((margins[order[differs]] >= tie_margin).sum().item()) if differs.any() else 0
        note = f"{int(differs.sum())} of {int(region.sum())} differ; near-tie margin {tie_margin:.2g}"
        return unexplained, 0, note
