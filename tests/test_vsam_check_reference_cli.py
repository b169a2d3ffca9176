"""`sganon check-reference`: exit codes, table and JSON report, on small vectors made here.

The vectors are written in the published format (vector_format.md) from a small random
model with batch 3 and two people per crop, computed independently of the checker's own
code path (plain autograd calls). They test the command and that nothing assumes the
published vector's batch size or layout; equivalence with the *reference* is
test_vsam_reference.py's job.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from sganon.cli.main import cli
from sganon.plugins.vsam.fba import discriminator_args, generator_args
from sganon.plugins.vsam.discriminator import FPNSurfaceDiscriminator
from sganon.plugins.vsam.generator import VSAMGenerator

H, W, K, N = 36, 20, 300, 3
CONSTANTS = {"l1_weight": 0.1, "lambda_real": 1.0, "lambda_fake": 0.0, "epsilon_weight": 0.001, "r1_weight": 5.0,
             "lazy_reg_interval": 16, "r1_multiplier": 40.0}


def official_config():
    return {
        "generator": {"type": "UnetGenerator", "cnum": 4, "max_cnum_mul": 16, "min_fmap_resolution": 16,
                      "n_middle_blocks": 2, "z_channels": 16, "conv_clamp": 256, "input_cse": True, "embed_z": False,
                      "style_cfg": {"type": "CSEStyleMapper", "w_mapper": {"input_z": True, "hidden_dim": 16, "out_dim": 8}}},
        "discriminator": {"type": "FPNDiscriminator", "cnum": 4, "max_cnum_mul": 8, "min_fmap_resolution": 8,
                          "conv_clamp": 256, "output_fpn": True},
    }


def two_people_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.arange(H).view(H, 1).double(), torch.arange(W).view(1, W).double()
    person = torch.zeros(N, 1, H, W, dtype=torch.float64)
    dilated = torch.zeros_like(person)
    for n in range(N):
        for cy, cx in ((10 + 2 * n, 6), (25, 14 - 2 * n)):
            d = ((y - cy) / 7) ** 2 + ((x - cx) / 3.5) ** 2
            person[n, 0] = torch.maximum(person[n, 0], (d <= 1).double())
            dilated[n, 0] = torch.maximum(dilated[n, 0], (d <= 1.5).double())
    table = F.normalize(torch.randn(K, 16, generator=g, dtype=torch.float64), dim=1)
    vertices = torch.randint(0, K, (N, H, W), generator=g) * person[:, 0].long()
    img = torch.rand(N, 3, H, W, generator=g, dtype=torch.float64) * 2 - 1
    mask = 1 - dilated
    return {"img": img, "condition": img * mask, "mask": mask, "border": dilated - person, "E_mask": person,
            "vertices": vertices, "embedding": table[vertices].permute(0, 3, 1, 2) * person,
            "z": torch.randn(N, 16, generator=g, dtype=torch.float64)}


def make_vector(seed=0):
    torch.manual_seed(seed)
    config = official_config()
    full = {**config, "imsize": [H, W], "n_vertices": K}
    G = VSAMGenerator(**generator_args(full)).double()
    D = FPNSurfaceDiscriminator(**discriminator_args(full)).double()
    with torch.no_grad():
        G.style_net.E_map.w_avg.normal_(0, 0.5)
    inputs = two_people_inputs(seed)
    g_in = [inputs[k] for k in ("condition", "mask", "border", "embedding", "vertices")]
    outputs = {"G": {}, "D": {}}
    G.eval()
    with torch.no_grad():
        for key, t in (("z", -1.0), ("w_interpolate_0.5", 0.5), ("w_interpolate_0.0", 0.0)):
            out = G(*g_in, z=inputs["z"], truncation=None if t < 0 else t)
            outputs["G"][key] = {"img": out["img"], "img_raw": out["img_raw"], "truncation": t}
    fake = outputs["G"]["z"]["img"]
    region = 1 - inputs["mask"] - inputs["border"]

    def l1(pred):
        return F.smooth_l1_loss(pred * region, inputs["embedding"] * region, reduction="none").sum((1, 2, 3)) / region.sum((1, 2, 3))

    real = inputs["img"].clone().requires_grad_(True)
    d_real, d_fake = D(real, inputs["condition"], inputs["mask"]), D(fake, inputs["condition"], inputs["mask"])
    sr, sf = d_real["score"].flatten(), d_fake["score"].flatten()
    (grad,) = torch.autograd.grad(sr.sum(), real, create_graph=True)
    unknown = 1 - inputs["mask"]
    r1 = (grad * unknown).square().sum((1, 2, 3)) * (3 * H * W) / unknown.sum((1, 2, 3))
    d_adv = F.softplus(-sr) + F.softplus(sf)
    d_total = (d_adv + 0.1 * l1(d_real["surface"]) + 0.001 * sr.square() + 40 * r1).mean()
    d_grads = dict(zip([k for k, _ in D.named_parameters()], torch.autograd.grad(d_total, list(D.parameters()))))
    outputs["D"] = {"real": {"score": d_real["score"], "E": d_real["surface"]},
                    "fake": {"score": d_fake["score"], "E": d_fake["surface"]}}
    G.train()
    out = G(*g_in, z=inputs["z"])
    d_out = D(out["img"], inputs["condition"], inputs["mask"])
    g_adv = F.softplus(-d_out["score"].flatten())
    g_total = (g_adv + 0.1 * l1(d_out["surface"])).mean()
    g_grads = dict(zip([k for k, _ in G.named_parameters()], torch.autograd.grad(g_total, list(G.parameters()))))

    def f32(tree):
        if isinstance(tree, dict):
            return {k: f32(v) for k, v in tree.items()}
        return tree.detach().float() if isinstance(tree, torch.Tensor) and tree.is_floating_point() else tree

    return f32({
        "meta": {"name": "made_here", "batch": N, "imsize": [H, W], "n_vertices": K},
        "config": config,
        "state_dict": {"G": G.state_dict(), "D": D.state_dict()},
        "inputs": inputs,
        "outputs": outputs,
        "losses": {"d_adv": d_adv, "g_adv": g_adv, "r1_raw_per_sample": r1, "D_loss_total": d_total,
                   "G_loss_total": g_total, "constants": CONSTANTS},
        "grads": {"G": g_grads, "D": d_grads},
    })


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vectors") / "made_here.pt"
    torch.save(make_vector(), path)
    return path


def test_check_reference_passes_on_a_consistent_vector(vector_file):
    result = CliRunner().invoke(cli, ["check-reference", str(vector_file)])
    assert result.exit_code == 0, result.output
    assert "checked by vsam" in result.output and "PASS" in result.output and "FAIL" not in result.output
    for item in ("G/w_interpolate_0.0/img", "D/fake/surface", "losses/D_loss_total", "grads/G (", "grads/D ("):
        assert item in result.output


def test_check_reference_fails_beyond_tolerance_and_reports_json(vector_file, tmp_path):
    vector = torch.load(vector_file, weights_only=True)
    vector["outputs"]["G"]["w_interpolate_0.5"]["img_raw"][0, 0, 10, 10] += 2e-4
    first = next(iter(vector["grads"]["D"]))
    vector["grads"]["D"][first] *= 1.01
    path = tmp_path / "broken.pt"
    torch.save(vector, path)
    result = CliRunner().invoke(cli, ["check-reference", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    failed = {r["name"] for r in report["rows"] if not r["ok"]}
    assert report["ok"] is False and report["checker"] == "vsam"
    assert failed == {"G/w_interpolate_0.5/img_raw", f"grads/D ({len(vector['grads']['D'])} tensors)"}


def test_check_reference_rejects_what_no_checker_accepts(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"meta": {"name": "x"}}, path)
    result = CliRunner().invoke(cli, ["check-reference", str(path)])
    assert result.exit_code == 2 and "no installed checker accepts" in result.output
    path.write_bytes(b"not a torch file")
    result = CliRunner().invoke(cli, ["check-reference", str(path)])
    assert result.exit_code == 2 and "cannot read" in result.output
