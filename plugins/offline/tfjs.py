"""A small TensorFlow.js graph-model reader and a torch module that runs the graph it reads.

A TF.js graph model is a ``model.json`` (the TensorFlow ``GraphDef`` as JSON, plus a manifest of
the weights) and binary weight shards beside it. Only what the bundled NanoDet uses is
supported: float32 graphs whose weights may be stored as float16 or uint8 (the converter's
quantization), and the operators in :data:`SUPPORTED`. Tensors keep TensorFlow's layouts as
the graph states them (a graph converted from ONNX transposes between NCHW and NHWC itself);
only ``Conv2D`` and ``MaxPool`` (NHWC in TensorFlow) are run in torch's NCHW and turned back.
Nodes whose inputs are all constants (shape arithmetic) are evaluated once at load.
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sganon.core.errors import PluginError

from .tflite import resize_bilinear, same_padding

#: Operators this reader runs (TensorFlow names); ``SparseToDense`` only on constants.
SUPPORTED = frozenset(
    {
        "Add", "AddV2", "ConcatV2", "Const", "Conv2D", "Identity", "LeakyRelu", "MaxPool", "Pad", "PadV2",
        "Placeholder", "Reshape", "ResizeBilinear", "Sigmoid", "SparseToDense", "SplitV", "Transpose",
    }
)
#: TensorFlow dtype names of the weights manifest -> numpy.
DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
#: Storage dtypes of quantized weights.
QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


@dataclass
class Node:
    """One node of the graph: its ``op``, the values it reads (``"name"`` or ``"name:k"``
    for a node's k-th output) and its attributes (JSON, as stored)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]


@dataclass
class Graph:
    nodes: list[Node]  # in an order where every node comes after its inputs
    constants: dict[str, np.ndarray]  # the weights, by ``Const`` node name
    input: Node  # the Placeholder
    outputs: list[str]  # the signature's output values, in its order


def read_weights(manifest: list[dict[str, Any]], folder: Path) -> dict[str, np.ndarray]:
    """The weights of a manifest: its shards, concatenated, hold them one after another."""
    try:
        data = b"".join((folder / path).read_bytes() for group in manifest for path in group["paths"])
    except OSError as error:
        raise PluginError(f"TF.js weights missing beside the model: {error}") from error
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for spec in (spec for group in manifest for spec in group["weights"]):
        shape = tuple(int(size) for size in spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        quantization = spec.get("quantization")
        if quantization is not None and quantization.get("dtype") not in QUANTIZED:
            raise PluginError(f"TF.js weight {spec['name']}: quantization {quantization.get('dtype')} is not supported")
        stored = QUANTIZED[quantization["dtype"]] if quantization else DTYPES.get(spec["dtype"])
        if stored is None:
            raise PluginError(f"TF.js weight {spec['name']}: dtype {spec['dtype']} is not supported")
        size = count * np.dtype(stored).itemsize
        if offset + size > len(data):
            raise PluginError(
                f"TF.js weights are truncated: {spec['name']} needs bytes {offset}-{offset + size} of {len(data)}"
            )
        values = np.frombuffer(data, stored, count, offset).reshape(shape)
        offset += size
        if quantization and quantization["dtype"] != "float16":  # affine: value * scale + min
            values = values.astype(np.float32) * quantization["scale"] + quantization["min"]
        weights[spec["name"]] = values.astype(DTYPES.get(spec["dtype"], np.float32))
    return weights


def value_names(inputs: list[str]) -> list[str]:
    """A node's input values: ``"name:0"`` is ``"name"`` (a node's first output); ``"^name"``
    (a control edge, no value) is left out."""
    return [value.removesuffix(":0") for value in inputs if not value.startswith("^")]


def read_graph(path: Path) -> Graph:
    """The graph of a TF.js ``model.json`` (weights read from the shards beside it).

    Raises:
        PluginError: unreadable file, missing or truncated weights, unsupported operators.
    """
    try:
        model = json.loads(Path(path).read_text())
        manifest = model["weightsManifest"]
        nodes = [
            Node(raw["name"], raw["op"], value_names(raw.get("input", [])), raw.get("attr", {}))
            for raw in model["modelTopology"]["node"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PluginError(f"{path} is not a TF.js graph model: {error}") from error
    constants = read_weights(manifest, Path(path).parent)
    by_name = {}
    for node in nodes:
        if node.op not in SUPPORTED:
            raise PluginError(f"{path}: TF.js operator {node.op} (node {node.name}) is not supported")
        if node.op == "Const" and node.name not in constants:
            raise PluginError(f"{path}: constant {node.name} has no weights")
        by_name[node.name] = node
    ordered: list[Node] = []
    state: dict[str, bool] = {}  # False: being visited, True: placed

    def place(name: str) -> None:  # depth-first, without recursion (graphs can be deep)
        stack = [(name, False)]
        while stack:
            current, expanded = stack.pop()
            if state.get(current) is True:
                continue
            if expanded:
                state[current] = True
                ordered.append(by_name[current])
                continue
            if current not in by_name:
                raise PluginError(f"{path}: node {current} is referenced but not defined")
            if state.get(current) is False:
                raise PluginError(f"{path}: the graph has a cycle through {current}")
            state[current] = False
            stack.append((current, True))
            stack.extend((value.split(":")[0], False) for value in by_name[current].inputs)

    for name in by_name:
        place(name)
    signature = model.get("signature", {})
    inputs = [node for node in ordered if node.op == "Placeholder"]
    outputs = [spec["name"].removesuffix(":0") for spec in signature.get("outputs", {}).values()]
    if len(inputs) != 1 or not outputs:
        raise PluginError(f"{path}: expected one input and named outputs, got {[n.name for n in inputs]} and {outputs}")
    return Graph(ordered, constants, inputs[0], outputs)


def _ints(attrs: dict[str, Any], key: str) -> list[int]:
    return [int(v) for v in attrs[key]["list"]["i"]]


def _text(attrs: dict[str, Any], key: str, default: str = "") -> str:
    return base64.b64decode(attrs[key]["s"]).decode() if key in attrs else default


def _nhwc_window(attrs: dict[str, Any], node: Node) -> tuple[tuple[int, int], tuple[int, int]]:
    """Strides (and the dilations of a convolution) of an NHWC node, checked."""
    if _text(attrs, "data_format", "NHWC") != "NHWC" or _text(attrs, "padding") not in ("VALID", "SAME"):
        raise PluginError(f"TF.js node {node.name}: only NHWC with VALID or SAME padding is supported")
    strides = _ints(attrs, "strides")
    dilations = _ints(attrs, "dilations") if "dilations" in attrs else [1, 1, 1, 1]
    return (strides[1], strides[2]), (dilations[1], dilations[2])


def run_node(node: Node, args: list[torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of one node on its input values (TensorFlow semantics and layouts)."""
    op, attrs = node.op, node.attrs
    if op == "Identity":
        return [args[0]]
    if op in ("Add", "AddV2"):
        return [args[0] + args[1]]
    if op == "Sigmoid":
        return [torch.sigmoid(args[0])]
    if op == "LeakyRelu":
        return [F.leaky_relu(args[0], float(attrs.get("alpha", {}).get("f", 0.2)))]
    if op == "Transpose":
        return [args[0].permute(*args[1].tolist())]
    if op == "ConcatV2":
        return [torch.cat(args[:-1], int(args[-1]))]
    if op == "Reshape":
        shape = args[1].tolist()
        if shape and shape[0] == 1 and args[0].dim() and args[0].shape[0] != 1:
            shape[0] = args[0].shape[0]  # the batch follows the input (graphs state batch 1)
        return [args[0].reshape(shape)]
    if op == "SplitV":
        sizes = args[1].tolist()
        if -1 in sizes:
            sizes[sizes.index(-1)] = args[0].shape[int(args[2])] - (sum(sizes) + 1)
        return list(torch.split(args[0], sizes, int(args[2])))
    if op in ("Pad", "PadV2"):
        value = float(args[2]) if op == "PadV2" else 0.0
        flat = [int(amount) for pair in reversed(args[1].tolist()) for amount in pair]
        return [F.pad(args[0], flat, value=value)]
    if op == "Conv2D":
        (sh, sw), (dh, dw) = _nhwc_window(attrs, node)
        source = args[0].permute(0, 3, 1, 2)
        weight = args[1].permute(3, 2, 0, 1)  # [KH, KW, I/groups, O] -> [O, I/groups, KH, KW]
        if _text(attrs, "padding") == "SAME":
            top, bottom = same_padding(source.shape[2], weight.shape[2], sh, dh)
            left, right = same_padding(source.shape[3], weight.shape[3], sw, dw)
            source = F.pad(source, (left, right, top, bottom))
        groups = source.shape[1] // weight.shape[1]
        return [F.conv2d(source, weight, None, (sh, sw), 0, (dh, dw), groups).permute(0, 2, 3, 1)]
    if op == "MaxPool":
        (sh, sw), _ = _nhwc_window(attrs, node)
        kernel = _ints(attrs, "ksize")[1:3]
        source = args[0].permute(0, 3, 1, 2)
        if _text(attrs, "padding") == "SAME":
            top, bottom = same_padding(source.shape[2], kernel[0], sh, 1)
            left, right = same_padding(source.shape[3], kernel[1], sw, 1)
            source = F.pad(source, (left, right, top, bottom), value=float("-inf"))
        return [F.max_pool2d(source, kernel, (sh, sw)).permute(0, 2, 3, 1)]
    if op == "ResizeBilinear":
        half_pixel = attrs.get("half_pixel_centers", {}).get("b", False)
        align = attrs.get("align_corners", {}).get("b", False)
        height, width = (int(v) for v in args[1].tolist())
        out = resize_bilinear(args[0].permute(0, 3, 1, 2), height, width, align, half_pixel)
        return [out.permute(0, 2, 3, 1)]
    if op == "SparseToDense":  # constants only (shape arithmetic of converted graphs)
        indices, shape, values, default = (a.numpy() for a in args)
        dense = np.full(shape.astype(np.int64), default, dtype=values.dtype)
        dense[tuple(np.reshape(indices, (-1, dense.ndim)).T)] = values
        return [torch.from_numpy(dense)]
    raise PluginError(f"TF.js operator {op} cannot run")  # read_graph rejects others


class TfjsModule(torch.nn.Module):
    """The graph of a TF.js ``model.json`` as a torch module.

    Args:
        path: The ``model.json`` (weight shards beside it).

    ``forward(x)`` takes the graph's single input in the layout the graph declares (any batch
    size) and returns the signature's outputs in the signature's order. ``input_shape`` is the
    input's declared shape (``-1`` where the graph leaves a size open).
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        graph = read_graph(path)
        self.input = graph.input.name
        dims = graph.input.attrs.get("shape", {}).get("shape", {}).get("dim", [])
        self.input_shape = tuple(int(dim.get("size", -1)) for dim in dims)
        self.outputs = graph.outputs
        known: dict[str, torch.Tensor] = {}
        for name, value in graph.constants.items():
            known[name] = torch.from_numpy(np.ascontiguousarray(value))
        self.nodes: list[Node] = []
        for node in graph.nodes:
            if node.op in ("Const", "Placeholder"):
                continue
            values = [known.get(value) for value in node.inputs]
            if all(v is not None for v in values):  # constant: evaluate once
                for k, out in enumerate(run_node(node, values)):  # type: ignore[arg-type]
                    known[f"{node.name}:{k}" if k else node.name] = out
            else:
                self.nodes.append(node)
        # Keep (as buffers, so .to() moves them) only the constants the running nodes read
        # and the outputs that are constants.
        self.constants: dict[str, str] = {}
        for value in [v for node in self.nodes for v in node.inputs] + self.outputs:
            if value in known and value not in self.constants:
                buffer = f"c{len(self.constants)}"
                tensor = known[value]
                self.register_buffer(buffer, tensor.float() if tensor.is_floating_point() else tensor, persistent=False)
                self.constants[value] = buffer

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[str, torch.Tensor] = {self.input: x}

        def get(name: str) -> torch.Tensor:
            return values[name] if name in values else getattr(self, self.constants[name])

        for node in self.nodes:
            for k, out in enumerate(run_node(node, [get(v) for v in node.inputs])):
                values[f"{node.name}:{k}" if k else node.name] = out
        return [get(name) for name in self.outputs]


def traced_onnx(module: TfjsModule) -> bytes:
    """``module`` as a serialized ONNX model (input ``x`` of the graph's declared shape, batch
    included), traced by torch's ONNX exporter: on one CPU core the graph runs about twice as
    fast in onnxruntime as in torch (``benchmarks/bench_detection_speed.py --backends``).

    Raises:
        PluginError: the graph leaves a size of its input open (tracing needs one shape).
    """
    if not module.input_shape or min(module.input_shape) < 1:
        raise PluginError(f"tracing needs the input's whole shape, the graph declares {module.input_shape}")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Only the exporter's own notices are silenced (shapes traced as constants, which they
        # are here; the legacy exporter's deprecation), not other threads' warnings.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            module.cpu().eval(), (torch.zeros(module.input_shape),), buffer, input_names=["x"], opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()

