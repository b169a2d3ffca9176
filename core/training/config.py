"""The training sections of a config written by ``sganon build`` (SPEC §5-6).

:func:`training_sections` is called by :func:`sganon.core.build.build_config` for trainable
generators. Profiles:

* ``paper``: the paper's hyper-parameters (batch 32, 12 M images = 375 000 iterations,
  Adam lr 1e-3 betas (0, 0.99), lazy R1 gamma 5 every 16 D steps, epsilon 1e-3, surface
  L1 0.1, EMA half-life 10 000 images, the paper's augmentation, fp16 on a GPU). The
  dataset defaults to the on-disk person crops (``crops``), whose folder must be given:
  ``--cfg-options train_dataloader.dataset.root=DIR``.
* ``tiny``: the same objective at CPU size: batch 4, 100 iterations, logs every
  iteration, checkpoints and sample grids every 50, the registry's tiny training dataset by default,
  flips only.

Every value can be overridden with ``--cfg-options`` (``sganon build`` or ``sganon train``).
"""

from __future__ import annotations

from typing import Any

from ..capabilities import DiscriminatorCapabilities, GeneratorCapabilities
from ..components import component_config, registered
from ..data.augment import PAPER_OPTIONS
from ..errors import ComponentNotFoundError, ConfigError
from ..presets import registry_defaults
from ..registry import DATASETS

#: Paper values (SPEC §1, §6).
PAPER_BATCH = 32
PAPER_IMAGES = 12_000_000
PAPER_LR = 1e-3
PAPER_BETAS = (0.0, 0.99)
EMA_HALF_LIFE_IMAGES = 10_000
#: The paper logs every 10 k images and checkpoints / saves samples every 200 k images.
PAPER_IMAGES_PER_CHECKPOINT = 200_000

#: The loss components of config E by role (short names of registered ``Loss`` components).


def dataset_class(name: str) -> type:
    """A registered training dataset by short ``name`` (or class name)."""
    DATASETS.import_from_location()
    for key, cls in DATASETS.module_dict.items():
        if name in (getattr(cls, "name", None), key):
            return cls
    names = sorted(getattr(cls, "name", key) for key, cls in DATASETS.module_dict.items())
    raise ComponentNotFoundError(f"no training dataset named {name!r}; available datasets: {', '.join(names)}")


def loss_configs(profile: str, discriminator_caps: DiscriminatorCapabilities) -> dict[str, dict[str, Any]]:
    """Loss component configs by role; surface supervision only if D predicts surfaces."""
    losses = {}
    for role, name in registry_defaults().training_losses.items():
        if role == "surface" and not discriminator_caps.surface_channels:
            continue
        losses[role] = component_config("loss", name, profile)
    return losses


def training_sections(
    generator: dict[str, Any],
    discriminator: dict[str, Any],
    dataset: str | None,
    profile: str,
    generator_caps: GeneratorCapabilities,
) -> tuple[dict[str, Any], list[str]]:
    """The config sections ``sganon train`` needs, and summary lines for ``sganon build``.

    Args:
        generator: the generator's config (``type`` + arguments).
        discriminator: the discriminator's config.
        dataset: short name of a registered training dataset, or ``None`` for the
            profile's default (registry.yaml ``defaults``).
        profile: ``"paper"`` or ``"tiny"``.
        generator_caps: the generator's capabilities.
    """
    tiny = profile == "tiny"
    resolution = generator_caps.resolution
    if not resolution:
        raise ConfigError("a trainable generator must state its crop resolution in capabilities()")
    discriminator_cls = next(
        (cls for cls in registered("discriminator").values() if cls.__name__ == discriminator["type"]), None
    )
    discriminator_caps = (
        discriminator_cls.capabilities(discriminator) if discriminator_cls else DiscriminatorCapabilities()
    )
    if discriminator_caps.resolution and discriminator_caps.resolution != resolution:
        raise ConfigError(
            f"the discriminator works at {list(discriminator_caps.resolution)} but the generator at {list(resolution)}"
        )

    defaults = registry_defaults()
    dataset_name = dataset or (defaults.tiny_training_dataset if tiny else defaults.training_dataset)
    data_cls = dataset_class(dataset_name)
    dataset_cfg = {"type": data_cls.__name__, **data_cls.default_args(profile, generator, generator_caps)}

    batch_size = 4 if tiny else PAPER_BATCH
    max_iters = 100 if tiny else PAPER_IMAGES // PAPER_BATCH
    checkpoint_interval = 50 if tiny else PAPER_IMAGES_PER_CHECKPOINT // PAPER_BATCH
    log_interval = 1 if tiny else 50
    losses = loss_configs(profile, discriminator_caps)
    augment = {"hflip": 0.5} if tiny else dict(PAPER_OPTIONS)
    adam = {"type": "Adam", "lr": PAPER_LR, "betas": PAPER_BETAS, "eps": 1e-8}

    sections: dict[str, Any] = {
        # mmengine imports this when it reads the config, so `Runner.from_cfg` works without sganon's CLI
        "custom_imports": {"imports": ["sganon.core.training"], "allow_failed_imports": False},
        "model": {
            "type": "SurfaceGuidedGAN",
            "generator": generator,
            "discriminator": discriminator,
            "losses": losses,
            "ema_half_life_images": EMA_HALF_LIFE_IMAGES,
            "augment": augment,
        },
        "train_dataloader": {
            "batch_size": batch_size,
            "num_workers": 0 if tiny else 8,
            "persistent_workers": not tiny,
            "pin_memory": not tiny,
            "sampler": {"type": "ResumableInfiniteSampler", "shuffle": True},
            "collate_fn": {"type": "default_collate"},
            "dataset": dataset_cfg,
        },
        "optim_wrapper": {
            "constructor": "GANOptimWrapperConstructor",
            "precision": "auto",
            "generator": {"optimizer": dict(adam)},
            "discriminator": {"optimizer": dict(adam)},
        },
        "train_cfg": {"type": "ResumableIterBasedTrainLoop", "max_iters": max_iters, "val_interval": max_iters + 1},
        "default_hooks": {
            "runtime_info": {"type": "RuntimeInfoHook"},
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": log_interval},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": {
                "type": "CheckpointHook", "interval": checkpoint_interval, "by_epoch": False,
                "max_keep_ckpts": 3, "save_last": True,
            },
            "sampler_seed": {"type": "DistSamplerSeedHook"},
        },
        "custom_hooks": [
            {"type": "SafeCheckpointHook"},
            {"type": "RandomStateHook"},
            {"type": "SurfaceTableHook"},
            {"type": "ThroughputHook"},
            {"type": "ExportGeneratorHook"},
            {"type": "SampleGridHook", "interval": checkpoint_interval, "num_crops": 4 if tiny else 8},
            {"type": "MetricsHook"},  # its settings are the top-level `metrics` section
        ],
        "metrics": {"interval": checkpoint_interval, "num_images": 64 if tiny else 10_000,
                    "inception": None, "lpips_backbone": None, "lpips_heads": None},
        "log_processor": {"by_epoch": False, "window_size": log_interval if tiny else 10},
        "env_cfg": {
            "cudnn_benchmark": not tiny,
            "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
            "dist_cfg": {"backend": "nccl"},
        },
        "tf32": True,
        "randomness": {"seed": None, "diff_rank_seed": True, "deterministic": False},
        "log_level": "INFO",
    }
    summary = [
        f"dataset:       {dataset_name} ({data_cls.__name__})"
        + (" -- set train_dataloader.dataset.root" if dataset_cfg.get("root", "") is None else ""),
        f"training:      batch {batch_size} per process, {max_iters} iterations, Adam lr {PAPER_LR:g} betas "
        f"{PAPER_BETAS}, D corrected for lazy R1 every {losses['r1']['lazy_interval'] if 'r1' in losses else '-'} steps",
        "objective:     " + ", ".join(f"{role}={cfg['type']}" for role, cfg in losses.items()),
        f"EMA:           half-life {EMA_HALF_LIFE_IMAGES} images; precision auto (fp16 on GPU, fp32 on CPU)",
    ]
    return sections, summary
