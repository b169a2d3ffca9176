"""Checks this implementation against a published V-SAM test vector (``vector_*.pt``).

A vector (format: ``reference/vsam/vector_format.md``) holds an official-style config,
state dicts of G and D, inputs, and the reference outputs, loss terms and parameter
gradients. :class:`VSAMReferenceChecker` rebuilds G and D from the vector's config, loads
its weights strictly, recomputes everything and reports the worst error of each item:
absolute for outputs and losses (tolerance 1e-4), relative for gradients (1e-3; per
tensor ``max|ours - ref| / max|ref|``, the worst tensor reported).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .fba import load_fba_checkpoint
from .losses import (
    EpsilonPenalty,
    NonSaturatingLoss,
    R1Penalty,
    SurfaceSupervisionLoss,
    discriminator_losses,
    generator_losses,
    masked_smooth_l1,
)

OUTPUT_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-3


def row(name: str, kind: str, error: float, tolerance: float, detail: str = "") -> dict[str, Any]:
    ok = bool(error <= tolerance)  # NaN fails
    return {"name": name, "kind": kind, "error": float(error), "tolerance": tolerance, "ok": ok, "detail": detail}


def abs_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = torch.as_tensor(ours).detach().double(), torch.as_tensor(ref).double()
    if ours.shape != ref.shape:
        return float("inf")
    return float((ours - ref).abs().max()) if ref.numel() else 0.0


def rel_error(ours: torch.Tensor | None, ref: torch.Tensor) -> float:
    if ours is None or ours.shape != ref.shape:
        return float("inf")
    scale = float(ref.abs().max())
    return float((ours.detach().double() - ref.double()).abs().max()) / max(scale, 1e-12)


def vector_config(vector: Mapping[str, Any]) -> dict[str, Any]:
    meta = vector.get("meta", {})
    config = {key: vector["config"][key] for key in ("generator", "discriminator")}
    config["imsize"] = list(meta.get("imsize", [288, 160]))
    config["n_vertices"] = int(meta.get("n_vertices", 27554))
    return config


class VSAMReferenceChecker:
    """``sganon check-reference`` checker for the official G/D/loss test vectors.

    Args:
        dtype: precision of the recomputation. float64 (default) compares the vector with
            the exact result of our implementation, so the reported error is the
            reference's own float32 rounding (~1e-5); float32 adds ours, and gradients
            can then differ by more where a leaky-ReLU input within rounding of 0 changes
            side (the gradient is discontinuous there).
    """

    name = "vsam"

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        self.dtype = dtype

    def accepts(self, vector: Any) -> bool:
        try:
            return (
                vector["config"]["generator"]["type"] == "UnetGenerator"
                and "G" in vector["state_dict"]
                and "D" in vector["state_dict"]
                and "outputs" in vector
            )
        except (KeyError, TypeError):
            return False

    def check(self, vector: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Rows ``{"name", "kind", "error", "tolerance", "ok", "detail"}``, one per checked item."""
        config = vector_config(vector)
        generator, discriminator = load_fba_checkpoint(
            {"EMA_generator": vector["state_dict"]["G"], "D": vector["state_dict"]["D"]}, config
        )
        generator.to(self.dtype)
        discriminator.to(self.dtype)
        inputs = {
            key: value.to(self.dtype) if value.is_floating_point() else value
            for key, value in vector["inputs"].items()
            if isinstance(value, torch.Tensor)
        }
        g_inputs = {key: inputs[key] for key in ("condition", "mask", "border", "embedding", "vertices")}
        condition, mask, border, target = inputs["condition"], inputs["mask"], inputs["border"], inputs["embedding"]
        parts = self.loss_components(vector)
        results: dict[str, Any] = {}

        # G outputs in eval mode at every truncation of the vector (-1 stands for none).
        generator.eval()
        fake = None
        with torch.no_grad():
            for key, expected in vector["outputs"]["G"].items():
                truncation = expected.get("truncation")
                truncation = None if truncation is None or truncation < 0 else float(truncation)
                out = generator(**g_inputs, z=inputs["z"], truncation=truncation)
                results[f"G/{key}"] = out
                if truncation is None:
                    fake = out["img"]
            if fake is None:
                fake = generator(**g_inputs, z=inputs["z"])["img"]

        # D step (train mode) with R1: outputs on real and fake, loss terms, d(D total)/d(theta_D).
        discriminator.train().requires_grad_(True)
        discriminator.zero_grad(set_to_none=True)
        real = inputs["img"].detach().clone().requires_grad_(True)
        d = discriminator_losses(
            discriminator, real, fake, condition, mask, border, target,
            parts["adversarial"], parts["surface"], parts["epsilon"], parts["r1"],
        )
        d["total"].backward()
        d_grads = {key: p.grad for key, p in discriminator.named_parameters()}

        # G step (train mode, the same z) through the frozen D; the w_avg update rides along
        # (it does not change this output: w_avg only enters through truncation).
        discriminator.requires_grad_(False)
        generator.train().requires_grad_(True)
        generator.zero_grad(set_to_none=True)
        with torch.no_grad():
            w_mean = generator.style_net.E_map.map_network(inputs["z"]).mean(dim=0) if generator.style == "vsam" else None
        out = generator(**g_inputs, z=inputs["z"], update_w_avg=generator.style == "vsam")
        g = generator_losses(discriminator, out["img"], condition, mask, border, target, parts["adversarial"], parts["surface"])
        g["total"].backward()
        g_grads = {key: p.grad for key, p in generator.named_parameters()}

        rows = []
        for key, expected in vector["outputs"]["G"].items():
            for item in ("img", "img_raw"):
                error = abs_error(results[f"G/{key}"][item], expected[item])
                rows.append(row(f"G/{key}/{item}", "output", error, OUTPUT_TOLERANCE))
        d_outputs = {"real": (d["real_score"], d["real_surface"]), "fake": (d["fake_score"], d["fake_surface"])}
        for key, expected in vector["outputs"]["D"].items():
            score, surface = d_outputs[key]
            rows.append(row(f"D/{key}/score", "output", abs_error(score, expected["score"]), OUTPUT_TOLERANCE))
            if "E" in expected:
                rows.append(row(f"D/{key}/surface", "output", abs_error(surface, expected["E"]), OUTPUT_TOLERANCE))
        rows += self.loss_rows(vector, d, g, parts, target, mask, border)
        expected = vector.get("loss_handler", {}).get("w_avg_update")
        if expected and w_mean is not None:
            w_avg = generator.style_net.E_map.w_avg[expected["rows"]]
            rows.append(row("w_avg_update/w_mean", "output", abs_error(w_mean, expected["w_mean"]), OUTPUT_TOLERANCE))
            rows.append(row("w_avg_update/w_avg_after_rows", "output", abs_error(w_avg, expected["w_avg_after_rows"]), OUTPUT_TOLERANCE))
        rows.append(self.gradient_row("grads/D", d_grads, vector["grads"]["D"]))
        rows.append(self.gradient_row("grads/G", g_grads, vector["grads"]["G"]))
        return rows

    @staticmethod
    def loss_components(vector: Mapping[str, Any]) -> dict[str, Any]:
        constants = vector["losses"]["constants"]
        return {
            "adversarial": NonSaturatingLoss(),
            "surface": SurfaceSupervisionLoss(
                constants["l1_weight"], constants["lambda_real"], constants["lambda_fake"]
            ),
            "epsilon": EpsilonPenalty(constants["epsilon_weight"]),
            "r1": R1Penalty(constants["r1_weight"], int(constants["lazy_reg_interval"]), mask_out=True),
        }

    @staticmethod
    def loss_rows(vector, d, g, parts, target, mask, border) -> list[dict[str, Any]]:
        region = 1 - (mask + border)
        with torch.no_grad():
            l1_real = masked_smooth_l1(d["real_surface"], target, region)
            l1_fake = masked_smooth_l1(d["fake_surface"], target, region)
            r1_raw = d["r1"] / parts["r1"].multiplier
            ours = {
                "d_adv": d["adversarial"],
                "l1_real_per_sample": l1_real,
                "l1_fake_per_sample": l1_fake,
                "D_l1_real_mean": l1_real.mean(),
                "D_l1_fake_mean": l1_fake.mean(),
                "gan_d_total_per_sample": d["adversarial"] + d["surface"],
                "g_adv": g["adversarial"],
                "g_embedding_l1_mean": l1_fake.mean(),
                "gan_g_total_per_sample": g["adversarial"] + g["surface"],
                "epsilon_penalty_raw": d["real_score"].square().mean(),
                "epsilon_penalty_per_sample": d["epsilon"],
                "r1_raw_per_sample": r1_raw,
                "r1_weighted_per_sample": d["r1"],
                "D_loss_total": d["total"],
                "G_loss_total": g["total"],
            }
            handler = {
                "D_loss": d["total"],
                "G_loss": g["total"],
                "D_log/D_l1_real": l1_real.mean(),
                "D_log/D_l1_fake": l1_fake.mean(),
                "D_log/d_loss": d["adversarial"].mean(),
                "D_log/epsilon_penalty": d["real_score"].square().mean(),
                "D_log/r1_gradient_penalty": r1_raw.mean(),
                "D_log/real_scores": d["real_score"].mean(),
                "D_log/fake_scores": d["fake_score"].mean(),
                "G_log/g_embedding_l1": g["surface"].mean() / parts["surface"].l1_weight,
                "G_log/g_loss": g["adversarial"].mean(),
            }
        rows = []
        for key, value in ours.items():
            if key in vector["losses"]:
                rows.append(row(f"losses/{key}", "loss", abs_error(value, vector["losses"][key]), LOSS_TOLERANCE))
        reference_handler = vector.get("loss_handler", {})
        for key, value in handler.items():
            section, _, item = key.rpartition("/")
            expected = reference_handler.get(section, {}).get(item) if section else reference_handler.get(item)
            if isinstance(expected, torch.Tensor):
                rows.append(row(f"loss_handler/{key}", "loss", abs_error(value, expected), LOSS_TOLERANCE))
        return rows

    @staticmethod
    def gradient_row(name: str, grads: Mapping[str, torch.Tensor | None], expected: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Worst per-tensor relative error; a missing or extra tensor counts as infinite."""
        worst, worst_key = 0.0, ""
        keys = set(grads) | set(expected)
        for key in sorted(keys):
            error = rel_error(grads.get(key), expected[key]) if key in expected else float("inf")
            if not error <= worst:  # also catches NaN
                worst, worst_key = error, key
        return row(f"{name} ({len(keys)} tensors)", "gradient", worst, GRADIENT_TOLERANCE, detail=f"worst: {worst_key}")
