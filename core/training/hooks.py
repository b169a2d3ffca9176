"""Runner hooks of GAN training: exact resume, surface table, export, samples, throughput.

* :class:`SafeCheckpointHook` keeps checkpoints loadable with ``weights_only=True``.
* :class:`RandomStateHook` saves every rank's RNG states (python, numpy, torch, CUDA) in
  each checkpoint and restores them just before the first iteration after a resume, so a
  resumed run continues bit-identically (with the resumable sampler and loop).
* :class:`SurfaceTableHook` hands the dataset's vertex table and symmetry to the model.
* :class:`ExportGeneratorHook` writes the EMA generator as ``G_ema.safetensors`` (+ config)
  at every checkpoint and after training.
* :class:`SampleGridHook` saves PNG grids of the EMA generator on fixed crops and latents.
* :class:`ThroughputHook` logs images per second (all ranks together).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS
from .checkpoint import export_generator, plain_message_hub

#: Config keys that describe a run rather than the model; left out of exported configs so
#: the same training gives byte-identical files in any work dir.
RUN_SPECIFIC_KEYS = ("work_dir", "resume", "load_from", "launcher", "experiment_name")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def random_states() -> dict[str, Any]:
    """This process's RNG states as plain values and tensors (loadable with ``weights_only``)."""
    numpy_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`random_states`."""
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Stores the message hub as plain lists, so the checkpoint loads with ``weights_only=True``.

    (:func:`~.checkpoint.load_training_checkpoint` turns them back into mmengine's buffers.)
    """

    priority = "LOWEST"  # after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = plain_message_hub(checkpoint["message_hub"])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Checkpoints the RNG states of all ranks and restores them on resume.

    States are taken after every iteration (gathered from all ranks; a few kB each), so
    the checkpoint written after that iteration holds the states the next one starts
    from. They are restored right before the first iteration after a resume, after the
    data loader has been rebuilt, because building it draws from the global RNG.
    """

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self._states: list[dict[str, Any]] | None = None
        self._to_restore: dict[str, Any] | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        local = random_states()
        self._states = all_gather_object(local) if get_world_size() > 1 else [local]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["random_states"] = self._states if self._states is not None else [random_states()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get("random_states")
        if not saved:
            runner.logger.warning("the checkpoint holds no random states; the resumed run will not repeat the original")
            return
        if len(saved) != get_world_size():
            runner.logger.warning(
                f"the checkpoint was written by {len(saved)} process(es), this run has {get_world_size()}; "
                "random states are not restored, so the resumed run will not repeat the original"
            )
            return
        self._to_restore = saved[get_rank()]

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        if self._to_restore is not None:
            set_random_states(self._to_restore)
            self._to_restore = None


@HOOKS.register_module()
class SurfaceTableHook(Hook):
    """Before training, gives the model the dataset's vertex table and vertex symmetry.

    Datasets with mesh-vertex ids expose ``vertex_table`` (``[K, E]`` unit rows) and
    optionally ``vertex_symmetry`` (``[K]``, the mirror vertex of each vertex).
    """

    priority = "VERY_HIGH"

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        table = getattr(dataset, "vertex_table", None)
        if table is not None:
            symmetry = getattr(dataset, "vertex_symmetry", None)
            unwrap(runner.model).set_surface_table(
                torch.as_tensor(np.asarray(table), dtype=torch.float32),
                None if symmetry is None else torch.as_tensor(np.asarray(symmetry), dtype=torch.long),
            )


def export_config(cfg: Any, iteration: int) -> dict[str, Any]:
    """The run's resolved config without run-specific keys, plus the iteration."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    for key in RUN_SPECIFIC_KEYS:
        data.pop(key, None)
    data["exported_at_iteration"] = int(iteration)
    return data


@HOOKS.register_module()
class ExportGeneratorHook(Hook):
    """Writes ``<work_dir>/<export_dir>/G_ema.safetensors`` (+ ``G_ema.json``).

    At every checkpoint (from the checkpoint's weights) and after training. The file
    holds the EMA generator's own state dict, loadable by the generator class named in
    the config's ``model.generator``.

    Args:
        export_dir: folder under the work dir.
        prefix: state-dict prefix of the EMA generator inside the GAN model.
    """

    priority = "LOW"

    def __init__(self, export_dir: str = "export", prefix: str = "generator_ema.") -> None:
        self.export_dir = export_dir
        self.prefix = prefix

    def _path(self, runner) -> Path:
        return Path(runner.work_dir) / self.export_dir / "G_ema.safetensors"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = {k[len(self.prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(self.prefix)}
        export_generator(state, export_config(runner.cfg, checkpoint["meta"]["iter"]), self._path(runner))

    def after_train(self, runner) -> None:
        if is_main_process():
            state = unwrap(runner.model).generator_ema.state_dict()
            export_generator(state, export_config(runner.cfg, runner.iter), self._path(runner))


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Saves a PNG grid of EMA-generator samples every ``interval`` iterations and at the end.

    Rows: real crops, what the generator sees (condition), then ``num_latents`` samples
    with fixed latents. The crops are the first ``num_crops`` dataset items (no
    augmentation) and the latents come from their own seeded generator, so grids of
    different iterations are comparable and the training RNG is untouched.

    Args:
        interval: iterations between grids.
        num_crops: crops (columns).
        num_latents: samples per crop (rows after the first two).
        seed: seed of the fixed latents.
        out_dir: folder under the work dir.
    """

    priority = "LOW"

    def __init__(self, interval: int = 1000, num_crops: int = 8, num_latents: int = 2, seed: int = 0,
                 out_dir: str = "samples") -> None:
        self.interval = interval
        self.num_crops = num_crops
        self.num_latents = num_latents
        self.seed = seed
        self.out_dir = out_dir
        self._batch: dict[str, torch.Tensor] | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.save_grid(runner)

    def save_grid(self, runner) -> Path | None:
        if not is_main_process():
            return None
        from PIL import Image
        from torchvision.utils import make_grid

        model = unwrap(runner.model)
        if self._batch is None:
            dataset = runner.train_dataloader.dataset
            items = [dataset[i] for i in range(min(self.num_crops, len(dataset)))]
            self._batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
        generator = torch.Generator().manual_seed(self.seed)
        rows = model.sample_rows(self._batch, self.num_latents, generator)
        grid = make_grid(torch.cat(rows), nrow=len(rows[0]), padding=2, value_range=(-1, 1), normalize=True)
        pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        path = Path(runner.work_dir) / self.out_dir / f"iter_{runner.iter + 1:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(pixels).save(temp, format="PNG")
        temp.replace(path)
        runner.logger.info(f"saved samples to {path}")
        return path


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Logs ``img_per_s``: images of all ranks per second of iteration time."""

    priority = "NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        hub = runner.message_hub
        if "train/time" not in hub.log_scalars:
            return
        seconds = hub.get_scalar("train/time").current()
        if seconds > 0:
            images = runner.train_dataloader.batch_size * get_world_size()
            hub.update_scalar("train/img_per_s", images / seconds)
