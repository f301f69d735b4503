"""Turn a :class:`Spec` into a ``torch.nn.Module``."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import BLOCKS, BlurPool, Columns, ConvBNAct, activation
from .spec import Spec


class Backbone(nn.Module):
    """stem -> stages -> head (optional 1x1 conv, global pool, optional hidden linear, classifier).

    ``forward_features`` returns the last feature map, for use as a detection / segmentation
    backbone; ``forward`` returns class logits.
    """

    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec
        stem = spec.stem
        if stem.stride > 1 and stem.downsample == "aads":
            self.stem = nn.Sequential(
                OrderedDict(
                    blur=BlurPool(spec.in_channels, stem.stride),
                    conv=ConvBNAct(spec.in_channels, stem.out, stem.kernel, 1, act=stem.act),
                )
            )
        else:
            self.stem = ConvBNAct(
                spec.in_channels, stem.out, stem.kernel, stem.stride, act=stem.act
            )

        stages, channels = [], stem.out
        for index, stage in enumerate(spec.stages):
            columns = []
            for _ in range(stage.columns):
                blocks, ch = [], channels
                for block in stage.blocks:
                    blocks.append(BLOCKS[block.type](ch, block))
                    ch = block.out
                columns.append(nn.Sequential(*blocks))
            stages.append(columns[0] if stage.columns == 1 else Columns(columns, stage.merge))
            channels = spec.stage_out(index)
        self.stages = nn.Sequential(*stages)

        head = spec.head
        self.head_conv = (
            ConvBNAct(channels, head.channels, 1, act=head.act)
            if head.channels
            else _norm_act(channels, head.act)
            if head.norm
            else nn.Identity()
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        classifier: OrderedDict[str, nn.Module] = OrderedDict()
        width = spec.features
        if head.hidden:
            classifier["hidden"] = nn.Linear(width, head.hidden)
            classifier["act"] = activation(head.hidden_act)
            width = head.hidden
        classifier["dropout"] = nn.Dropout(head.dropout)
        classifier["fc"] = nn.Linear(width, spec.num_classes)
        self.classifier = nn.Sequential(classifier)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.forward_features(x)))

    def units(self) -> list[nn.Module]:
        """``forward`` as a chain of modules, each taking the whole activation: the stem, every
        block (a stage of parallel columns as one :class:`Columns`), the head, the pool, the
        classifier. Applied in order they compute ``forward``; synflow rescales between them.
        """
        blocks = [
            block
            for stage in self.stages
            for block in ([stage] if isinstance(stage, Columns) else stage)
        ]
        return [self.stem, *blocks, self.head_conv, self.pool, self.classifier]


def _norm_act(channels: int, act: str) -> nn.Sequential:
    """The head's batch norm and activation of a pre-activation network (``head.norm``)."""
    return nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), act=activation(act)))


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation: trains well from scratch with these blocks."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_model(spec: Spec) -> Backbone:
    """Build the network a spec describes (weights freshly initialised, train mode)."""
    return Backbone(spec)


def input_shape(spec: Spec, batch: int = 1) -> tuple[int, int, int, int]:
    return (batch, spec.in_channels, spec.input_size, spec.input_size)
