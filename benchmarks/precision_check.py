"""How far ``--precision bf16`` / ``fp16`` (autocast) move the results from the references.

Two references, each checked by its own rule, with the model forwards under
``sganon.core.precision.model_autocast`` exactly as the pipeline runs them:

* the end-to-end anonymizer vector (``../shared/reference/e2e/vector_e2e_a.pt``): SPEC §7
  with the small config-E generator through ``anonymize_densepose``; FORMAT.md's rule
  (identical outside the region; inside, >= 99.5 % of pixels within 2 levels, none over 8);
* the DensePose-CSE R101 vector (``../shared/reference/cse/S101DL_vector_a.pt``): every stage
  and the end-to-end head outputs, with the tolerances of VECTORS.md.

Usage::

    python benchmarks/precision_check.py                         # CPU: fp32, bf16, fp16
    python benchmarks/precision_check.py --device cuda --precisions fp32 tf32 bf16 fp16

Prints one line per precision and reference: the measures and whether the rule holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def e2e_rows(precision: str, device: str) -> list[dict]:
    from sganon.core.precision import apply_tf32, model_autocast
    from sganon.plugins.cse import anonymize_densepose
    from sganon.plugins.cse.anonymize import e2e_comparison
    from sganon.plugins.vsam import load_fba_checkpoint

    vector = torch.load(SHARED / "reference/e2e/vector_e2e_a.pt", map_location="cpu", weights_only=True)
    state = vector["state_dict"]
    checkpoint = {"EMA_generator": state["G"], "generator": state["G"], "D": state["D"]}
    generator = load_fba_checkpoint(checkpoint, config=vector["config"])[0].to(device)
    table = vector["vertex_table"].to(device)
    apply_tf32(precision, device)
    rows = []
    for case in vector["cases"]:
        densepose = {key: value.to(device) for key, value in case["densepose"].items()}
        z = None if case["z"] is None else case["z"].to(device)
        with torch.no_grad(), model_autocast(precision, device):
            out = anonymize_densepose(case["image"].numpy(), densepose, table, generator, case["truncation"], z)
        measures = e2e_comparison(out, case["expected"].numpy(), case["region"].numpy())
        rows.append({"reference": f"e2e/{case['name']}", **measures})
    return rows


def cse_rows(precision: str, device: str) -> list[dict]:
    from sganon.core.precision import model_autocast
    from sganon.plugins.cse.reference import CSEReferenceChecker

    vector = torch.load(SHARED / "reference/cse/S101DL_vector_a.pt", map_location="cpu", weights_only=True)
    checker = CSEReferenceChecker(device)
    with model_autocast(precision, device):
        checked = checker.check(vector)
    worst: dict[str, dict] = {}  # per kind of comparison, the row nearest its tolerance (or most beyond)
    for row in checked:
        ratio = row["error"] / row["tolerance"] if row["tolerance"] else (0.0 if row["error"] == 0 else float("inf"))
        if row["kind"] not in worst or ratio > worst[row["kind"]]["ratio"]:
            worst[row["kind"]] = {"name": row["name"], "error": row["error"], "tolerance": row["tolerance"], "ratio": ratio}
    failed = sum(not row["ok"] for row in checked)
    return [{"reference": "cse/S101DL", "rows": len(checked), "failed": failed, "ok": failed == 0, "worst": worst}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--only", choices=["e2e", "cse"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for name in ("reference/e2e/vector_e2e_a.pt", "reference/cse/S101DL_vector_a.pt"):
        if not (SHARED / name).is_file():
            sys.exit(f"missing {SHARED / name}")
    print(f"torch {torch.__version__}, device {args.device}", flush=True)
    results = []
    for precision in args.precisions:
        rows = ([] if args.only == "cse" else e2e_rows(precision, args.device)) + (
            [] if args.only == "e2e" else cse_rows(precision, args.device)
        )
        for row in rows:
            print(f"{precision:5s} {json.dumps(row)}", flush=True)
            results.append({"precision": precision, **row})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
