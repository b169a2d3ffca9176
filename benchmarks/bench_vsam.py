"""Forward time of the V-SAM generator (config E, 288x160, random weights).

Not a test: prints (and optionally writes as JSON) milliseconds per batch for batch sizes
1 and 8, at truncation 0.5 (the per-vertex mapper runs) and 0 (``w = w_avg``: the mapper
is skipped; the anonymizer's default). On a GPU it also times bf16/fp16 autocast,
channels_last and, with ``--compile``, torch.compile.

    .venv/bin/python benchmarks/bench_vsam.py                      # CPU
    .venv/bin/python benchmarks/bench_vsam.py --device cuda --compile

The crops hold one elliptical person with a spatially coherent vertex map (ids constant
over 2x2 pixel cells, about 4k distinct vertices per crop, like a CSE map).
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from sganon.plugins.vsam import VSAMGenerator


def make_inputs(batch: int, device: torch.device, n_vertices: int = 27554) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h, w = 288, 160
    y = torch.arange(h).view(h, 1).float()
    x = torch.arange(w).view(1, w).float()
    d = ((y - 150) / 110) ** 2 + ((x - 80) / 45) ** 2
    person = (d <= 1).float().expand(batch, 1, h, w)
    dilated = (d <= 1.1).float().expand(batch, 1, h, w)
    mask = 1 - dilated
    cells = torch.randint(0, n_vertices, (batch, h // 2, w // 2), generator=g)
    vertices = cells.repeat_interleave(2, 1).repeat_interleave(2, 2) * person[:, 0].long()
    table = torch.nn.functional.normalize(torch.randn(n_vertices, 16, generator=g), dim=1)
    embedding = table[vertices].permute(0, 3, 1, 2) * person
    img = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    tensors = [img * mask, mask, dilated - person, embedding, vertices]
    return [t.contiguous().to(device) for t in tensors]


def time_forward(G, inputs, truncation, repeats, warmup, device, autocast_dtype=None) -> float:
    """Median milliseconds per forward."""
    context = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    z = torch.randn(inputs[0].shape[0], G.z_channels, device=device)
    times = []
    with torch.inference_mode(), context:
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            G(*inputs, z=z, truncation=truncation)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 3 on CPU, 20 on GPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (GPU; slow to compile)")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if device.type == "cpu" else 20)
    warmup = 1 if device.type == "cpu" else 5
    torch.manual_seed(0)
    G = VSAMGenerator().eval().to(device)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in G.parameters()),
        "rows": [],
    }
    print(f"V-SAM config E on {results['device']}, torch {torch.__version__}, median of {repeats} runs")

    modes = [("fp32", None, False)]
    if device.type == "cuda":
        modes += [("bf16 autocast", torch.bfloat16, False), ("fp16 autocast", torch.float16, False),
                  ("fp32 channels_last", None, True), ("bf16 channels_last", torch.bfloat16, True)]
    for batch in args.batch:
        inputs = make_inputs(batch, device)
        for name, dtype, channels_last in modes:
            model = G.to(memory_format=torch.channels_last) if channels_last else G.to(memory_format=torch.contiguous_format)
            batch_inputs = [t.to(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t for t in inputs]
            for truncation in (0.5, 0.0):
                ms = time_forward(model, batch_inputs, truncation, repeats, warmup, device, dtype)
                row = {"mode": name, "batch": batch, "truncation": truncation, "ms": round(ms, 2), "ms_per_crop": round(ms / batch, 2)}
                results["rows"].append(row)
                print(f"  batch {batch:2d}  t={truncation:<4}  {name:20s} {ms:9.1f} ms  ({ms / batch:7.1f} ms/crop)")
        if args.compile and device.type == "cuda":
            compiled = torch.compile(G.to(memory_format=torch.contiguous_format))
            for truncation in (0.5, 0.0):
                start = time.perf_counter()
                time_forward(compiled, inputs, truncation, 1, 0, device, torch.bfloat16)
                compile_s = time.perf_counter() - start
                ms = time_forward(compiled, inputs, truncation, repeats, warmup, device, torch.bfloat16)
                row = {"mode": "bf16 torch.compile", "batch": batch, "truncation": truncation, "ms": round(ms, 2),
                       "ms_per_crop": round(ms / batch, 2), "first_call_s": round(compile_s, 1)}
                results["rows"].append(row)
                print(f"  batch {batch:2d}  t={truncation:<4}  {'bf16 torch.compile':20s} {ms:9.1f} ms  "
                      f"({ms / batch:7.1f} ms/crop; first call {compile_s:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
