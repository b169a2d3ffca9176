"""Multi-process training: starting N workers, syncing weights and averaging gradients.

Data-parallel GAN training here does not use ``DistributedDataParallel``: its hooks do not
fit the R1 double backward and the G step through a frozen D. As in StyleGAN2-ADA, every
rank starts from rank 0's weights (:class:`GradientSyncWrapper`) and the model averages
gradients itself (:func:`average_gradients`) between backward and the optimizer step.
Buffers are not synchronized: the only one that changes in training is V-SAM's ``w_avg``,
which training never reads, and checkpoints come from rank 0.

Workers are started by :func:`launch_workers` through torch.multiprocessing with the
environment of mmengine's ``launcher="pytorch"`` (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1`` and a free loopback port); gloo on CPU, NCCL on
GPU.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from ..registry import MODEL_WRAPPERS
from torch import nn

from ..errors import ConfigError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(module: nn.Module) -> None:
    """All-reduce (mean) the gradients of ``module``'s trainable parameters across ranks.

    Parameters without a gradient on this rank contribute zeros, so every rank reduces
    the same flat buffer.
    """
    if world_size() == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        count = p.numel()
        p.grad = flat[offset : offset + count].view_as(p).clone()
        offset += count


@MODEL_WRAPPERS.register_module()
class GradientSyncWrapper(nn.Module):
    """Holds the model in multi-process training; every rank starts from rank 0's state.

    Args:
        module: the GAN model; it averages gradients itself (:func:`average_gradients`).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, nproc: int, port: int, target: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    if not torch.cuda.is_available():  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    init_process_group()
    try:
        target(*args)
    finally:
        dist.destroy_process_group()


def init_process_group() -> str:
    """Join the process group described by the launcher's environment; returns the backend.

    NCCL with one GPU per local rank when CUDA is available, gloo on CPU (mmengine's own
    initialisation assumes CUDA, so sganon does it before building the runner).
    """
    if torch.cuda.is_available():
        local_rank = int(os.environ["LOCAL_RANK"])
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"--nproc asks for GPU {local_rank} but this machine has {torch.cuda.device_count()} GPU(s)"
            )
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return backend


def launch_workers(nproc: int, target: Callable[..., Any], args: tuple) -> None:
    """Run ``target(*args)`` in ``nproc`` processes forming one process group on this machine.

    ``target`` must be importable (a module-level function); a worker's exception is
    raised here once all workers have stopped.
    """
    import torch.multiprocessing as mp

    if nproc < 2:
        raise ConfigError(f"launch_workers needs at least 2 processes, got {nproc}")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc {nproc} needs {nproc} GPUs; this machine has {torch.cuda.device_count()}")
    mp.start_processes(_worker, args=(nproc, free_loopback_port(), target, args), nprocs=nproc, start_method="spawn")
