"""Run training from a config file: one process, or N through torch.distributed.

:func:`train` is what ``sganon train`` calls. It loads the config written by
``sganon build``, applies the command-line settings, fixes the seed (drawn once and kept
in ``<work_dir>/sganon_run.json`` so ``--resume`` without ``--seed`` continues the same
run) and builds an mmengine ``Runner``; with ``nproc > 1`` each worker does the same with
``launcher="pytorch"`` (see :mod:`.distributed`).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import torch

from ..build import load_config, parse_cfg_options
from ..errors import ConfigError
from .distributed import launch_workers

RUN_FILE = "sganon_run.json"


def default_work_dir(config_path: Path) -> Path:
    return Path("work_dirs") / config_path.stem


def resolve_seed(work_dir: Path, seed: int | None, resume: bool) -> int:
    """The run's seed: ``seed``; else, when resuming, the one the run started with; else a new one."""
    run_file = work_dir / RUN_FILE
    recorded = json.loads(run_file.read_text())["seed"] if run_file.is_file() else None
    if seed is not None:
        return int(seed)
    if resume and recorded is not None:
        return int(recorded)
    return random.SystemRandom().randrange(2**31)


def load_training_config(
    config_path: str | os.PathLike[str],
    work_dir: str | os.PathLike[str] | None = None,
    max_iters: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    cfg_options: list[str] | tuple[str, ...] = (),
) -> Any:
    """The config with the command line applied (work dir, iterations, seed, resume, overrides)."""
    path = Path(config_path)
    cfg = load_config(path)
    missing = [key for key in ("model", "train_dataloader", "optim_wrapper", "train_cfg") if key not in cfg]
    if missing:
        raise ConfigError(
            f"{path} has no training sections ({', '.join(missing)}); only configs of trainable generators can be "
            "trained (`sganon build --generator NAME ...` with a trainable generator)"
        )
    options = parse_cfg_options(list(cfg_options))
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = str(Path(work_dir) if work_dir is not None else default_work_dir(path))
    if max_iters is not None:
        if max_iters < 1:
            raise ConfigError(f"--max-iters must be at least 1, got {max_iters}")
        cfg.train_cfg.max_iters = int(max_iters)
    cfg.resume = bool(resume)
    # A unique name: mmengine keys its logger / message hub instances by it, and two runs in
    # one process (tests, notebooks) within the same second would otherwise share them.
    cfg.experiment_name = f"{path.stem}_{uuid.uuid4().hex[:8]}"
    for hook in cfg.get("custom_hooks", []):
        if hook.get("type") == "MetricsHook":  # settable as --cfg-options metrics.inception=FILE
            hook.update(cfg.get("metrics", {}))
    run_seed = resolve_seed(Path(cfg.work_dir), seed, resume)
    cfg.randomness.seed = run_seed
    cfg.train_dataloader.sampler.seed = run_seed
    return cfg


def record_run(cfg: Any) -> None:
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / RUN_FILE).write_text(json.dumps({"seed": int(cfg.randomness.seed)}) + "\n")


def run(cfg: Any) -> Path:
    """Train in this process (rank 0 of 1, or a worker of an initialised process group)."""
    import torch.distributed as dist
    from mmengine.runner import Runner

    distributed = dist.is_available() and dist.is_initialized()
    cfg.launcher = "pytorch" if distributed else "none"
    if distributed:
        cfg.model_wrapper_cfg = {"type": "sganon.GradientSyncWrapper"}  # scoped: the Runner looks it up in the root registry
    if torch.cuda.is_available() and cfg.get("tf32", True):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if not distributed or dist.get_rank() == 0:
        record_run(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return Path(cfg.work_dir)


def _worker_entry(config_path: str, settings: dict[str, Any]) -> None:
    run(load_training_config(config_path, **settings))


def train(
    config_path: str | os.PathLike[str],
    work_dir: str | os.PathLike[str] | None = None,
    max_iters: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    nproc: int = 1,
    cfg_options: list[str] | tuple[str, ...] = (),
) -> Path:
    """Train the config at ``config_path``; returns the work dir. See ``sganon train --help``."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    cfg = load_training_config(config_path, work_dir, max_iters, seed, resume, cfg_options)
    if nproc == 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # started by torchrun (or another launcher setting RANK/WORLD_SIZE/MASTER_ADDR): join its group
        from .distributed import init_process_group

        init_process_group()
        return run(cfg)
    if nproc == 1:
        return run(cfg)
    settings = {
        "work_dir": cfg.work_dir,
        "max_iters": max_iters,
        "seed": int(cfg.randomness.seed),  # every worker must use the same run seed
        "resume": resume,
        "cfg_options": list(cfg_options),
    }
    launch_workers(nproc, _worker_entry, (str(config_path), settings))
    return Path(cfg.work_dir)
