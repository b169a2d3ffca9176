"""Arithmetic of the model forwards: ``PipelineOptions.precision`` / ``--precision``.

* ``fp32``: float32 everywhere; on CUDA TF32 is switched off for matmuls and cuDNN
  convolutions, so results stay equal to the reference vectors (PyTorch enables TF32 for
  cuDNN convolutions by default, which changes results in the 3rd-4th digit).
* ``tf32``: float32 tensors, TF32 tensor-core matmuls and convolutions on CUDA (no effect
  on CPUs).
* ``bf16`` / ``fp16``: ``torch.autocast`` around the model forwards (detector, embedder,
  generators); outputs are cast back to float32. The deviations this causes are measured
  in docs/anonymize.md ("Precision").

torch is imported only when a pipeline applies a precision, so the CLI can list the
choices without it.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

#: The precisions, in the order of ``--precision``'s help.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def apply_tf32(precision: str, device: Any) -> None:
    """On a CUDA device, switch TF32 on for ``"tf32"`` and off otherwise (a process-wide setting)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"


def model_autocast(precision: str, device: Any) -> ContextManager[Any]:
    """The autocast context of a model forward on ``device`` (a no-op for fp32 and tf32)."""
    import torch

    if precision not in ("bf16", "fp16"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def without_autocast(device: Any) -> ContextManager[Any]:
    """Autocast off on ``device`` inside (e.g. a nearest-vertex search, which must keep float32
    distances under a bf16/fp16 pipeline); a no-op on devices autocast does not know."""
    import torch

    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)
