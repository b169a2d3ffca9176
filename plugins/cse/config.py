"""Architecture and inference settings of a DensePose-CSE model, from detectron2-style keys.

A model is described by a named base (``"R101_FPN_DL"`` or ``"R50_FPN"``, the two
model-zoo configs ``densepose_rcnn_R_101_FPN_DL_soft_s1x`` and
``densepose_rcnn_R_50_FPN_soft_s1x``) plus an optional flat list of detectron2 config
overrides, exactly as ``cfg.merge_from_list`` takes them (the reference vectors store
theirs in ``config_overrides``)::

    >>> config = CSEConfig.resolve("R50_FPN", ["INPUT.MIN_SIZE_TEST", "640"])
    >>> config.depth, config.head, config.min_size, config.max_size
    (50, 'v1convx', 640, 1333)
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import Any

from sganon.core.errors import ConfigError

#: Names of the two model-zoo configurations this plugin builds.
BASE_CONFIGS = ("R101_FPN_DL", "R50_FPN")

#: detectron2 head class names -> our head names.
HEAD_NAMES = {"DensePoseDeepLabHead": "deeplab", "DensePoseV1ConvXHead": "v1convx"}

_EMBEDDER = "MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBEDDERS.smpl_27554."

#: detectron2 config key -> CSEConfig field (a value is converted to the field's type).
OVERRIDE_FIELDS = {
    "MODEL.RESNETS.DEPTH": "depth",
    "MODEL.RESNETS.STEM_OUT_CHANNELS": "stem_channels",
    "MODEL.RESNETS.RES2_OUT_CHANNELS": "res2_channels",
    "MODEL.RESNETS.WIDTH_PER_GROUP": "bottleneck_channels",
    "MODEL.FPN.OUT_CHANNELS": "fpn_channels",
    "MODEL.ROI_DENSEPOSE_HEAD.DECODER_CONV_DIMS": "decoder_channels",
    "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NUM_CLASSES": "decoder_out_channels",
    "MODEL.ROI_DENSEPOSE_HEAD.NAME": "head",
    "MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM": "head_channels",
    "MODEL.ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS": "head_convs",
    "MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBED_SIZE": "embed_size",
    _EMBEDDER + "FEATURE_DIM": "vertex_feature_dim",
    _EMBEDDER + "NUM_VERTICES": "num_vertices",
    "MODEL.ROI_BOX_HEAD.FC_DIM": "box_fc_dim",
    "INPUT.MIN_SIZE_TEST": "min_size",
    "INPUT.MAX_SIZE_TEST": "max_size",
    "MODEL.RPN.PRE_NMS_TOPK_TEST": "rpn_pre_nms_topk",
    "MODEL.RPN.POST_NMS_TOPK_TEST": "rpn_post_nms_topk",
    "MODEL.RPN.NMS_THRESH": "rpn_nms_threshold",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": "score_threshold",
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": "nms_threshold",
    "TEST.DETECTIONS_PER_IMAGE": "detections_per_image",
}

#: Keys that only matter to detectron2's runtime (device, where weights come from); accepted
#: and ignored, because the weights are given to the loader directly.
IGNORED_KEYS = ("MODEL.DEVICE", "MODEL.WEIGHTS", _EMBEDDER + "INIT_FILE")


@dataclass(frozen=True)
class CSEConfig:
    """Everything that shapes a DensePose-CSE network and its inference (full-size defaults).

    Args:
        depth: ResNet depth, 50 (3/4/6/3 blocks) or 101 (3/4/23/3).
        stem_channels: Output channels of the 7x7 stem conv.
        res2_channels: Block output channels of res2 (doubled per later stage).
        bottleneck_channels: Bottleneck width of res2 (doubled per later stage).
        fpn_channels: Channels of every FPN level p2..p6 (and the DensePose head input).
        decoder_channels: Channels of the DensePose decoder's 3x3 convs.
        decoder_out_channels: Channels of the decoder's final 1x1 conv (= fpn_channels).
        head: DensePose head, ``"deeplab"`` (ASPP + GN convs) or ``"v1convx"`` (plain convs).
        head_channels: Channels of the head's stacked 3x3 convs.
        head_convs: Number of stacked 3x3 convs in the head.
        embed_size: Dimension of the CSE embedding (pixel and vertex).
        vertex_feature_dim: Width of the vertex feature basis (``features`` [K, D]).
        num_vertices: Mesh vertices K of the ``smpl_27554`` embedder.
        box_fc_dim: Width of the box head's two fully connected layers.
        min_size: Shortest-edge target of the test-time resize.
        max_size: Cap on the longest edge of the test-time resize.
        rpn_pre_nms_topk: Proposals kept per FPN level before NMS.
        rpn_post_nms_topk: Proposals kept per image after NMS.
        rpn_nms_threshold: IoU threshold of the per-level proposal NMS.
        score_threshold: Person detections need a score strictly above this.
        nms_threshold: IoU threshold of the detection NMS.
        detections_per_image: Most detections kept per image.
    """

    depth: int = 101
    stem_channels: int = 64
    res2_channels: int = 256
    bottleneck_channels: int = 64
    fpn_channels: int = 256
    decoder_channels: int = 256
    decoder_out_channels: int = 256
    head: str = "deeplab"
    head_channels: int = 512
    head_convs: int = 8
    embed_size: int = 16
    vertex_feature_dim: int = 256
    num_vertices: int = 27554
    box_fc_dim: int = 1024
    min_size: int = 800
    max_size: int = 1333
    rpn_pre_nms_topk: int = 1000
    rpn_post_nms_topk: int = 1000
    rpn_nms_threshold: float = 0.7
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    detections_per_image: int = 100

    def __post_init__(self) -> None:
        if self.depth not in (50, 101):
            raise ConfigError(f"MODEL.RESNETS.DEPTH must be 50 or 101, got {self.depth}")
        if self.head not in HEAD_NAMES.values():
            raise ConfigError(f"unknown DensePose head {self.head!r}; known: {', '.join(HEAD_NAMES)}")
        if self.decoder_out_channels != self.fpn_channels:
            # detectron2 builds the head for FPN.OUT_CHANNELS inputs but feeds it the decoder output.
            raise ConfigError(
                "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NUM_CLASSES must equal MODEL.FPN.OUT_CHANNELS "
                f"({self.decoder_out_channels} != {self.fpn_channels})"
            )
        if self.head == "deeplab" and (self.fpn_channels % 32 or self.head_channels % 32):
            raise ConfigError(
                "the DeepLab head uses GroupNorm(32, C): MODEL.FPN.OUT_CHANNELS and CONV_HEAD_DIM must be "
                f"multiples of 32, got {self.fpn_channels} and {self.head_channels}"
            )
        for name in ("stem_channels", "res2_channels", "bottleneck_channels", "fpn_channels", "decoder_channels",
                     "head_channels", "head_convs", "embed_size", "vertex_feature_dim", "num_vertices", "box_fc_dim",
                     "min_size", "max_size", "rpn_pre_nms_topk", "rpn_post_nms_topk", "detections_per_image"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CSE config {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def base(cls, name: str) -> "CSEConfig":
        """One of the model-zoo configurations, ``"R101_FPN_DL"`` or ``"R50_FPN"``."""
        if name == "R101_FPN_DL":
            return cls()
        if name == "R50_FPN":
            return cls(depth=50, head="v1convx")
        raise ConfigError(f"unknown CSE config {name!r}; known: {', '.join(BASE_CONFIGS)}")

    @classmethod
    def resolve(cls, base: str = "R101_FPN_DL", overrides: list[str] | None = None) -> "CSEConfig":
        """A base configuration with detectron2-style ``[KEY, VALUE, KEY, VALUE, ...]`` overrides."""
        config = cls.base(base)
        overrides = list(overrides or [])
        if len(overrides) % 2:
            raise ConfigError(f"config overrides must be KEY VALUE pairs, got an odd-length list: {overrides}")
        changes: dict[str, Any] = {}
        for key, raw in zip(overrides[0::2], overrides[1::2]):
            key = str(key)
            if key in IGNORED_KEYS:
                continue
            if key not in OVERRIDE_FIELDS:
                raise ConfigError(
                    f"config key {key!r} is not supported by the CSE plugin; supported: "
                    f"{', '.join(sorted(OVERRIDE_FIELDS))} (ignored: {', '.join(IGNORED_KEYS)})"
                )
            name = OVERRIDE_FIELDS[key]
            value = _parse_value(raw)
            if name == "head":
                if value not in HEAD_NAMES:
                    raise ConfigError(f"{key} must be one of {', '.join(HEAD_NAMES)}, got {value!r}")
                value = HEAD_NAMES[value]
            else:
                kind = type(getattr(config, name))
                try:
                    if kind is int and (isinstance(value, bool) or float(value) != int(value)):
                        raise ValueError
                    value = kind(value)
                except (TypeError, ValueError) as error:
                    raise ConfigError(f"{key} must be {kind.__name__}, got {raw!r}") from error
            changes[name] = value
        return dataclasses.replace(config, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CSEConfig":
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown CSE config fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def _parse_value(raw: Any) -> Any:
    """A value as detectron2's ``merge_from_list`` reads it (a Python literal, else the string)."""
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
