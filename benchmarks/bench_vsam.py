"""V-SAM generator inference time against a plain implementation of the spec, same run.

Builds random full-size config-E weights (perturbed like the reference vectors, so no
layer is trivial), writes them as an official-style checkpoint to a temporary folder and
loads it with ``load_fba_checkpoint`` (the project's generator, eval, no_grad). The
baseline is ``benchmarks/vsam_spec_baseline.py`` (written from SPEC.md) on the same state
dict. Both run on the same crops and z; the script prints the median time of each, the
ratio project / baseline, and the max abs difference of ``img`` and ``img_raw``.

    .venv/bin/python benchmarks/bench_vsam.py --threads 2 --batch 1 2 8
    .venv/bin/python benchmarks/bench_vsam.py --profile 2     # torch.profiler table of the project's G

Crops follow the crop rules (SPEC §7.5-7.6): a person silhouette (union of ellipses:
head, torso, arms, legs; position/size drawn per sample), dilated by a disk of radius
``max(1, ceil(8 sqrt(n / 256^2)))`` -> mask = not dilated, border = dilated - person;
per-pixel vertices = nearest vertex (of a random unit-row table) to a smooth, bilinearly
upsampled field of vertex embeddings, so a crop shows a few thousand distinct vertices.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vsam_spec_baseline import SpecGenerator  # noqa: E402

from sganon.plugins.vsam import FPNSurfaceDiscriminator, VSAMGenerator, load_fba_checkpoint  # noqa: E402

HEIGHT, WIDTH, K = 288, 160, 27554


def random_checkpoint(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Config-E state dicts with every parameter perturbed (SPEC §8 "Parameters")."""
    torch.manual_seed(seed)
    generator = VSAMGenerator()
    with torch.no_grad():
        for name, p in generator.named_parameters():
            p.add_(torch.randn_like(p), alpha=0.2 if p.dim() == 1 else 0.1)
        generator.style_net.global_mask.weight[:, -3:] = 0.5 * torch.randn(512, 3, 1, 1)
        generator.style_net.E_map.w_avg.normal_(0, 0.5)
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    return {"EMA_generator": state, "D": FPNSurfaceDiscriminator().state_dict()}


def person_mask(g: torch.Generator) -> torch.Tensor:
    """[H, W] 0/1 silhouette: head, torso, two arms, two legs at a random offset and scale."""
    y = torch.arange(HEIGHT, dtype=torch.float32).view(-1, 1)
    x = torch.arange(WIDTH, dtype=torch.float32).view(1, -1)
    scale = 0.7 + 0.4 * torch.rand((), generator=g).item()
    cy, cx = HEIGHT * (0.45 + 0.1 * torch.rand((), generator=g).item()), WIDTH * (0.4 + 0.2 * torch.rand((), generator=g).item())
    parts = [(-0.33, 0, 0.07, 0.12), (-0.05, 0, 0.22, 0.22), (-0.08, -0.3, 0.2, 0.06), (-0.08, 0.3, 0.2, 0.06),
             (0.3, -0.1, 0.25, 0.07), (0.3, 0.1, 0.25, 0.07)]  # (dy, dx) / H, (ry / H, rx / W)
    person = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    for dy, dx, ry, rx in parts:
        py, px = cy + dy * HEIGHT * scale, cx + dx * WIDTH * scale
        person |= ((y - py) / (ry * HEIGHT * scale)) ** 2 + ((x - px) / (rx * WIDTH * scale)) ** 2 <= 1
    return person.float()


def dilate(person: torch.Tensor) -> torch.Tensor:
    """Binary dilation by a disk of radius max(1, ceil(8 sqrt(n / 256^2))) (SPEC §7.5)."""
    r = max(1, math.ceil(8 * math.sqrt(person.sum().item() / 256**2)))
    offsets = torch.arange(-r, r + 1, dtype=torch.float32)
    disk = ((offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= r * r).float()
    return (F.conv2d(person[None, None], disk[None, None], padding=r)[0, 0] > 0).float()


def make_inputs(batch: int, seed: int = 0, random_vertices: bool = False) -> dict[str, torch.Tensor]:
    """``random_vertices``: every body pixel gets a uniformly random vertex (the worst case for
    the per-distinct-row mapping: about as many distinct vertices as body pixels)."""
    g = torch.Generator().manual_seed(seed)
    table = F.normalize(torch.randn(K, 16, generator=g), dim=1)
    conditions, masks, borders, embeddings, vertex_maps = [], [], [], [], []
    for _ in range(batch):
        person = person_mask(g)
        dilated = dilate(person)
        coarse = table[torch.randint(0, K, (72 * 40,), generator=g)].t().reshape(1, 16, 72, 40)
        field = F.normalize(F.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)[0], dim=0)
        flat = field.reshape(16, -1).t()
        vertices = torch.zeros(HEIGHT * WIDTH, dtype=torch.int64)
        on_body = person.reshape(-1).nonzero()[:, 0]
        for chunk in on_body.split(10000):  # nearest vertex, |e|^2 - 2 e.v + |v|^2
            d = flat[chunk].square().sum(1, keepdim=True) - 2 * flat[chunk] @ table.t() + table.square().sum(1)
            vertices[chunk] = d.argmin(dim=1)
        if random_vertices:
            vertices[on_body] = torch.randint(0, K, (on_body.shape[0],), generator=g)
        vertices = vertices.reshape(HEIGHT, WIDTH)
        image = torch.rand(3, HEIGHT, WIDTH, generator=g) * 2 - 1
        mask = 1 - dilated
        conditions.append(image * mask)
        masks.append(mask[None])
        borders.append((dilated - person)[None])
        embeddings.append(table[vertices].permute(2, 0, 1) * person)
        vertex_maps.append(vertices)
    inputs = {"condition": torch.stack(conditions), "mask": torch.stack(masks), "border": torch.stack(borders),
              "embedding": torch.stack(embeddings), "vertices": torch.stack(vertex_maps)}
    inputs["z"] = torch.randn(batch, 512, generator=g)
    return inputs


def timed(fn) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process (all threads) and the result of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--truncation", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each model (interleaved), median")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed")
    parser.add_argument("--random-vertices", action="store_true",
                        help="a uniformly random vertex per body pixel (worst case) instead of a smooth field")
    parser.add_argument("--profile", type=int, default=None, metavar="BATCH",
                        help="print a torch.profiler table of the project's generator at this batch and exit")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = random_checkpoint(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "configE.torch"
        torch.save(checkpoint, path)
        G, _ = load_fba_checkpoint(path)
    baseline = SpecGenerator(checkpoint["EMA_generator"])
    t = args.truncation
    print(f"V-SAM config E, random weights, CPU {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"truncation {t}, median of {args.repeats}; ratio = ours / spec (wall clock and process CPU time)")

    def ours(inputs):
        with torch.no_grad():
            out = G(**{k: v for k, v in inputs.items() if k != "z"}, z=inputs["z"], truncation=t)
        return out["img"], out["img_raw"]

    def spec(inputs):
        return baseline(inputs["condition"], inputs["mask"], inputs["border"], inputs["embedding"],
                        inputs["vertices"], inputs["z"], t)

    if args.profile:
        inputs = make_inputs(args.profile, args.seed + 1, args.random_vertices)
        ours(inputs)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            ours(inputs)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        return

    for batch in args.batch:
        inputs = make_inputs(batch, args.seed + batch, args.random_vertices)
        ours(inputs), spec(inputs)  # warm-up
        ours_s, spec_s = [], []
        for _ in range(args.repeats):  # interleaved so machine load hits both alike
            *seconds, outs = timed(lambda: ours(inputs))
            ours_s.append(seconds)
            *seconds, ref = timed(lambda: spec(inputs))
            spec_s.append(seconds)
        ours_wall, ours_cpu = (median([s[i] for s in ours_s]) for i in (0, 1))
        spec_wall, spec_cpu = (median([s[i] for s in spec_s]) for i in (0, 1))
        diff = max((a - b).abs().max().item() for a, b in zip(outs, ref))
        unique = sum(inputs["vertices"][i][inputs["mask"][i, 0] + inputs["border"][i, 0] == 0].unique().numel()
                     for i in range(batch)) / batch
        print(f"  batch {batch}: wall ours {ours_wall:6.2f} s spec {spec_wall:6.2f} s ratio {ours_wall / spec_wall:.3f} | "
              f"CPU ours {ours_cpu:6.2f} s spec {spec_cpu:6.2f} s ratio {ours_cpu / spec_cpu:.3f} | "
              f"max|diff| {diff:.1e} ({unique:.0f} distinct vertices per crop)", flush=True)


if __name__ == "__main__":
    main()
