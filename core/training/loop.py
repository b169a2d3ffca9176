"""The iteration-based training loop of sganon: resumes the data stream without reading it.

mmengine's :class:`~mmengine.runner.IterBasedTrainLoop` resumes by loading and dropping
every batch already trained on. With :class:`ResumableInfiniteSampler` the stream instead
restarts at ``iteration * batch_size``; otherwise this loop behaves like mmengine's.
"""

from __future__ import annotations

from ..registry import LOOPS
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from .sampler import ResumableInfiniteSampler


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume repositions the sampler instead of skipping batches."""

    def run(self):
        """Train from the current iteration to ``max_iters``; returns the model."""
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        if self._iter > 0:
            self._skip_trained_data()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)
            ):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")
        return self.runner.model

    def _skip_trained_data(self) -> None:
        sampler = getattr(self.dataloader, "sampler", None)
        if isinstance(sampler, ResumableInfiniteSampler):
            sampler.start_at(self._iter * self.dataloader.batch_size)
            # A fresh iterator picks up the new start (workers may have prefetched from the old one).
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            return
        for _ in range(self._iter):  # any other sampler: read and drop, as mmengine does
            next(self.dataloader_iterator)
