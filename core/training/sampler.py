"""An infinite, shuffled, rank-sharded sampler that can start at any position.

The sample stream is a concatenation of epochs; epoch ``e`` is a permutation of the
dataset drawn from ``torch.Generator().manual_seed(seed + e)`` (or the identity without
shuffling). Rank ``r`` of ``W`` takes the stream positions ``r, r + W, r + 2W, ...``.
Because a position maps straight to an index, resuming training at iteration ``i`` only
sets the start to ``i * batch_size``; no data is read to skip ahead (mmengine's own loop
would load every skipped batch).

>>> sampler = ResumableInfiniteSampler(range(5), seed=3, rank=0, world_size=1)
>>> first = [i for _, i in zip(range(7), sampler)]
>>> sampler.start_at(4)
>>> [i for _, i in zip(range(3), sampler)] == first[4:7]
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from mmengine.dist import get_dist_info
from ..registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from ..errors import ConfigError


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """Infinite sampler whose start position can be set (see the module docstring).

    Args:
        dataset: the dataset (only its length is used).
        shuffle: draw a fresh permutation every epoch.
        seed: seed of the permutations; mmengine passes the run's seed.
        rank: this process's rank (default: from torch.distributed).
        world_size: number of processes (default: from torch.distributed).
    """

    def __init__(
        self,
        dataset: Sized,
        shuffle: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if len(dataset) == 0:
            raise ConfigError("the training dataset is empty")
        dist_rank, dist_world_size = get_dist_info()
        self.size = len(dataset)
        self.shuffle = shuffle
        self.seed = 0 if seed is None else int(seed)
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world_size if world_size is None else world_size
        self.start = 0

    def start_at(self, samples_per_rank: int) -> None:
        """Make the next iteration begin after ``samples_per_rank`` samples of this rank."""
        self.start = int(samples_per_rank)

    def set_epoch(self, epoch: int) -> None:
        """No epochs in an infinite stream (mmengine calls this; nothing to do)."""

    def _epoch_order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        position = self.start * self.world_size + self.rank
        epoch, order = position // self.size, None
        while True:
            if order is None or position // self.size != epoch:
                epoch = position // self.size
                order = self._epoch_order(epoch)
            yield order[position % self.size]
            position += self.world_size

    def __len__(self) -> int:
        return self.size
