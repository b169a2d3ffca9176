"""GAN training on mmengine: the model, its optimizers, loop, sampler, hooks and launcher.

Importing this package registers its pieces in mmengine's registries (loop, sampler,
model wrapper, optimizer constructor) and in sganon's (``SurfaceGuidedGAN`` in ``MODELS``,
hooks in ``HOOKS``, the crop dataset in ``DATASETS``), and makes mmengine read local
checkpoints safely (:mod:`.checkpoint`).
"""

from . import checkpoint, distributed, hooks, loop, metrics, model, optim, sampler
from ..data import dataset as _crop_dataset  # noqa: F401 (registers the on-disk crop dataset)

__all__ = ["checkpoint", "distributed", "hooks", "loop", "metrics", "model", "optim", "sampler"]
