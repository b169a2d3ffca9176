"""DensePose-CSE equals detectron2 on the published reference vectors (S50, S101DL), every
stage, with the tolerances and the mask/near-tie rules of ../shared/reference/cse/VECTORS.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sganon.plugins.cse.reference import CSEReferenceChecker, decimal_boxes, relative_error

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VECTORS = {name: SHARED / "reference" / "cse" / f"{name}_vector_a.pt" for name in ("S50", "S101DL")}

#: Stages every check must report (a checker that silently skips one fails here).
REQUIRED_ROWS = [
    "resize[0]", "resize[1]", "input_tensor", "boxes_xyxy_input[0]",
    "bottom_up.res2.channel_mean", "bottom_up.res5.channel_sq_mean", "bottom_up.res4", "bottom_up.res5",
    "fpn.p2", "fpn.p6", "decoder_out", "roi_features", "head_out", "embed_lowres", "coarse_segm_lowres",
    "embedding", "coarse_segm", "mesh_vertex_embeddings",
    "box_branch.cls_logits", "rpn_head.p6.anchor_deltas",
    "from_stored.decoder_out", "from_stored.roi_features", "from_stored.head_out", "from_stored.embedding",
    "from_stored.box_branch.bbox_deltas", "from_stored.rpn_head.p4.objectness_logits",
]
ROI_ROWS = ["box_xyxy_postprocessed", "box_xywh_int", "mask_from_stored", "vertices_from_stored", "mask", "vertices"]


class ReferenceRuns:
    """Vectors (tens of MB) and their full checks (seconds each), loaded and run once per session."""

    def __init__(self) -> None:
        self.vectors: dict[str, dict] = {}
        self.rows: dict[str, list[dict]] = {}

    def vector(self, name: str) -> dict:
        if name not in self.vectors:
            path = VECTORS[name]
            if not path.is_file():
                pytest.skip(f"reference vector {path} is missing")
            self.vectors[name] = torch.load(path, weights_only=True)
        return self.vectors[name]

    def check(self, name: str) -> list[dict]:
        if name not in self.rows:
            self.rows[name] = CSEReferenceChecker().check(self.vector(name))
        return self.rows[name]


@pytest.fixture(scope="session")
def reference() -> ReferenceRuns:
    return ReferenceRuns()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_every_stage_matches_the_reference(name, reference):
    vector, rows = reference.vector(name), reference.check(name)
    failed = [f"{r['name']}: {r['error']:.3g} > {r['tolerance']:.0e} {r.get('detail', '')}" for r in rows if not r["ok"]]
    assert not failed, "stages outside tolerance:\n" + "\n".join(failed)
    names = {row["name"] for row in rows}
    expected = set(REQUIRED_ROWS)
    if "aspp_out" in vector:
        expected |= {"aspp_out", "from_stored.aspp_out"}
    expected |= {f"roi[{k}].{row}" for k in range(len(vector["closest_vertices"])) for row in ROI_ROWS}
    assert expected <= names, f"stages not checked: {sorted(expected - names)}"


def test_densepose_from_boxes_api(reference):
    """The public API on original-image boxes: raw 112x112 outputs and postprocessed boxes."""
    vector = reference.vector("S50")
    model = CSEReferenceChecker().build_model(vector)
    images = [image.numpy() for image in vector["images_rgb_uint8_hwc"]]
    boxes = [decimal_boxes(b) for b in vector["boxes_xyxy_orig"]]
    out = model.densepose_from_boxes(images, boxes, with_vertices=False)
    assert out["embedding"].shape == (3, 16, 112, 112) and out["coarse_segm"].shape == (3, 2, 112, 112)
    assert relative_error(out["embedding"], vector["embedding"]) < 1e-4
    assert relative_error(out["coarse_segm"], vector["coarse_segm"]) < 1e-4
    for box, ref in zip(out["boxes"], vector["closest_vertices"]):
        assert torch.equal(box, ref["box_xyxy_postprocessed"])
    assert torch.equal(model.mesh_vertex_embeddings, vector["mesh_vertex_embeddings_smpl_27554"])


def test_a_wrong_weight_is_caught(reference):
    """The check is not blind: one perturbed head weight makes the output stages fail."""
    vector = dict(reference.vector("S50"))
    state = dict(vector["state_dict"])
    key = "roi_heads.densepose_predictor.embed_lowres.weight"
    state[key] = state[key] * 1.01
    vector["state_dict"] = state
    rows = {row["name"]: row for row in CSEReferenceChecker().check(vector, vertices=False)}
    assert not rows["embedding"]["ok"] and not rows["from_stored.embedding"]["ok"]
    assert rows["fpn.p2"]["ok"] and rows["coarse_segm"]["ok"]


def test_check_reference_command_finds_this_checker(reference):
    from sganon.cli.check_reference_cmd import find_checker

    assert isinstance(find_checker(reference.vector("S101DL")), CSEReferenceChecker)


def test_checker_accepts_only_its_format():
    checker = CSEReferenceChecker()
    assert checker.accepts({"format": "densepose-cse-small-vector/1"})
    assert not checker.accepts({"format": "sg-gan-vector/1"}) and not checker.accepts({})


def test_decimal_boxes_recover_the_written_values():
    stored = torch.tensor([[170.4, 15.6, 330.8, 230.2]], dtype=torch.float32)
    assert decimal_boxes(stored).tolist() == [[170.4, 15.6, 330.8, 230.2]]
    exact = torch.tensor([[20.25, 5.5, 200.75, 88.0]], dtype=torch.float32)
    assert torch.equal(decimal_boxes(exact), exact.double())


def test_relative_error():
    reference = torch.tensor([1.0, -4.0])
    assert relative_error(reference, reference) == 0
    assert relative_error(torch.tensor([1.0, -3.0]), reference) == pytest.approx(0.25)
    assert relative_error(torch.zeros(3), reference) == float("inf")
