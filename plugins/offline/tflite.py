"""A small TensorFlow Lite reader and a torch module that runs the graph it reads.

Only what the bundled MediaPipe models use is supported: float32 graphs whose weights are
float16 (``DEQUANTIZE``), possibly stored sparse (``DENSIFY``), and the operators in
:data:`SUPPORTED` (with MediaPipe's custom ``Convolution2DTransposeBias`` of the selfie
segmentation model). Constant sub-graphs (densify, dequantize) are evaluated once at load, so
the module holds plain float32 weights and runs any batch size, on CPU or CUDA.

The file is a FlatBuffer (``tensorflow/lite/schema/schema.fbs``); it is read with the
low-level ``flatbuffers`` table API, field by field (``SLOT`` numbers below are the schema's
field order). Activations inside the module are ``[N, C, H, W]`` for rank-4 tensors (the
file's layout is ``[N, H, W, C]``); tensors of other ranks keep the file's layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import torch
import torch.nn.functional as F
from flatbuffers import number_types
from flatbuffers.table import Table
from sganon.core.errors import PluginError

# BuiltinOperator codes (schema.fbs) of the operators this reader runs.
OPERATORS = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    34: "PAD",
    54: "PRELU",
    117: "HARD_SWISH",
    124: "DENSIFY",
}
#: Custom operators (BuiltinOperator 32, named by ``custom_code``) -> the name used here.
CUSTOM_OPERATORS = {"Convolution2DTransposeBias": "TRANSPOSE_CONV_BIAS"}
CUSTOM = 32
SUPPORTED = frozenset(OPERATORS.values()) | frozenset(CUSTOM_OPERATORS.values())
# TensorType codes (schema.fbs) -> numpy dtypes.
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
# ActivationFunctionType codes (schema.fbs).
ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}


class _Reader:
    """Field access on FlatBuffer tables (``slot``: the field's position in the schema)."""

    @staticmethod
    def offset(table: Table, slot: int) -> int:
        return table.Offset(4 + 2 * slot)

    @classmethod
    def scalar(cls, table: Table, slot: int, flags: Any, default: Any) -> Any:
        at = cls.offset(table, slot)
        return table.Get(flags, table.Pos + at) if at else default

    @classmethod
    def string(cls, table: Table, slot: int) -> str:
        at = cls.offset(table, slot)
        return table.String(table.Pos + at).decode() if at else ""

    @classmethod
    def table(cls, table: Table, slot: int) -> Table | None:
        at = cls.offset(table, slot)
        return Table(table.Bytes, table.Indirect(table.Pos + at)) if at else None

    @classmethod
    def tables(cls, table: Table, slot: int) -> list[Table]:
        at = cls.offset(table, slot)
        if not at:
            return []
        start = table.Vector(at)
        return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(at))]

    @classmethod
    def array(cls, table: Table, slot: int, dtype: Any) -> np.ndarray:
        at = cls.offset(table, slot)
        if not at:
            return np.zeros(0, dtype)
        return np.frombuffer(table.Bytes, dtype=dtype, count=table.VectorLen(at), offset=table.Vector(at)).copy()


@dataclass
class Tensor:
    """A tensor of the file: ``shape`` in the file's layout; ``data`` for constants."""

    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None


@dataclass
class Operator:
    """One node: its operator name, tensor indices and builtin options (by field name)."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """The first subgraph of a ``.tflite`` file, with constant tensors decoded."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _options(kind: str, table: Table | None) -> dict[str, Any]:
    """The builtin options of ``kind`` that the runner reads (schema field order)."""
    r, i32, i8, boolean = _Reader, number_types.Int32Flags, number_types.Int8Flags, number_types.BoolFlags
    if table is None:
        return {}
    if kind == "CONV_2D":
        return {
            "padding": r.scalar(table, 0, i8, 0),
            "stride_w": r.scalar(table, 1, i32, 1),
            "stride_h": r.scalar(table, 2, i32, 1),
            "activation": ACTIVATIONS[r.scalar(table, 3, i8, 0)],
            "dilation_w": r.scalar(table, 4, i32, 1),
            "dilation_h": r.scalar(table, 5, i32, 1),
        }
    if kind == "DEPTHWISE_CONV_2D":
        return {
            "padding": r.scalar(table, 0, i8, 0),
            "stride_w": r.scalar(table, 1, i32, 1),
            "stride_h": r.scalar(table, 2, i32, 1),
            "depth_multiplier": r.scalar(table, 3, i32, 1),
            "activation": ACTIVATIONS[r.scalar(table, 4, i8, 0)],
            "dilation_w": r.scalar(table, 5, i32, 1),
            "dilation_h": r.scalar(table, 6, i32, 1),
        }
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return {
            "padding": r.scalar(table, 0, i8, 0),
            "stride_w": r.scalar(table, 1, i32, 1),
            "stride_h": r.scalar(table, 2, i32, 1),
            "filter_w": r.scalar(table, 3, i32, 1),
            "filter_h": r.scalar(table, 4, i32, 1),
            "activation": ACTIVATIONS[r.scalar(table, 5, i8, 0)],
        }
    if kind in ("ADD", "MUL"):
        return {"activation": ACTIVATIONS[r.scalar(table, 0, i8, 0)]}
    if kind == "CONCATENATION":
        return {"axis": r.scalar(table, 0, i32, 0), "activation": ACTIVATIONS[r.scalar(table, 1, i8, 0)]}
    if kind == "RESHAPE":
        return {"new_shape": r.array(table, 0, "<i4").tolist()}
    if kind == "RESIZE_BILINEAR":
        return {"align_corners": r.scalar(table, 2, boolean, False), "half_pixel_centers": r.scalar(table, 3, boolean, False)}
    if kind == "DEPTH_TO_SPACE":
        return {"block_size": r.scalar(table, 0, i32, 1)}
    return {}


def _custom_options(kind: str, data: np.ndarray) -> dict[str, Any]:
    """The options of a custom operator, from its ``custom_options`` bytes. MediaPipe's
    ``Convolution2DTransposeBias`` reads them as TFLite's ``TfLiteTransposeConvParams``: int32
    padding (1 SAME, 2 VALID), stride_width, stride_height."""
    padding, stride_w, stride_h = (int(v) for v in np.frombuffer(data.tobytes()[:12], "<i4"))
    if padding not in (1, 2):
        raise PluginError(f"TFLite {kind}: unknown padding {padding}")
    # As the builtin operators' Padding enum: 0 SAME, 1 VALID.
    return {"padding": 0 if padding == 1 else 1, "stride_w": stride_w, "stride_h": stride_h}


def _sparse_index_vector(table: Table, type_slot: int, value_slot: int) -> np.ndarray:
    """A ``SparseIndexVector`` union (Int32Vector, Uint16Vector or Uint8Vector) as int64."""
    kind = _Reader.scalar(table, type_slot, number_types.Uint8Flags, 0)
    values = _Reader.table(table, value_slot)
    dtypes = {1: "<i4", 2: "<u2", 3: "u1"}
    if kind not in dtypes or values is None:
        raise PluginError(f"unsupported sparse index vector type {kind} in a TFLite model")
    return _Reader.array(values, 0, dtypes[kind]).astype(np.int64)


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Table) -> np.ndarray:
    """The dense array of a sparse tensor (TFLite ``SparsityParameters``: a traversal order
    over the dimensions plus block dimensions, each level dense or CSR)."""
    order = _Reader.array(sparsity, 0, "<i4").tolist()
    block_map = _Reader.array(sparsity, 1, "<i4").tolist()
    levels = []
    for meta in _Reader.tables(sparsity, 2):
        if _Reader.scalar(meta, 0, number_types.Int8Flags, 0) == 0:  # DENSE
            levels.append(("dense", _Reader.scalar(meta, 1, number_types.Int32Flags, 0), None, None))
        else:  # SPARSE_CSR
            levels.append(("csr", 0, _sparse_index_vector(meta, 2, 3), _sparse_index_vector(meta, 4, 5)))
    rank = len(shape)
    block_sizes = {block_map[k]: levels[order.index(rank + k)][1] for k in range(len(block_map))}
    # Walk the levels breadth-first, keeping the entries in depth-first order: each entry of a
    # level expands into its children (a dense level: all ``size`` of them; a CSR level: the
    # index range its segment gives), and every entry remembers its position along each
    # (expanded) dimension met so far.
    parent = np.zeros(1, np.int64)
    position: dict[int, np.ndarray] = {}
    for level, (kind, size, segments, indices) in enumerate(levels):
        if kind == "dense":
            counts = np.full(len(parent), size, np.int64)
            child = np.tile(np.arange(size, dtype=np.int64), len(parent))
            parent = np.repeat(parent, size) * size + child
        else:
            starts = segments[parent]
            counts = segments[parent + 1] - starts
            parent = np.arange(counts.sum(), dtype=np.int64) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
            child = indices[parent]
        position = {dim: np.repeat(at, counts) for dim, at in position.items()}
        position[order[level]] = child
    if len(parent) != values.size:
        raise PluginError(f"sparse TFLite tensor: {values.size} values but {len(parent)} positions")
    coordinates = []
    for dim in range(rank):
        if dim in block_sizes:
            coordinates.append(position[dim] * block_sizes[dim] + position[rank + block_map.index(dim)])
        else:
            coordinates.append(position[dim])
    dense = np.zeros(shape, values.dtype)
    dense[tuple(coordinates)] = values
    return dense


def read_graph(path: Path) -> Graph:
    """Tensors and operators of the first subgraph of the ``.tflite`` file at ``path``;
    ``DENSIFY`` and ``DEQUANTIZE`` of constants are evaluated (their outputs become float32
    constants and the operators are dropped)."""
    buffer = bytearray(Path(path).read_bytes())
    model = Table(buffer, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buffer, 0))
    r = _Reader
    codes: list[int | str] = []
    for code in r.tables(model, 1):  # OperatorCode: deprecated_builtin_code (byte), custom_code, builtin_code (int)
        builtin = max(r.scalar(code, 0, number_types.Int8Flags, 0), r.scalar(code, 3, number_types.Int32Flags, 0))
        codes.append(r.string(code, 1) if builtin == CUSTOM else builtin)
    buffers = r.tables(model, 4)
    subgraph = r.tables(model, 2)[0]
    tensors = []
    sparse: dict[int, Table] = {}
    for i, entry in enumerate(r.tables(subgraph, 0)):
        shape = tuple(int(d) for d in r.array(entry, 0, "<i4"))
        kind = r.scalar(entry, 1, number_types.Int8Flags, 0)
        data = r.array(buffers[r.scalar(entry, 2, number_types.Uint32Flags, 0)], 0, "u1")
        tensor = Tensor(r.string(entry, 3), shape)
        if data.size:
            if kind not in TENSOR_TYPES:
                raise PluginError(f"TFLite tensor {tensor.name}: unsupported type {kind}")
            tensor.data = data.view(TENSOR_TYPES[kind])
            sparsity = r.table(entry, 6)
            if sparsity is not None:
                sparse[i] = sparsity
            else:
                tensor.data = tensor.data.reshape(shape)
        tensors.append(tensor)
    operators = []
    for entry in r.tables(subgraph, 3):
        code = codes[r.scalar(entry, 0, number_types.Uint32Flags, 0)]
        kind = CUSTOM_OPERATORS.get(code) if isinstance(code, str) else OPERATORS.get(code)
        if kind is None:
            what = f"custom operator {code!r}" if isinstance(code, str) else f"builtin operator {code}"
            raise PluginError(f"TFLite {what} is not supported by sganon's reader")
        inputs = r.array(entry, 1, "<i4").tolist()
        outputs = r.array(entry, 2, "<i4").tolist()
        if isinstance(code, str):  # custom_options: slot 5
            options = _custom_options(kind, r.array(entry, 5, "u1"))
        else:
            options = _options(kind, r.table(entry, 4))
        if kind == "AVERAGE_POOL_2D" and options.get("padding") == 0:
            # TFLite leaves SAME padding out of the mean; the bundled models pool VALID only.
            raise PluginError("TFLite AVERAGE_POOL_2D with SAME padding is not supported by sganon's reader")
        operator = Operator(kind, inputs, outputs, options)
        if kind == "DENSIFY":
            source = tensors[inputs[0]]
            tensors[outputs[0]].data = densify(source.data, tensors[outputs[0]].shape, sparse[inputs[0]])
        elif kind == "DEQUANTIZE" and tensors[inputs[0]].data is not None:
            tensors[outputs[0]].data = tensors[inputs[0]].data.astype(np.float32)
        else:
            operators.append(operator)
    return Graph(tensors, operators, r.array(subgraph, 1, "<i4").tolist(), r.array(subgraph, 2, "<i4").tolist())


def _activation(x: torch.Tensor, name: str | None) -> torch.Tensor:
    if name is None:
        return x
    if name == "RELU":
        return F.relu(x)
    if name == "RELU6":
        return x.clamp(0.0, 6.0)
    if name == "RELU_N1_TO_1":
        return x.clamp(-1.0, 1.0)
    return torch.tanh(x)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one spatial dimension."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _nhwc_axis(axis: int, rank: int) -> int:
    """The torch axis of a file axis of a rank-4 tensor (NHWC -> NCHW)."""
    return (0, 2, 3, 1)[axis % 4] if rank == 4 else axis


class TfliteModule(torch.nn.Module):
    """The graph of a ``.tflite`` file as a torch module.

    Args:
        path: The ``.tflite`` file (float32 graph; float16/sparse weights are decoded).

    ``forward(x)`` takes the graph's single input as ``[N, C, H, W]`` float32 (the file
    declares ``[1, H, W, C]``; any ``N``) and returns the graph's outputs in the file's order,
    rank-4 ones as ``[N, C, H, W]``, others in the file's layout with ``N`` leading.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        graph = read_graph(path)
        self.operators = graph.operators
        self.inputs = graph.inputs
        self.outputs = graph.outputs
        self.shapes = [t.shape for t in graph.tensors]
        self.constants: dict[int, str] = {}
        for operator in graph.operators:
            for index in operator.inputs:
                tensor = graph.tensors[index] if index >= 0 else None
                if tensor is None or tensor.data is None or index in self.constants:
                    continue
                name = f"t{index}"
                self.register_buffer(name, self._torch_constant(operator, index, tensor), persistent=False)
                self.constants[index] = name

    @staticmethod
    def _torch_constant(operator: Operator, index: int, tensor: Tensor) -> torch.Tensor:
        """A constant in the layout the torch op wants (weights) or as it is (shapes, sizes)."""
        data = np.asarray(tensor.data)
        if operator.kind == "CONV_2D" and index == operator.inputs[1]:  # [O, KH, KW, I] -> [O, I, KH, KW]
            data = data.transpose(0, 3, 1, 2)
        elif operator.kind == "DEPTHWISE_CONV_2D" and index == operator.inputs[1]:  # [1, KH, KW, C] -> [C, 1, KH, KW]
            data = data.transpose(3, 0, 1, 2)
        elif operator.kind == "TRANSPOSE_CONV_BIAS" and index == operator.inputs[1]:  # [O, KH, KW, I] -> [I, O, KH, KW]
            data = data.transpose(3, 0, 1, 2)
        elif data.ndim == 4:  # an NHWC constant operand -> NCHW
            data = data.transpose(0, 3, 1, 2)
        elif operator.kind == "PRELU" and data.ndim == 3:  # per-channel [1, 1, C] alpha
            data = data.reshape(1, -1, 1, 1)
        elif data.ndim == 1 and operator.kind in ("ADD", "MUL") and data.size > 1:  # per-channel bias-like operand
            data = data.reshape(1, -1, 1, 1)
        tensor_out = torch.from_numpy(np.ascontiguousarray(data))
        return tensor_out.float() if tensor_out.is_floating_point() else tensor_out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[int, torch.Tensor] = {self.inputs[0]: x}

        def get(index: int) -> torch.Tensor:
            return values[index] if index in values else getattr(self, self.constants[index])

        for op in self.operators:
            o = op.options
            if op.kind == "CONV_2D" or op.kind == "DEPTHWISE_CONV_2D":
                source, weight = get(op.inputs[0]), get(op.inputs[1])
                bias = get(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                kh, kw = weight.shape[2], weight.shape[3]
                if o["padding"] == 0:  # SAME
                    top, bottom = same_padding(source.shape[2], kh, o["stride_h"], o["dilation_h"])
                    left, right = same_padding(source.shape[3], kw, o["stride_w"], o["dilation_w"])
                    if top or bottom or left or right:
                        source = F.pad(source, (left, right, top, bottom))
                groups = source.shape[1] if op.kind == "DEPTHWISE_CONV_2D" else 1
                out = F.conv2d(
                    source, weight, bias, (o["stride_h"], o["stride_w"]), 0, (o["dilation_h"], o["dilation_w"]), groups
                )
                values[op.outputs[0]] = _activation(out, o["activation"])
            elif op.kind == "ADD":
                values[op.outputs[0]] = _activation(get(op.inputs[0]) + get(op.inputs[1]), o["activation"])
            elif op.kind == "PAD":
                source, pads = get(op.inputs[0]), get(op.inputs[1]).tolist()
                if source.dim() == 4:  # file pads are NHWC [[n0, n1], [h0, h1], [w0, w1], [c0, c1]]
                    pads = [pads[0], pads[3], pads[1], pads[2]]
                flat = [amount for pair in reversed(pads) for amount in pair]
                values[op.outputs[0]] = F.pad(source, flat)
            elif op.kind == "MAX_POOL_2D":
                source = get(op.inputs[0])
                if o["padding"] == 0:
                    top, bottom = same_padding(source.shape[2], o["filter_h"], o["stride_h"], 1)
                    left, right = same_padding(source.shape[3], o["filter_w"], o["stride_w"], 1)
                    if top or bottom or left or right:
                        source = F.pad(source, (left, right, top, bottom), value=float("-inf"))
                out = F.max_pool2d(source, (o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"]))
                values[op.outputs[0]] = _activation(out, o["activation"])
            elif op.kind == "AVERAGE_POOL_2D":
                out = F.avg_pool2d(get(op.inputs[0]), (o["filter_h"], o["filter_w"]), (o["stride_h"], o["stride_w"]))
                values[op.outputs[0]] = _activation(out, o["activation"])
            elif op.kind == "MUL":
                values[op.outputs[0]] = _activation(get(op.inputs[0]) * get(op.inputs[1]), o["activation"])
            elif op.kind == "RELU":
                values[op.outputs[0]] = F.relu(get(op.inputs[0]))
            elif op.kind == "HARD_SWISH":
                values[op.outputs[0]] = F.hardswish(get(op.inputs[0]))
            elif op.kind == "TRANSPOSE_CONV_BIAS":
                source, weight, bias = (get(i) for i in op.inputs)
                stride = (o["stride_h"], o["stride_w"])
                full = F.conv_transpose2d(source, weight, None, stride)
                (top, _), (left, _), height, width = _transpose_conv_cropping(source.shape[2:], weight.shape[2:], stride, o["padding"])
                out = full[:, :, top : top + height, left : left + width]
                values[op.outputs[0]] = out + bias.reshape(1, -1, 1, 1)
            elif op.kind == "CONCATENATION":
                parts = [get(i) for i in op.inputs]
                axis = _nhwc_axis(o["axis"], parts[0].dim())
                values[op.outputs[0]] = _activation(torch.cat(parts, axis), o["activation"])
            elif op.kind == "RESHAPE":
                source = get(op.inputs[0])
                if source.dim() == 4:
                    source = source.permute(0, 2, 3, 1)
                shape = list(self.shapes[op.outputs[0]])
                out = source.reshape([source.shape[0]] + shape[1:])
                values[op.outputs[0]] = out.permute(0, 3, 1, 2) if out.dim() == 4 else out
            elif op.kind == "RESIZE_BILINEAR":
                source = get(op.inputs[0])
                height, width = (int(v) for v in get(op.inputs[1]).tolist())
                values[op.outputs[0]] = resize_bilinear(source, height, width, o["align_corners"], o["half_pixel_centers"])
            elif op.kind == "DEPTH_TO_SPACE":
                source = get(op.inputs[0])
                block = o["block_size"]
                n, c, h, w = source.shape
                out = source.reshape(n, block, block, c // block**2, h, w).permute(0, 3, 4, 1, 5, 2)
                values[op.outputs[0]] = out.reshape(n, c // block**2, h * block, w * block)
            elif op.kind == "LOGISTIC":
                values[op.outputs[0]] = torch.sigmoid(get(op.inputs[0]))
            elif op.kind == "PRELU":
                source, alpha = get(op.inputs[0]), get(op.inputs[1])
                values[op.outputs[0]] = torch.where(source >= 0, source, source * alpha)
            elif op.kind == "DEQUANTIZE":
                values[op.outputs[0]] = get(op.inputs[0]).float()
            else:  # pragma: no cover - read_graph rejects other operators
                raise PluginError(f"TFLite operator {op.kind} cannot run")
        return [values[i] for i in self.outputs]


def _transpose_conv_cropping(
    size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: int
) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    """What TensorFlow keeps of a full transposed convolution (``(in - 1) * stride + kernel``
    per side): (top, bottom) and (left, right) cut off, then the output's height and width
    (``in * stride`` with SAME padding, the full size with VALID)."""
    cuts, out = [], []
    for length, k, s in zip(size, kernel, stride):
        full = (length - 1) * s + k
        kept = length * s if padding == 0 else full
        total = max(full - kept, 0)
        cuts.append((total // 2, total - total // 2))
        out.append(kept)
    return cuts[0], cuts[1], out[0], out[1]


def resize_bilinear(
    x: torch.Tensor, height: int, width: int, align_corners: bool, half_pixel_centers: bool
) -> torch.Tensor:
    """TensorFlow's RESIZE_BILINEAR of ``[N, C, H, W]``."""
    if align_corners or half_pixel_centers:
        return F.interpolate(x, (height, width), mode="bilinear", align_corners=align_corners)
    # Legacy TensorFlow: source = destination * (in / out), no half-pixel shift, clamped.
    def weights(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position = torch.arange(size_out, device=x.device, dtype=torch.float32) * (size_in / size_out)
        low = position.floor().clamp(max=size_in - 1).long()
        high = (low + 1).clamp(max=size_in - 1)
        return low, high, (position - low.float()).clamp(0, 1)

    y0, y1, fy = weights(x.shape[2], height)
    x0, x1, fx = weights(x.shape[3], width)
    rows = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def onnx_model(path: Path) -> bytes:
    """The graph of a ``.tflite`` file as a serialized ONNX model with the same contract as
    :class:`TfliteModule` (input ``x`` ``[N, C, H, W]``, any ``N``; rank-4 outputs ``[N, C, H, W]``),
    for onnxruntime on the CPU, where it runs these small networks about twice as fast as
    torch. Built node by node from the graph (no tracing), so it is quick to make at load."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = read_graph(path)
    nodes: list[Any] = []
    initializers: list[Any] = []
    names: dict[int, str] = {graph.inputs[0]: "x"}
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def constant(array: np.ndarray, prefix: str = "c") -> str:
        name = fresh(prefix)
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def value(index: int, op: Operator) -> str:
        if index in names:
            return names[index]
        tensor = graph.tensors[index]
        if tensor.data is None:
            raise PluginError(f"TFLite tensor {tensor.name} is used before it is computed")
        data = TfliteModule._torch_constant(op, index, tensor).numpy()
        names[index] = constant(data)
        return names[index]

    def activation(name: str | None, source: str) -> str:
        if name is None:
            return source
        out = fresh("act")
        if name == "RELU":
            nodes.append(helper.make_node("Relu", [source], [out]))
        elif name == "TANH":
            nodes.append(helper.make_node("Tanh", [source], [out]))
        else:
            low, high = (0.0, 6.0) if name == "RELU6" else (-1.0, 1.0)
            nodes.append(helper.make_node("Clip", [source, constant(np.float32(low)), constant(np.float32(high))], [out]))
        return out

    def nhwc_shape(index: int) -> tuple[int, ...]:
        return graph.tensors[index].shape

    for op in graph.operators:
        o = op.options
        out = fresh(op.kind.lower())
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, height, width, channels = nhwc_shape(op.inputs[0])
            weight = graph.tensors[op.inputs[1]].data
            kh, kw = weight.shape[1], weight.shape[2]
            pads = [0, 0, 0, 0]
            if o["padding"] == 0:
                top, bottom = same_padding(height, kh, o["stride_h"], o["dilation_h"])
                left, right = same_padding(width, kw, o["stride_w"], o["dilation_w"])
                pads = [top, left, bottom, right]
            inputs = [value(op.inputs[0], op), value(op.inputs[1], op)]
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                inputs.append(value(op.inputs[2], op))
            nodes.append(helper.make_node(
                "Conv", inputs, [out], strides=[o["stride_h"], o["stride_w"]], dilations=[o["dilation_h"], o["dilation_w"]],
                pads=pads, group=channels if op.kind == "DEPTHWISE_CONV_2D" else 1, kernel_shape=[kh, kw],
            ))
            out = activation(o["activation"], out)
        elif op.kind == "ADD":
            nodes.append(helper.make_node("Add", [value(op.inputs[0], op), value(op.inputs[1], op)], [out]))
            out = activation(o["activation"], out)
        elif op.kind == "PAD":
            amounts = graph.tensors[op.inputs[1]].data.astype(np.int64)
            if len(nhwc_shape(op.inputs[0])) == 4:
                amounts = amounts[[0, 3, 1, 2]]
            pads = np.concatenate([amounts[:, 0], amounts[:, 1]])
            nodes.append(helper.make_node("Pad", [value(op.inputs[0], op), constant(pads)], [out]))
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            _, height, width, _ = nhwc_shape(op.inputs[0])
            pads = [0, 0, 0, 0]
            if o["padding"] == 0:
                top, bottom = same_padding(height, o["filter_h"], o["stride_h"], 1)
                left, right = same_padding(width, o["filter_w"], o["stride_w"], 1)
                pads = [top, left, bottom, right]
            nodes.append(helper.make_node(
                "MaxPool" if op.kind == "MAX_POOL_2D" else "AveragePool", [value(op.inputs[0], op)], [out],
                kernel_shape=[o["filter_h"], o["filter_w"]], strides=[o["stride_h"], o["stride_w"]], pads=pads,
            ))
            out = activation(o["activation"], out)
        elif op.kind == "MUL":
            nodes.append(helper.make_node("Mul", [value(op.inputs[0], op), value(op.inputs[1], op)], [out]))
            out = activation(o["activation"], out)
        elif op.kind == "RELU":
            nodes.append(helper.make_node("Relu", [value(op.inputs[0], op)], [out]))
        elif op.kind == "HARD_SWISH":
            nodes.append(helper.make_node("HardSwish", [value(op.inputs[0], op)], [out]))
        elif op.kind == "TRANSPOSE_CONV_BIAS":
            _, height, width, _ = nhwc_shape(op.inputs[0])
            kernel = graph.tensors[op.inputs[1]].data.shape[1:3]
            stride = (o["stride_h"], o["stride_w"])
            (top, bottom), (left, right), _, _ = _transpose_conv_cropping((height, width), kernel, stride, o["padding"])
            nodes.append(helper.make_node(
                "ConvTranspose", [value(i, op) for i in op.inputs], [out], kernel_shape=list(kernel),
                strides=list(stride), pads=[top, left, bottom, right],
            ))
        elif op.kind == "CONCATENATION":
            rank = len(nhwc_shape(op.inputs[0]))
            nodes.append(helper.make_node("Concat", [value(i, op) for i in op.inputs], [out], axis=_nhwc_axis(o["axis"], rank)))
            out = activation(o["activation"], out)
        elif op.kind == "RESHAPE":
            source = value(op.inputs[0], op)
            if len(nhwc_shape(op.inputs[0])) == 4:
                transposed = fresh("nhwc")
                nodes.append(helper.make_node("Transpose", [source], [transposed], perm=[0, 2, 3, 1]))
                source = transposed
            shape = list(nhwc_shape(op.outputs[0]))
            reshaped = fresh("reshaped") if len(shape) == 4 else out
            nodes.append(helper.make_node("Reshape", [source, constant(np.array([-1] + shape[1:], np.int64))], [reshaped]))
            if len(shape) == 4:
                nodes.append(helper.make_node("Transpose", [reshaped], [out], perm=[0, 3, 1, 2]))
        elif op.kind == "RESIZE_BILINEAR":
            _, height, width, _ = nhwc_shape(op.inputs[0])
            _, new_height, new_width, _ = nhwc_shape(op.outputs[0])
            scales = np.array([1.0, 1.0, new_height / height, new_width / width], np.float32)
            mode = "align_corners" if o["align_corners"] else "half_pixel" if o["half_pixel_centers"] else "asymmetric"
            nodes.append(helper.make_node(
                "Resize", [value(op.inputs[0], op), "", constant(scales)], [out], mode="linear",
                coordinate_transformation_mode=mode,
            ))
        elif op.kind == "DEPTH_TO_SPACE":
            nodes.append(helper.make_node("DepthToSpace", [value(op.inputs[0], op)], [out], blocksize=o["block_size"], mode="DCR"))
        elif op.kind == "LOGISTIC":
            nodes.append(helper.make_node("Sigmoid", [value(op.inputs[0], op)], [out]))
        elif op.kind == "PRELU":
            nodes.append(helper.make_node("PRelu", [value(op.inputs[0], op), value(op.inputs[1], op)], [out]))
        elif op.kind == "DEQUANTIZE":
            nodes.append(helper.make_node("Cast", [value(op.inputs[0], op)], [out], to=TensorProto.FLOAT))
        else:  # pragma: no cover - read_graph rejects other operators
            raise PluginError(f"TFLite operator {op.kind} cannot be converted")
        names[op.outputs[0]] = out
    _, height, width, channels = nhwc_shape(graph.inputs[0])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, height, width])]
    outputs = []
    for k, index in enumerate(graph.outputs):
        name = f"y{k}"
        nodes.append(helper.make_node("Identity", [names[index]], [name]))
        shape = list(nhwc_shape(index))
        if len(shape) == 4:
            shape = [shape[0], shape[3], shape[1], shape[2]]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"] + shape[1:]))
    model = helper.make_model(
        helper.make_graph(nodes, Path(path).stem, inputs, outputs, initializers),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OnnxRunner:
    """:func:`onnx_model` of a ``.tflite`` file (or another ONNX model whose input is named
    ``x``) in an onnxruntime CPU session (one thread), called like :class:`TfliteModule`
    (torch tensors in and out).

    Args:
        source: The ``.tflite`` file, or a serialized ONNX model.
        max_batch: Largest batch run at once (see the class attribute).
    """

    def __init__(self, source: Path | bytes, max_batch: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No memory arena: it would keep the largest batch's buffers for the whole process.
        options.enable_cpu_mem_arena = False
        model = source if isinstance(source, bytes) else onnx_model(source)
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        if max_batch is not None:
            self.max_batch = max_batch

    #: Largest batch run at once: bounds the activations' memory (a batch of video frames has
    #: 30 views each); on the CPU, larger batches are not faster.
    max_batch = 16

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        pixels = x.detach().cpu().numpy().astype(np.float32, copy=False)
        parts = [
            self.session.run(None, {"x": pixels[start : start + self.max_batch]})
            for start in range(0, len(pixels), self.max_batch)
        ]
        return [torch.from_numpy(np.concatenate(outputs)) for outputs in zip(*parts)]
