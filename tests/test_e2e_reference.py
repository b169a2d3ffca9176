"""``anonymize_densepose`` (SPEC section 7) against the official anonymizer's end-to-end vector.

The vector (``../shared/reference/e2e/vector_e2e_a.pt``, FORMAT.md beside it) holds raw
DensePose predictor outputs, the official output image and debug tensors of every stage.
The stage tests compare each step on its own; the case tests apply FORMAT.md's rule to the
whole function. The hypothesis properties use a small random generator and need no files.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sganon.plugins.cse import anonymize_densepose
from sganon.plugins.cse.anonymize import (
    anonymize_steps,
    closest_vertices,
    e2e_comparison,
    expand_instance,
    expanded_box,
    instances_from_predictor,
    paste_bodies,
)
from sganon.plugins.vsam import VSAMGenerator, load_fba_checkpoint

from tests.conftest import shared_path

VECTOR = "reference/e2e/vector_e2e_a.pt"
CASES = ["single", "overlap_border", "tiny_and_empty", "truncation_z"]


@pytest.fixture(scope="module")
def vector():
    return torch.load(shared_path(VECTOR), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def generator(vector):
    state = vector["state_dict"]
    checkpoint = {"EMA_generator": state["G"], "generator": state["G"], "D": state["D"]}
    return load_fba_checkpoint(checkpoint, config=vector["config"])[0]


@pytest.fixture(scope="module")
def results(vector, generator):
    """Per case name: the case and ``anonymize_steps`` on it (run once: the vertex search is the slow part)."""
    out = {}
    for case in vector["cases"]:
        steps = anonymize_steps(
            case["image"].numpy(), case["densepose"], vector["vertex_table"], generator, case["truncation"], case["z"]
        )
        out[case["name"]] = (case, steps)
    return out


def test_vector_has_the_documented_cases(vector):
    assert [case["name"] for case in vector["cases"]] == CASES
    assert tuple(vector["vertex_table"].shape) == (27554, 16)


@pytest.mark.parametrize("name", CASES)
def test_case_matches_official_output(results, name):
    """FORMAT.md's rule: identical outside ``region``; inside, >= 99.5 % within 2 levels and none over 8."""
    case, steps = results[name]
    assert steps.image.dtype == np.uint8 and steps.image.shape == tuple(case["image"].shape)
    result = e2e_comparison(steps.image, case["expected"].numpy(), case["region"].numpy())
    assert result["outside_max"] == 0, result
    assert result["inside_max"] <= 8 and result["inside_share_le2"] >= 0.995, result


def test_public_function_is_the_steps(vector, generator, results):
    case, steps = results["single"]
    output = anonymize_densepose(
        case["image"].numpy(), case["densepose"], vector["vertex_table"], generator, case["truncation"], case["z"]
    )
    assert np.array_equal(output, steps.image)


@pytest.mark.parametrize("name", CASES)
def test_stage_det_boxes(results, name):
    case, steps = results[name]
    height, width = case["image"].shape[:2]
    assert [i.det_index for i in steps.instances] == case["nonempty_det_indices"]
    assert [p.instance.det_index for p in steps.persons] == case["surviving_det_indices"]
    for instance, reference in zip(steps.instances, case["det_boxes"], strict=True):
        tight, exp_box = expanded_box(instance.segmentation, instance.box, height, width)
        assert instance.det_index == reference["det_index"]
        assert list(instance.box) == reference["box_xyxy"].tolist()
        assert list(tight) == reference["tight_bbox"].tolist()
        assert list(exp_box) == reference["exp_bbox"].tolist()
        assert (expand_instance(instance, height, width) is not None) == reference["included"]


@pytest.mark.parametrize("name", CASES)
def test_stage_crops(vector, results, name):
    """exp_bbox, E_mask, mask, border and vertices of every surviving instance, exactly."""
    case, steps = results[name]
    table = vector["vertex_table"]
    for crop, reference in zip(steps.crops, case["instances"], strict=True):
        assert crop.det_index == reference["det_index"]
        assert list(crop.exp_box) == reference["exp_bbox"].tolist()
        assert torch.equal(crop.e_mask, reference["E_mask"])
        assert torch.equal(crop.mask, reference["mask"])
        assert torch.equal(crop.border, reference["border"])
        assert torch.equal(crop.vertices, reference["vertices"])
        # the generator's embedding input: E_raw[vertex] * E_mask
        assert torch.equal(crop.embedding, table[reference["vertices"]].permute(2, 0, 1) * reference["E_mask"])


@pytest.mark.parametrize("name", CASES)
def test_stage_generation(results, name):
    """Generator outputs (batches of 2, the case's z and truncation): within 1 level of gen_uint8."""
    case, steps = results[name]
    assert len(steps.bodies) == len(case["instances"])
    for body, reference in zip(steps.bodies, case["instances"], strict=True):
        assert (body.int() - reference["gen_uint8"].int()).abs().max() <= 1


@pytest.mark.parametrize("name", CASES)
def test_stage_paste_back_is_bit_exact(results, name):
    """Pasting the official gen_uint8 gives the official image and region bit for bit."""
    case, steps = results[name]
    image = case["image"].numpy()
    bodies = [reference["gen_uint8"] for reference in case["instances"]]
    assert np.array_equal(paste_bodies(image, steps.crops, bodies), case["expected"].numpy())
    assert np.array_equal(steps.region, case["region"].numpy())


# ---- properties on synthetic predictor outputs (no files needed) ----
# A small random V-SAM at 144x80 (crops follow the generator's resolution) and a 64-row vertex table.

N_VERTICES = 64
Z_CHANNELS = 16


@pytest.fixture(scope="module")
def small_generator():
    torch.manual_seed(0)
    table = torch.nn.functional.normalize(torch.randn(N_VERTICES, 16), dim=1)
    g = VSAMGenerator(
        resolution=[144, 80],
        cnum=4,
        min_fmap_resolution=16,
        z_channels=Z_CHANNELS,
        n_vertices=N_VERTICES,
        mapper={"hidden_dim": 16, "out_dim": 8},
        vertex_table=table,
    ).eval()
    with torch.no_grad():  # a per-row w_avg, so that truncation toward it depends on the vertex
        g.style_net.E_map.w_avg.copy_(torch.randn_like(g.style_net.E_map.w_avg))
    return g, table


@st.composite
def predictor_outputs(draw):
    """An image and 0-3 detections of random size and place with random segmentation and embedding."""
    height, width = draw(st.integers(40, 120)), draw(st.integers(40, 120))
    n = draw(st.integers(0, 3))
    boxes = []
    for _ in range(n):
        w, h = draw(st.floats(0.0, width * 0.999)), draw(st.floats(0.0, height * 0.999))
        x0, y0 = draw(st.floats(0.0, width - w)), draw(st.floats(0.0, height - h))
        boxes.append([x0, y0, w, h])
    rng = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    image = torch.randint(0, 256, (height, width, 3), generator=rng, dtype=torch.uint8).numpy()
    densepose = {
        "boxes_xywh": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        "coarse_segm": torch.randn(n, 2, 14, 14, generator=rng) + torch.tensor([0.0, 0.7]).view(1, 2, 1, 1),
        "embedding": torch.randn(n, 16, 14, 14, generator=rng),
    }
    return image, densepose


PROPERTY = settings(max_examples=6, deadline=None)


def count_persons(image: np.ndarray, densepose: dict) -> int:
    """How many persons survive the filters (the rows z needs), without running the generator."""
    height, width = image.shape[:2]
    return sum(expand_instance(i, height, width) is not None for i in instances_from_predictor(densepose, height, width))


@PROPERTY
@given(predictor_outputs(), st.floats(0.0, 1.0))
def test_pixels_outside_the_region_never_change(small_generator, sample, truncation):
    g, table = small_generator
    image, densepose = sample
    steps = anonymize_steps(image, densepose, table, g, truncation)
    region = steps.region
    assert np.array_equal(steps.image[~region], image[~region])
    for crop in steps.crops:  # the region lies inside the (clipped) expanded boxes
        box = crop.exp_box.clip(*image.shape[:2])
        region = region.copy()
        region[box.y0 : box.y1, box.x0 : box.x1] = False
    assert not region.any()


@PROPERTY
@given(predictor_outputs())
def test_z_has_no_effect_at_truncation_zero_and_runs_are_deterministic(small_generator, sample):
    g, table = small_generator
    image, densepose = sample
    z = torch.randn(count_persons(image, densepose), Z_CHANNELS)
    first = anonymize_densepose(image, densepose, table, g, 0.0, None)
    assert np.array_equal(first, anonymize_densepose(image, densepose, table, g, 0.0, 3 * z))
    truncated = anonymize_densepose(image, densepose, table, g, 0.5, z)
    assert np.array_equal(truncated, anonymize_densepose(image, densepose, table, g, 0.5, z))


@settings(max_examples=3, deadline=None)
@given(predictor_outputs())
def test_z_is_used_with_truncation(small_generator, sample):
    g, table = small_generator
    image, densepose = sample
    m = count_persons(image, densepose)
    assume(m > 0)
    z = torch.randn(m, Z_CHANNELS)
    assert not np.array_equal(
        anonymize_densepose(image, densepose, table, g, 1.0, z), anonymize_densepose(image, densepose, table, g, 1.0, -z)
    )


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 300), st.sampled_from([1, 7, 1024]))
def test_closest_vertices_is_the_nearest_row_whatever_the_chunk(seed, n_pixels, chunk_size):
    rng = torch.Generator().manual_seed(seed)
    table = torch.nn.functional.normalize(torch.randn(200, 16, generator=rng, dtype=torch.float64), dim=1)
    pixels = torch.randn(n_pixels, 16, generator=rng, dtype=torch.float64)
    brute_force = ((pixels[:, None] - table[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(closest_vertices(pixels, table, chunk_size), brute_force)


def test_input_errors(small_generator):
    from sganon.core.errors import InputError

    g, table = small_generator
    image = np.zeros((40, 30, 3), np.uint8)
    empty = {"boxes_xywh": torch.zeros(0, 4), "coarse_segm": torch.zeros(0, 2, 14, 14), "embedding": torch.zeros(0, 16, 14, 14)}
    assert np.array_equal(anonymize_densepose(image, empty, table, g), image)
    with pytest.raises(InputError, match="uint8"):
        anonymize_densepose(image.astype(np.float32), empty, table, g)
    with pytest.raises(InputError, match="missing"):
        anonymize_densepose(image, {"boxes_xywh": torch.zeros(0, 4)}, table, g)
    outside = {**empty, "boxes_xywh": torch.tensor([[10.0, 10.0, 50.0, 10.0]]),
               "coarse_segm": torch.zeros(1, 2, 14, 14), "embedding": torch.zeros(1, 16, 14, 14)}
    with pytest.raises(InputError, match="one row per anonymized person"):
        anonymize_densepose(image, empty, table, g, 0.5, torch.zeros(1, Z_CHANNELS))
    with pytest.raises(InputError, match="not inside"):
        anonymize_densepose(image, outside, table, g)
