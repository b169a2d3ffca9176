"""``sganon train``: train a GAN config written by ``sganon build``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoints, logs, samples and the exported G_ema go here [default: work_dirs/CONFIG_NAME].")
@click.option("--max-iters", type=int, default=None, help="Stop after this many iterations (overrides the config).")
@click.option("--seed", type=int, default=None,
              help="Seed of the run [default: a new one, or with --resume the one the run started with].")
@click.option("--resume", is_flag=True,
              help="Continue exactly from the latest checkpoint in the work dir (a fresh start if there is none).")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Processes on this machine (torch.distributed: one per GPU with NCCL, gloo on the CPU).")
@click.option("--cfg-options", multiple=True, metavar="KEY=VALUE",
              help="Override config keys (dotted), repeatable; values are Python literals or strings.")
def train(config: Path, work_dir: Path | None, max_iters: int | None, seed: int | None, resume: bool, nproc: int,
          cfg_options: tuple[str, ...]) -> None:
    """Train the generator and discriminator of CONFIG (mmengine runner).

    Logs losses, images/s and ETA; saves checkpoints, sample grids and the EMA generator
    (export/G_ema.safetensors + G_ema.json) under the work dir.
    """
    from sganon.core.training.runner import train as run_training

    out = run_training(config, work_dir, max_iters, seed, resume, nproc, list(cfg_options))
    click.echo(f"trained; EMA generator at {out / 'export' / 'G_ema.safetensors'}")


COMMANDS = [train]
