"""SegNet with a VGG16-BN encoder, a lane/background head and a pixel-embedding head."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, NamedTuple

import torch
from torch import nn

# VGG16 convolution widths per stage; each stage ends in a 2x2 max-pool that keeps its indices.
VGG16_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Decoder widths per stage, deepest first (the seed's shared decoder: 12 conv-BN-ReLU layers, then the heads).
DECODER_STAGES: tuple[tuple[int, ...], ...] = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))
INPUT_MULTIPLE = 2 ** len(VGG16_STAGES)  # five poolings: H and W must be multiples of 32


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings; stored in every checkpoint."""

    in_channels: int = 3
    num_classes: int = 2
    embed_dim: int = 5
    width: float = 1.0

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.width <= 4.0:
            raise ValueError(f"ModelConfig.width must be in (0, 4], got {self.width}")

    def to_dict(self) -> dict:
        return asdict(self)


class SegNetOutput(NamedTuple):
    logits: torch.Tensor  # [B, num_classes, H, W]
    embedding: torch.Tensor  # [B, embed_dim, H, W]


class ConvBnRelu(nn.Sequential):
    """3x3 convolution, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _conv_stages(in_channels: int, plan: tuple[tuple[int, ...], ...], width: float) -> tuple[nn.ModuleList, int]:
    """Stages of conv-BN-ReLU blocks with the planned (width-scaled) output channels; also the last width."""
    stages, channels = [], in_channels
    for stage in plan:
        blocks = []
        for out in stage:
            blocks.append(ConvBnRelu(channels, _scaled(out, width)))
            channels = _scaled(out, width)
        stages.append(nn.Sequential(*blocks))
    return nn.ModuleList(stages), channels


class VGGEncoder(nn.Module):
    """The 13 VGG16-BN convolutions in five stages; returns features and pooling indices."""

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        self.stages, self.out_channels = _conv_stages(in_channels, VGG16_STAGES, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B,C,H,W] -> deepest features [B,C',H/32,W/32] and the pooling indices of each stage."""
        indices = []
        for stage in self.stages:
            x = stage(x)
            x, idx = nn.functional.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
            indices.append(idx)
        return x, indices


def _unpool2x(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Inverse of a 2x2/2 max pool: x [B,C,h,w] -> [B,C,2h,2w] with each value back at its argmax."""
    # The aten op directly: F.max_unpool2d's Python size checks cannot be traced (TorchScript export).
    return torch.ops.aten.max_unpool2d(x, indices, [x.shape[-2] * 2, x.shape[-1] * 2])


class SegNetDecoder(nn.Module):
    """Max-unpooling with the encoder's indices, each followed by conv-BN-ReLU layers."""

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        self.stages, self.out_channels = _conv_stages(in_channels, DECODER_STAGES, width)

    def forward(self, x: torch.Tensor, indices: list[torch.Tensor]) -> torch.Tensor:
        """Deepest features -> full-resolution features [B,C,H,W]."""
        for stage, idx in zip(self.stages, reversed(indices)):
            x = _unpool2x(x, idx)
            x = stage(x)
        return x


class SegNet(nn.Module):
    """SegNet (VGG16-BN encoder, shared decoder) with lane logits and a pixel embedding.

    With the defaults this is exactly the original's layout: 29,447,047 parameters.
    `width` scales every channel count for small CPU models.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, embed_dim: int = 5, width: float = 1.0) -> None:
        super().__init__()
        self.config = ModelConfig(in_channels, num_classes, embed_dim, width)
        self.encoder = VGGEncoder(in_channels, width)
        self.decoder = SegNetDecoder(self.encoder.out_channels, width)
        self.lane_head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=3, padding=1)
        self.embedding_head = nn.Conv2d(self.decoder.out_channels, embed_dim, kernel_size=3, padding=1)

    @classmethod
    def from_config(cls, config: ModelConfig | Mapping) -> "SegNet":
        """Build from a ModelConfig or its dict form (as stored in checkpoints)."""
        if not isinstance(config, ModelConfig):
            config = ModelConfig(**config)
        return cls(config.in_channels, config.num_classes, config.embed_dim, config.width)

    def forward(self, x: torch.Tensor) -> SegNetOutput:
        """x [B,in_channels,H,W] (H, W multiples of 32) -> logits [B,2,H,W], embedding [B,5,H,W]."""
        if not torch.jit.is_tracing():  # traced shapes are tensors; the exporter checks the size instead
            check_input_size(x.shape[-2], x.shape[-1])
        features, indices = self.encoder(x)
        features = self.decoder(features, indices)
        return SegNetOutput(self.lane_head(features), self.embedding_head(features))


def check_input_size(height: int, width: int) -> None:
    """Raise a ValueError unless both sides are positive multiples of 32."""
    if height <= 0 or width <= 0 or height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError(
            f"SegNet input height and width must be positive multiples of {INPUT_MULTIPLE}, "
            f"got {height}x{width} (HxW); e.g. {_round_up(height)}x{_round_up(width)}"
        )


def fast_memory_format(device: torch.device) -> torch.memory_format:
    """The tensor layout SegNet runs fastest in on this device: channels-last on the CPU, NCHW elsewhere."""
    # On 2 CPU cores oneDNN's channels-last convolutions run the width-0.125 model at 256x128 about twice as fast
    # (benchmarks/pipeline.py). CUDA keeps NCHW: it has not been measured there.
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def _round_up(n: int) -> int:
    return max(INPUT_MULTIPLE, -(-n // INPUT_MULTIPLE) * INPUT_MULTIPLE)


def encoder_convolutions(model: SegNet) -> list[ConvBnRelu]:
    """The 13 encoder conv-BN-ReLU blocks, in VGG16 order."""
    return [block for stage in model.encoder.stages for block in stage]


def load_vgg16_bn_encoder(model: SegNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy torchvision `vgg16_bn` `features` (conv and BN, running stats included) into the encoder, in order."""
    if model.config.width != 1.0:
        raise ValueError(f"VGG16-BN weights fit only a width=1.0 SegNet, this one has width={model.config.width}")
    if model.config.in_channels != 3:
        raise ValueError(f"VGG16-BN weights expect 3 input channels, this SegNet has {model.config.in_channels}")
    conv_ids = sorted(
        int(key.split(".")[1]) for key, value in state_dict.items()
        if key.startswith("features.") and key.endswith(".weight") and getattr(value, "ndim", 0) == 4
    )
    blocks = encoder_convolutions(model)
    if len(conv_ids) != len(blocks):
        raise ValueError(
            f"not a torchvision vgg16_bn state dict: expected {len(blocks)} convolutions under 'features.', "
            f"found {len(conv_ids)}"
        )
    with torch.no_grad():
        for block, conv_id in zip(blocks, conv_ids):
            bn_id = conv_id + 1  # vgg16_bn: Conv2d, BatchNorm2d, ReLU
            _copy(block.conv.weight, state_dict, f"features.{conv_id}.weight")
            _copy(block.conv.bias, state_dict, f"features.{conv_id}.bias")
            _copy(block.bn.weight, state_dict, f"features.{bn_id}.weight")
            _copy(block.bn.bias, state_dict, f"features.{bn_id}.bias")
            _copy(block.bn.running_mean, state_dict, f"features.{bn_id}.running_mean")
            _copy(block.bn.running_var, state_dict, f"features.{bn_id}.running_var")
            _copy(block.bn.num_batches_tracked, state_dict, f"features.{bn_id}.num_batches_tracked")


def _copy(target: torch.Tensor, state_dict: Mapping[str, torch.Tensor], key: str) -> None:
    if key not in state_dict:
        raise ValueError(f"not a torchvision vgg16_bn state dict: missing '{key}'")
    source = state_dict[key]
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(
            f"not a torchvision vgg16_bn state dict: '{key}' has shape {tuple(source.shape)}, "
            f"expected {tuple(target.shape)}"
        )
    target.copy_(source)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
