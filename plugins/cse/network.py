"""The layers of DensePose-CSE (detectron2's GeneralizedRCNN + DensePose ROI branch).

Every module is named as in detectron2, so the model's ``state_dict()`` keys are the
model-zoo checkpoint keys (``backbone.bottom_up.res2.0.conv1.norm.running_var``, ...)
and a checkpoint loads without renaming. Facts: ../shared/reference/cse/INFERENCE.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from .config import CSEConfig

#: FPN levels the backbone returns, with their strides.
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
#: Anchor size (pixels, square-equivalent) per RPN level; aspect ratios h/w.
ANCHOR_SIZES = {"p2": 32, "p3": 64, "p4": 128, "p5": 256, "p6": 512}
ANCHOR_ASPECT_RATIOS = (0.5, 1.0, 2.0)
#: Blocks per ResNet stage res2..res5.
RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
#: The DensePose decoder merges these levels into one stride-4 map.
DECODER_LEVELS = ("p2", "p3", "p4", "p5")
DENSEPOSE_POOLER_SIZE = 28
BOX_POOLER_SIZE = 7


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics: ``y = x * scale + shift`` (eps 1e-5).

    Args:
        channels: Number of channels C of the ``[N, C, H, W]`` input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels) - self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class NormConv2d(nn.Conv2d):
    """A conv followed by its ``norm`` child (detectron2's layout: keys ``<conv>.weight``, ``<conv>.norm.*``).

    Args:
        *args: ``nn.Conv2d`` arguments.
        norm: The normalization applied to the conv output.
        **kwargs: ``nn.Conv2d`` keyword arguments.
    """

    def __init__(self, *args, norm: nn.Module, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class ReLUConv2d(nn.Conv2d):
    """A conv followed by ReLU, as one module (the decoder's convs carry their activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


def frozen_bn_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> NormConv2d:
    """A bias-free conv + FrozenBN of the MSRA ResNet ("same" padding)."""
    return NormConv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=False,
        norm=FrozenBatchNorm2d(out_channels),
    )


class Stem(nn.Module):
    """conv7x7/2 + FrozenBN + ReLU + max-pool 3x3/2: ``[N, 3, H, W]`` -> ``[N, C, H/4, W/4]``.

    Args:
        out_channels: Stem output channels C.
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv1 = frozen_bn_conv(3, out_channels, 7, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class Bottleneck(nn.Module):
    """MSRA bottleneck block: the stride sits on the first 1x1 conv (``STRIDE_IN_1X1``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels (a 1x1 conv + FrozenBN shortcut when they differ).
        bottleneck_channels: Width of the 1x1 -> 3x3 -> 1x1 branch.
        stride: Spatial stride of the block (1 or 2).
    """

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels != out_channels:
            self.shortcut = frozen_bn_conv(in_channels, out_channels, 1, stride=stride)
        else:
            self.shortcut = None
        self.conv1 = frozen_bn_conv(in_channels, bottleneck_channels, 1, stride=stride)
        self.conv2 = frozen_bn_conv(bottleneck_channels, bottleneck_channels, 3)
        self.conv3 = frozen_bn_conv(bottleneck_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(branch + shortcut)


class ResNet(nn.Module):
    """ResNet-50/101 body (FrozenBN), returning res2..res5 (strides 4, 8, 16, 32).

    Args:
        config: Depth and widths (``depth``, ``stem_channels``, ``res2_channels``,
            ``bottleneck_channels``).
    """

    def __init__(self, config: CSEConfig) -> None:
        super().__init__()
        self.stem = Stem(config.stem_channels)
        in_channels = config.stem_channels
        out_channels = config.res2_channels
        bottleneck = config.bottleneck_channels
        for index, blocks in enumerate(RESNET_BLOCKS[config.depth]):
            stage = []
            for block in range(blocks):
                stride = 2 if block == 0 and index > 0 else 1
                stage.append(Bottleneck(in_channels, out_channels, bottleneck, stride))
                in_channels = out_channels
            self.add_module(f"res{index + 2}", nn.Sequential(*stage))
            out_channels *= 2
            bottleneck *= 2
        self.out_channels = {f"res{i}": config.res2_channels * 2 ** (i - 2) for i in range(2, 6)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[N, 3, H, W]`` (H, W multiples of 32) -> ``{"res2": [N, C2, H/4, W/4], ..., "res5": ...}``."""
        outputs = {}
        x = self.stem(x)
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs


class FPNBackbone(nn.Module):
    """ResNet + FPN (sum fusion, no norm, no ReLU); p6 subsamples p5.

    Args:
        config: ResNet widths and ``fpn_channels``.
    """

    def __init__(self, config: CSEConfig) -> None:
        super().__init__()
        # registered before bottom_up, as in detectron2, so state_dict() keeps the checkpoint order
        for level in range(2, 6):
            in_channels = config.res2_channels * 2 ** (level - 2)
            self.add_module(f"fpn_lateral{level}", nn.Conv2d(in_channels, config.fpn_channels, 1))
            self.add_module(f"fpn_output{level}", nn.Conv2d(config.fpn_channels, config.fpn_channels, 3, padding=1))
        self.bottom_up = ResNet(config)

    def fpn(self, bottom_up: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """res2..res5 -> ``{"p2": [N, C, H/4, W/4], ..., "p6": [N, C, H/64, W/64]}``."""
        outputs = {}
        merged = getattr(self, "fpn_lateral5")(bottom_up["res5"])
        outputs["p5"] = getattr(self, "fpn_output5")(merged)
        for level in (4, 3, 2):
            top_down = F.interpolate(merged, scale_factor=2.0, mode="nearest")
            merged = getattr(self, f"fpn_lateral{level}")(bottom_up[f"res{level}"]) + top_down
            outputs[f"p{level}"] = getattr(self, f"fpn_output{level}")(merged)
        outputs["p6"] = F.max_pool2d(outputs["p5"], kernel_size=1, stride=2, padding=0)
        return {name: outputs[name] for name in FPN_STRIDES}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.bottom_up(x))


class RPNHead(nn.Module):
    """Shared conv3x3 + ReLU, then per-anchor objectness and box deltas, on every FPN level.

    Args:
        channels: FPN channels C.
        anchors_per_location: A (3 aspect ratios).
    """

    def __init__(self, channels: int, anchors_per_location: int = len(ANCHOR_ASPECT_RATIOS)) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness_logits = nn.Conv2d(channels, anchors_per_location, 1)
        self.anchor_deltas = nn.Conv2d(channels, anchors_per_location * 4, 1)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, C, h, w]`` -> objectness ``[N, A, h, w]`` and deltas ``[N, 4A, h, w]``."""
        hidden = F.relu(self.conv(feature))
        return self.objectness_logits(hidden), self.anchor_deltas(hidden)


class ProposalGenerator(nn.Module):
    """Holds the RPN head (module name as in detectron2); proposal selection is in ``detection``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rpn_head = RPNHead(channels)


class BoxHead(nn.Module):
    """FastRCNNConvFCHead: flatten ``[R, C, 7, 7]`` -> fc1 -> ReLU -> fc2 -> ReLU -> ``[R, FC]``.

    Args:
        in_channels: FPN channels C.
        fc_dim: Width FC of both layers.
    """

    def __init__(self, in_channels: int, fc_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * BOX_POOLER_SIZE**2, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))))


class BoxPredictor(nn.Module):
    """Class logits ``[R, 2]`` (person, background) and class-specific deltas ``[R, 4]``.

    Args:
        fc_dim: Input width.
    """

    def __init__(self, fc_dim: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(fc_dim, 2)
        self.bbox_pred = nn.Linear(fc_dim, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class DensePoseDecoder(nn.Module):
    """Semantic-FPN merge of p2..p5 into one stride-4 map ``[N, out, H/4, W/4]``.

    Level p_k gets max(1, k - 2) conv3x3 + ReLU, each but p2's followed by bilinear x2;
    the four maps are summed and a 1x1 conv (no activation) is applied.

    Args:
        in_channels: FPN channels.
        conv_channels: Channels of the 3x3 convs.
        out_channels: Channels of the final 1x1 conv.
    """

    def __init__(self, in_channels: int, conv_channels: int, out_channels: int) -> None:
        super().__init__()
        for level in DECODER_LEVELS:
            stride = FPN_STRIDES[level]
            layers: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride)) - 2)):
                layers.append(ReLUConv2d(in_channels if k == 0 else conv_channels, conv_channels, 3, padding=1))
                if stride != FPN_STRIDES["p2"]:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(level, nn.Sequential(*layers))
        self.predictor = nn.Conv2d(conv_channels, out_channels, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        merged = None
        for level in DECODER_LEVELS:
            scaled = getattr(self, level)(features[level])
            merged = scaled if merged is None else merged + scaled
        return self.predictor(merged)


def gn_relu_conv(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    """conv (no bias, "same" padding) -> GroupNorm(32) -> ReLU (one ASPP branch)."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.GroupNorm(32, out_channels),
        nn.ReLU(),
    )


class ASPPPooling(nn.Sequential):
    """Image-pooling ASPP branch: global average -> conv1x1 -> GN -> ReLU -> broadcast back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.GroupNorm(32, out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """DeepLab-v3 ASPP: 1x1, three dilated 3x3 (6/12/56) and image pooling, concatenated, projected.

    Args:
        in_channels: Input channels.
        out_channels: Channels of every branch and of the projection.
        rates: Dilations of the 3x3 branches.
    """

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...] = (6, 12, 56)) -> None:
        super().__init__()
        branches = [gn_relu_conv(in_channels, out_channels, 1)]
        branches += [gn_relu_conv(in_channels, out_channels, 3, dilation=rate) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(out_channels * len(branches), out_channels, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Module):
    """DensePoseDeepLabHead: ASPP, then N x [conv3x3 (no bias) -> GroupNorm(32) -> ReLU].

    Args:
        in_channels: ROI feature channels (also the ASPP width).
        channels: Width of the stacked convs.
        num_convs: Number of stacked convs.
    """

    def __init__(self, in_channels: int, channels: int, num_convs: int) -> None:
        super().__init__()
        self.ASPP = ASPP(in_channels, in_channels)
        self.num_convs = num_convs
        for i in range(1, num_convs + 1):
            conv = NormConv2d(
                in_channels if i == 1 else channels, channels, 3, padding=1, bias=False, norm=nn.GroupNorm(32, channels)
            )
            self.add_module(f"body_conv_fcn{i}", conv)

    def forward(self, x: torch.Tensor, aspp_out: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``[R, C, 28, 28]`` -> ``[R, channels, 28, 28]``; ``aspp_out`` receives the ASPP output."""
        x = self.ASPP(x)
        if aspp_out is not None:
            aspp_out.append(x)
        for i in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"body_conv_fcn{i}")(x))
        return x


class ConvXHead(nn.Module):
    """DensePoseV1ConvXHead: N x [conv3x3 (bias) -> ReLU].

    Args:
        in_channels: ROI feature channels.
        channels: Width of the stacked convs.
        num_convs: Number of stacked convs.
    """

    def __init__(self, in_channels: int, channels: int, num_convs: int) -> None:
        super().__init__()
        self.num_convs = num_convs
        for i in range(1, num_convs + 1):
            self.add_module(f"body_conv_fcn{i}", nn.Conv2d(in_channels if i == 1 else channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, aspp_out: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``[R, C, 28, 28]`` -> ``[R, channels, 28, 28]`` (``aspp_out`` unused: no ASPP in this head)."""
        for i in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"body_conv_fcn{i}")(x))
        return x


class EmbeddingPredictor(nn.Module):
    """Deconv 4x4/2 to 56x56, then bilinear x2 to 112x112: raw embedding and coarse segmentation.

    Args:
        in_channels: Head output channels.
        embed_size: Embedding dimension E.
    """

    def __init__(self, in_channels: int, embed_size: int) -> None:
        super().__init__()
        self.coarse_segm_lowres = nn.ConvTranspose2d(in_channels, 2, 4, stride=2, padding=1)
        self.embed_lowres = nn.ConvTranspose2d(in_channels, embed_size, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[R, C, 28, 28]`` -> embedding ``[R, E, 112, 112]``, coarse_segm ``[R, 2, 112, 112]`` (+ lowres)."""
        embed_lowres = self.embed_lowres(x)
        coarse_segm_lowres = self.coarse_segm_lowres(x)
        return {
            "embed_lowres": embed_lowres,
            "coarse_segm_lowres": coarse_segm_lowres,
            "embedding": F.interpolate(embed_lowres, scale_factor=2, mode="bilinear", align_corners=False),
            "coarse_segm": F.interpolate(coarse_segm_lowres, scale_factor=2, mode="bilinear", align_corners=False),
        }


class VertexFeatureEmbedder(nn.Module):
    """Mesh vertex embeddings ``normalize_rows(features @ embeddings)``: ``[K, E]``, unit rows.

    Args:
        num_vertices: K.
        feature_dim: D of the fixed vertex basis ``features`` [K, D].
        embed_size: E of the learned projection ``embeddings`` [D, E].
    """

    def __init__(self, num_vertices: int, feature_dim: int, embed_size: int) -> None:
        super().__init__()
        # random until a checkpoint is loaded (its `features` are the fixed mesh basis)
        self.register_buffer("features", torch.randn(num_vertices, feature_dim))
        self.embeddings = nn.Parameter(torch.randn(feature_dim, embed_size) / math.sqrt(feature_dim))

    def forward(self) -> torch.Tensor:
        vertices = torch.mm(self.features, self.embeddings)
        return vertices / torch.linalg.vector_norm(vertices, dim=1, keepdim=True).clamp(min=1e-6)


class Embedders(nn.Module):
    """Container named as detectron2's (``embedder.embedder_smpl_27554``)."""

    def __init__(self, config: CSEConfig) -> None:
        super().__init__()
        self.embedder_smpl_27554 = VertexFeatureEmbedder(config.num_vertices, config.vertex_feature_dim, config.embed_size)


class ROIHeads(nn.Module):
    """DensePoseROIHeads: the box branch, the DensePose decoder/head/predictor and the embedder.

    Args:
        config: Widths of every part.
    """

    def __init__(self, config: CSEConfig) -> None:
        super().__init__()
        self.box_head = BoxHead(config.fpn_channels, config.box_fc_dim)
        self.box_predictor = BoxPredictor(config.box_fc_dim)
        self.decoder = DensePoseDecoder(config.fpn_channels, config.decoder_channels, config.decoder_out_channels)
        head_class = DeepLabHead if config.head == "deeplab" else ConvXHead
        self.densepose_head = head_class(config.fpn_channels, config.head_channels, config.head_convs)
        self.densepose_predictor = EmbeddingPredictor(config.head_channels, config.embed_size)
        self.embedder = Embedders(config)

    def pool_densepose(self, decoded: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """ROIAlign (legacy, ``aligned=False``) 28x28 on the stride-4 decoder map.

        Args:
            decoded: ``[N, C, H/4, W/4]`` decoder output.
            rois: ``[R, 5]`` float (batch index, x0, y0, x1, y1) in network-input pixels.
        Returns:
            ``[R, C, 28, 28]``.
        """
        from torchvision.ops import roi_align  # imported when used: torchvision is slow to import

        return roi_align(
            decoded, rois, (DENSEPOSE_POOLER_SIZE, DENSEPOSE_POOLER_SIZE),
            spatial_scale=1 / FPN_STRIDES["p2"], sampling_ratio=2, aligned=False,
        )

    def pool_boxes(self, features: dict[str, torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Multi-level ROIAlign 7x7 over p2..p5; level = floor(4 + log2(sqrt(area) / 224 + 1e-8)) in [2, 5].

        Args:
            features: FPN levels.
            rois: ``[R, 5]`` float (batch index, x0, y0, x1, y1) in network-input pixels.
        Returns:
            ``[R, C, 7, 7]``.
        """
        from torchvision.ops import roi_align

        boxes = rois[:, 1:]
        sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        levels = torch.floor(4 + torch.log2(sizes / 224 + 1e-8)).clamp(min=2, max=5).to(torch.int64)
        channels = features["p2"].shape[1]
        # In the features' dtype (bfloat16/float16 under autocast).
        pooled = features["p2"].new_zeros((rois.shape[0], channels, BOX_POOLER_SIZE, BOX_POOLER_SIZE))
        for level in range(2, 6):
            index = torch.nonzero(levels == level).squeeze(1)
            if index.numel():
                pooled[index] = roi_align(
                    features[f"p{level}"], rois[index], (BOX_POOLER_SIZE, BOX_POOLER_SIZE),
                    spatial_scale=1 / FPN_STRIDES[f"p{level}"], sampling_ratio=2, aligned=False,
                ).to(pooled.dtype)
        return pooled

    def densepose(self, features: dict[str, torch.Tensor], rois: torch.Tensor, trace: dict | None = None) -> dict[str, torch.Tensor]:
        """The DensePose branch for ``rois`` ``[R, 5]``: embedding ``[R, E, 112, 112]``, coarse_segm ``[R, 2, 112, 112]``.

        ``trace``, when given, receives the intermediate stages (decoder_out, roi_features, aspp_out, head_out).
        """
        decoded = self.decoder(features)
        pooled = self.pool_densepose(decoded, rois)
        aspp_out: list[torch.Tensor] = []
        head_out = self.densepose_head(pooled, aspp_out)
        # float32 outputs also under bf16/fp16 autocast: masks, resizing and vertex search follow
        outputs = {name: value.float() for name, value in self.densepose_predictor(head_out).items()}
        if trace is not None:
            trace.update(decoder_out=decoded, roi_features=pooled, head_out=head_out)
            if aspp_out:
                trace["aspp_out"] = aspp_out[0]
        return outputs
