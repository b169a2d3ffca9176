"""Image-quality metrics during training: FID and LPIPS, from weights the user supplies.

Nothing is downloaded. :class:`MetricsHook` runs only when given weight files:

* ``inception``: a TorchScript Inception-v3 feature extractor with the convention of
  StyleGAN2-ADA / clean-fid (``inception-2015-12-05.pt``): ``model(images,
  return_features=True) -> [N, 2048]`` for float images ``[N, 3, H, W]`` in 0..255 (it
  resizes internally). FID compares the EMA generator's crops with the real ones.
* ``lpips_backbone`` + ``lpips_heads``: LPIPS (VGG16 variant) from torchvision's VGG16
  state dict (``vgg16-397923af.pth``, keys ``features.*``) and LPIPS' linear heads
  (``weights/v0.1/vgg.pth`` of the ``lpips`` package, keys ``lin{0..4}.model.1.weight``).
  Logged: ``lpips`` (generated vs real crop: lower = closer to the original) and
  ``lpips_diversity`` (two latents for the same crop: higher = more diverse).

Without weights the hook logs once that metrics are skipped and does nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from torch import nn

from ..errors import WeightsError
from ..registry import HOOKS

#: LPIPS' input normalisation (its ``ScalingLayer``) for images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
#: Indices in ``vgg16().features`` after which LPIPS taps the activations (relu1_2 ... relu5_3).
VGG_TAPS = (3, 8, 15, 22, 29)
VGG_TAP_CHANNELS = (64, 128, 256, 512, 512)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``[N, D]`` features (float64)."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` of two Gaussians.

    ``Tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S1 S2``
    (real and non-negative for covariance matrices; rounding noise is clipped).
    """
    eigenvalues = np.linalg.eigvals(np.asarray(sigma1) @ np.asarray(sigma2))
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    distance = np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(distance, 0.0))


class LPIPS(nn.Module):
    """LPIPS distance (VGG16 variant): per-sample ``[N]`` for images in [-1, 1].

    Build with :meth:`from_files`; the architecture is torchvision's VGG16 (no download).
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # torchvision's vgg16().features (same layer indices), without building the classifier
        self.features = make_layers(cfgs["D"], batch_norm=False)[: VGG_TAPS[-1] + 1].eval().requires_grad_(False)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in VGG_TAP_CHANNELS).requires_grad_(False)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    @classmethod
    def from_files(cls, backbone: str | Path, heads: str | Path) -> "LPIPS":
        """Load the VGG16 ``features.*`` and the heads ``lin{i}.model.1.weight`` (tensors only)."""
        model = cls()
        vgg = _load_tensors(backbone)
        features = {k[len("features."):]: v for k, v in vgg.items() if k.startswith("features.")}
        wanted = model.features.state_dict()
        missing = sorted(set(wanted) - set(features))
        if missing:
            raise WeightsError(f"{backbone} is not a torchvision VGG16 state dict (missing features.{missing[0]})")
        model.features.load_state_dict({k: features[k] for k in wanted})
        lin = _load_tensors(heads)
        for i, head in enumerate(model.heads):
            key = f"lin{i}.model.1.weight"
            if key not in lin or tuple(lin[key].shape) != tuple(head.weight.shape):
                raise WeightsError(f"{heads} is not an LPIPS VGG head file (no {key} of shape {list(head.weight.shape)})")
            head.weight.data.copy_(lin[key])
        return model

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = (a - self.shift) / self.scale
        b = (b - self.shift) / self.scale
        distance = torch.zeros(a.shape[0], device=a.device)
        tap = 0
        for index, layer in enumerate(self.features):
            a, b = layer(a), layer(b)
            if index == VGG_TAPS[tap]:
                na = a / (a.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
                nb = b / (b.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
                distance = distance + self.heads[tap]((na - nb).square()).mean(dim=(1, 2, 3))
                tap += 1
        return distance


def _load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"cannot read {path} as a tensor state dict: {error}") from error
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return state


def load_inception(path: str | Path) -> torch.jit.ScriptModule:
    """The TorchScript feature extractor at ``path`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Inception file {path} does not exist")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:
        raise WeightsError(f"{path} is not a TorchScript model: {error}") from error


def to_inception_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> 0..255 floats, rounded like saved 8-bit images."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round()


@HOOKS.register_module()
class MetricsHook(Hook):
    """FID / LPIPS of the EMA generator every ``interval`` iterations and after training.

    Args:
        interval: iterations between evaluations.
        num_images: crops to evaluate (the first ones of the training dataset).
        batch_size: crops per forward pass.
        inception: path of the TorchScript Inception (FID), or ``None``.
        lpips_backbone: path of torchvision's VGG16 state dict (LPIPS), or ``None``.
        lpips_heads: path of LPIPS' VGG linear heads, or ``None``.
        seed: seed of the latents (fixed, so evaluations are comparable).
    """

    priority = "LOW"

    def __init__(self, interval: int = 6250, num_images: int = 10_000, batch_size: int = 16,
                 inception: str | None = None, lpips_backbone: str | None = None, lpips_heads: str | None = None,
                 seed: int = 0) -> None:
        self.interval = interval
        self.num_images = num_images
        self.batch_size = batch_size
        self.inception_path = inception
        self.lpips_paths = (lpips_backbone, lpips_heads)
        self.seed = seed
        self._inception: torch.jit.ScriptModule | None = None
        self._lpips: LPIPS | None = None

    @property
    def enabled(self) -> bool:
        return self.inception_path is not None or all(self.lpips_paths)

    def before_train(self, runner) -> None:
        if not self.enabled:
            runner.logger.info(
                "metrics skipped: no weights given (--cfg-options metrics.inception=FILE for FID, "
                "metrics.lpips_backbone=FILE metrics.lpips_heads=FILE for LPIPS; see docs/training.md)"
            )
            return
        if self.inception_path is not None:
            self._inception = load_inception(self.inception_path)
        if all(self.lpips_paths):
            self._lpips = LPIPS.from_files(*self.lpips_paths)
        elif any(self.lpips_paths):
            runner.logger.warning("LPIPS needs both lpips_backbone and lpips_heads; LPIPS is skipped")

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.enabled and self.every_n_train_iters(runner, self.interval) and not self.is_last_train_iter(runner):
            self.evaluate(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        if self.enabled:
            self.evaluate(runner, runner.iter)

    @torch.no_grad()
    def evaluate(self, runner, iteration: int) -> dict[str, float]:
        """Compute the metrics on rank 0 after ``iteration`` iterations, log them and return them."""
        if not is_main_process():
            return {}
        from .hooks import unwrap

        model = unwrap(runner.model)
        dataset = runner.train_dataloader.dataset
        device = model.d_steps.device
        rng = torch.Generator().manual_seed(self.seed)
        count = min(self.num_images, len(dataset))
        real_features, fake_features, distances, diversities = [], [], [], []
        for start in range(0, count, self.batch_size):
            items = [dataset[i] for i in range(start, min(start + self.batch_size, count))]
            data = {key: torch.stack([item[key] for item in items]).to(device) for key in items[0]}
            rows = model.sample_rows(data, 2, rng)  # real, condition, two samples
            real, fakes = rows[0], rows[2:]
            if self._inception is not None:
                real_features.append(self._features(real))
                fake_features.append(self._features(fakes[0]))
            if self._lpips is not None:
                lpips = self._lpips.to(device)
                distances.append(lpips(fakes[0].float(), real.float()).cpu())
                diversities.append(lpips(fakes[0].float(), fakes[1].float()).cpu())
        results: dict[str, float] = {}
        if real_features:
            real_stats = feature_statistics(np.concatenate(real_features))
            fake_stats = feature_statistics(np.concatenate(fake_features))
            results["fid"] = frechet_distance(*real_stats, *fake_stats)
        if distances:
            results["lpips"] = float(torch.cat(distances).mean())
            results["lpips_diversity"] = float(torch.cat(diversities).mean())
        for name, value in results.items():
            runner.message_hub.update_scalar(f"train/{name}", value)
        runner.visualizer.add_scalars(results, step=iteration)  # into vis_data/scalars.json
        runner.logger.info(
            f"metrics after {iteration} iterations on {count} crops: "
            + ", ".join(f"{name} {value:.4f}" for name, value in results.items())
        )
        return results

    def _features(self, images: torch.Tensor) -> np.ndarray:
        inception = self._inception.to(images.device)
        features = inception(to_inception_range(images), return_features=True)
        return features.float().cpu().numpy()
