"""Training throughput (images/s) of the surface-guided GAN.

Measures full training iterations (D step with G under no_grad, lazy R1 on every
``r1_interval``-th step, G step, EMA update) of ``SurfaceGuidedGAN.train_step`` on
synthetic crops. The batches are made once and reused, so the figure is the model's
speed, not the data loader's.

    python benchmarks/bench_train.py --profile tiny                     # CPU
    python benchmarks/bench_train.py --profile paper --precision fp16   # config E on a GPU
    python benchmarks/bench_train.py --profile paper --precision bf16

Figures measured with it are in docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def build(profile: str, precision: str, batch_size: int | None, device: torch.device):
    from sganon.core.build import build_config
    from sganon.core.registry import DATASETS, MODELS
    from sganon.core.training.optim import GANOptimWrapperConstructor

    import sganon.core.training  # noqa: F401 (registers the GAN model)

    cfg = build_config("vsam", "cse", dataset="synthetic", profile=profile).config
    batch_size = batch_size or cfg.train_dataloader.batch_size
    model = MODELS.build(cfg.model.to_dict()).to(device)
    dataset = DATASETS.build({**cfg.train_dataloader.dataset.to_dict(), "num_samples": 4 * batch_size})
    model.set_surface_table(torch.from_numpy(dataset.vertex_table), torch.from_numpy(dataset.vertex_symmetry))
    optim_cfg = {k: v for k, v in cfg.optim_wrapper.to_dict().items() if k != "constructor"}
    optim_cfg["precision"] = precision
    optim = GANOptimWrapperConstructor(optim_cfg)(model)
    batches = []
    for start in range(0, 4 * batch_size, batch_size):
        items = [dataset[i] for i in range(start, start + batch_size)]
        batches.append({key: torch.stack([item[key] for item in items]).to(device) for key in items[0]})
    return model, optim, batches, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto")
    parser.add_argument("--batch", type=int, default=None, help="per-step batch [default: the profile's]")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    model, optim, batches, cfg = build(args.profile, args.precision, args.batch, device)
    batch_size = batches[0]["img"].shape[0]

    def step(i: int) -> None:
        model.train_step(batches[i % len(batches)], optim)

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.iters):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    from sganon.core.training.optim import resolve_precision

    result = {
        "profile": args.profile,
        "resolution": list(cfg.model.generator.resolution),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "precision": resolve_precision(args.precision, device.type == "cuda"),
        "batch": batch_size,
        "iterations": args.iters,
        "seconds_per_iteration": round(seconds / args.iters, 4),
        "images_per_second": round(batch_size * args.iters / seconds, 2),
        "r1_interval": model.r1_interval,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
