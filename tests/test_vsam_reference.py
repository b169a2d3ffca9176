"""Numerical equivalence with the published V-SAM test vector (shared/reference/vsam/vector_a.pt).

The full check (G at three truncations, D on real and fake, every loss term, the w_avg
update and all parameter gradients incl. R1's double backward) runs once per session
through the same checker as ``sganon check-reference``, in float64 (so only the
reference's own float32 rounding is measured). The Python-API test then repeats the
forward outputs in float32, the precision users run.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import shared_path
from sganon.plugins.vsam import FPNSurfaceDiscriminator, VSAMGenerator, VSAMReferenceChecker, load_fba_checkpoint
from sganon.plugins.vsam.reference import vector_config

TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def vector_a():
    return torch.load(shared_path("reference/vsam/vector_a.pt"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def reference_rows(vector_a):
    checker = VSAMReferenceChecker()
    assert checker.accepts(vector_a)
    return checker.check(vector_a)


def failures(rows, prefix):
    selected = [r for r in rows if r["name"].startswith(prefix)]
    assert selected, f"no rows for {prefix}"
    return [f"{r['name']}: {r['error']:.3e} > {r['tolerance']:.1e} {r['detail']}" for r in selected if not r["ok"]]


@pytest.mark.parametrize(
    "prefix",
    ["G/z/", "G/w_interpolate_0.5/", "G/w_interpolate_0.0/", "D/real/", "D/fake/", "losses/", "loss_handler/",
     "w_avg_update/", "grads/D", "grads/G"],
)
def test_vector_a_matches(reference_rows, prefix):
    assert failures(reference_rows, prefix) == []


def test_vector_a_checks_every_item(vector_a, reference_rows):
    names = {r["name"] for r in reference_rows}
    for key, out in vector_a["outputs"]["G"].items():
        assert {f"G/{key}/img", f"G/{key}/img_raw"} <= names
    for key in vector_a["outputs"]["D"]:
        assert {f"D/{key}/score", f"D/{key}/surface"} <= names
    per_sample = [k for k, v in vector_a["losses"].items() if isinstance(v, torch.Tensor)]
    assert {f"losses/{k}" for k in per_sample} <= names
    gradient_rows = [r["name"] for r in reference_rows if r["kind"] == "gradient"]
    assert gradient_rows == [f"grads/D ({len(vector_a['grads']['D'])} tensors)", f"grads/G ({len(vector_a['grads']['G'])} tensors)"]


def test_python_api_reproduces_vector_a_in_float32(vector_a):
    """``load_fba_checkpoint`` + ``G(...)`` / ``D(...)`` as a user calls them (float32)."""
    G, D = load_fba_checkpoint(
        {"EMA_generator": vector_a["state_dict"]["G"], "D": vector_a["state_dict"]["D"]}, vector_config(vector_a)
    )
    assert isinstance(G, VSAMGenerator) and isinstance(D, FPNSurfaceDiscriminator)
    assert not G.training
    inputs = vector_a["inputs"]
    args = [inputs[k] for k in ("condition", "mask", "border", "embedding", "vertices")]
    with torch.no_grad():
        for key, expected in vector_a["outputs"]["G"].items():
            t = expected["truncation"]
            out = G(*args, z=inputs["z"], truncation=None if t < 0 else t)
            for item in ("img", "img_raw"):
                error = (out[item] - expected[item]).abs().max().item()
                assert error < TOLERANCE, f"G {key} {item}: {error:.3e}"
            if t < 0:
                fake = out["img"]
        D.train()
        for key, image in (("real", inputs["img"]), ("fake", fake)):
            out = D(image, inputs["condition"], inputs["mask"])
            expected = vector_a["outputs"]["D"][key]
            assert (out["score"] - expected["score"]).abs().max().item() < TOLERANCE
            assert (out["surface"] - expected["E"]).abs().max().item() < TOLERANCE
