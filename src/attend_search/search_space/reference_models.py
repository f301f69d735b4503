"""Reference networks from outside the search space: the AttendNeXt paper's comparisons.

The paper (Wong et al. 2022) compares AttendNeXt with FBNet-C, MobileOne-S1 (reparameterized
for inference), MobileNetV3-Large and MobileViT-XS. MobileNetV3-Large is a spec (the
``mobilenet_v3_large`` preset); the other three are not in the space, so they are written
here as plain ``nn.Module``s of standard layers, after timm's definitions (``fbnetc_100`` in
``efficientnet.py``, ``mobileone_s1`` in ``byobnet.py``, ``mobilevit_xs`` in
``mobilevit.py``): the same layers, widths, activations and parameter counts (timm:
5,572,200; 4,825,192 as trained and 4,764,840 reparameterized; 2,317,848), so that the
evaluators cost them as timm's models. timm itself cannot be imported next to a CPU build
of torch here. Module names follow this file, not timm's (no pretrained weights are loaded).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AttendSearchError
from .blocks import ConvBNAct, activation
from .spec import make_divisible

Shape = tuple[int, int, int, int]

_MODELS: dict[str, tuple[Callable[[int], nn.Module], int]] = {}  # name -> (factory, input size)


def _reference(input_size: int):
    def register(fn: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        _MODELS[fn.__name__] = (fn, input_size)
        return fn

    return register


def list_reference_models() -> list[str]:
    return sorted(_MODELS)


def get_reference_model(name: str, num_classes: int = 1000) -> tuple[nn.Module, Shape]:
    """``(module, batch-1 input shape)`` of a reference network, at the input size timm
    evaluates it at; weights freshly initialised, train mode."""
    if name not in _MODELS:
        raise AttendSearchError(
            f"unknown reference model {name!r}; known: {', '.join(list_reference_models())}"
        )
    factory, size = _MODELS[name]
    return factory(num_classes), (1, 3, size, size)


def _classifier(
    cin: int, features: int | None, act: str, num_classes: int
) -> list[tuple[str, nn.Module]]:
    """Optional 1x1 conv to ``features`` channels, global average pool, linear."""
    head = [("head", ConvBNAct(cin, features, 1, act=act))] if features else []
    return head + [
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("classifier", nn.Linear(features or cin, num_classes)),
    ]


class MBConv(nn.Sequential):
    """Inverted residual as timm builds it: the 1x1 expansion is there even at ratio 1 (it
    is not in the search space's ``inverted_residual``), linear projection, identity skip."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, act: str):
        super().__init__(
            OrderedDict(
                expand=ConvBNAct(cin, mid, 1, act=act),
                dw=ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act),
                project=ConvBNAct(mid, cout, 1, act=None),
            )
        )
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return x + y if self.skip else y


# --------------------------------------------------------------------------- FBNet-C
@_reference(224)
def fbnetc_100(num_classes: int = 1000) -> nn.Module:
    """FBNet-C (Wu et al. 2019) as timm's ``fbnetc_100``: 5,572,200 parameters."""
    stages = [  # (repeats, kernel, stride, expansion, channels), timm's arch strings
        [(1, 3, 1, 1, 16)],
        [(1, 3, 2, 6, 24), (2, 3, 1, 1, 24)],
        [(1, 5, 2, 6, 32), (1, 5, 1, 3, 32), (1, 5, 1, 6, 32), (1, 3, 1, 6, 32)],
        [(1, 5, 2, 6, 64), (1, 5, 1, 3, 64), (2, 5, 1, 6, 64)],
        [(3, 5, 1, 6, 112), (1, 5, 1, 3, 112)],
        [(4, 5, 2, 6, 184)],
        [(1, 3, 1, 6, 352)],
    ]
    blocks, cin = [], 16
    for stage in stages:
        for repeats, kernel, stride, expansion, cout in stage:
            for i in range(repeats):
                blocks.append(
                    MBConv(
                        cin,
                        cout,
                        kernel,
                        stride if i == 0 else 1,
                        make_divisible(cin * expansion),
                        "relu",
                    )
                )
                cin = cout
    return nn.Sequential(
        OrderedDict(
            [
                ("stem", ConvBNAct(3, 16, 3, 2)),
                ("blocks", nn.Sequential(*blocks)),
                *_classifier(cin, 1984, "relu", num_classes),
            ]
        )
    )


# --------------------------------------------------------------------------- MobileOne-S1
class MobileOneBlock(nn.Module):
    """MobileOne's block (Vasu et al. 2023) with timm's one kxk branch: kxk conv-BN, plus a
    1x1 conv-BN where k > 1, plus a BN identity where shapes allow, summed, then ReLU.
    :meth:`reparameterize` folds the branches into the single biased kxk convolution that
    inference runs."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int):
        super().__init__()
        self.conv: nn.Module = ConvBNAct(cin, cout, kernel, stride, groups, act=None)
        self.scale = ConvBNAct(cin, cout, 1, stride, groups, act=None) if kernel > 1 else None
        self.identity = nn.BatchNorm2d(cout) if cin == cout and stride == 1 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.scale is not None:
            y = y + self.scale(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """One convolution computing what the branches compute (with their BN statistics)."""
        conv = self.conv.conv
        weight, bias = _fold_bn(conv.weight, self.conv.bn)
        if self.scale is not None:
            w, b = _fold_bn(self.scale.conv.weight, self.scale.bn)
            weight, bias = weight + F.pad(w, [conv.kernel_size[0] // 2] * 4), bias + b
        if self.identity is not None:  # each channel passed through: a centred one-hot kernel
            eye = torch.zeros_like(weight)
            per_group = conv.in_channels // conv.groups
            centre = conv.kernel_size[0] // 2
            eye[
                torch.arange(conv.out_channels),
                torch.arange(conv.out_channels) % per_group,
                centre,
                centre,
            ] = 1.0
            w, b = _fold_bn(eye, self.identity)
            weight, bias = weight + w, bias + b
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            groups=conv.groups,
            bias=True,
        )
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        self.conv, self.scale, self.identity = fused, None, None


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of a bias-free convolution followed by ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class MobileOne(nn.Sequential):
    def reparameterize(self) -> MobileOne:
        """Fold every block's branches for inference (in place); returns the network."""
        for module in self.modules():
            if isinstance(module, MobileOneBlock):
                module.reparameterize()
        return self


@_reference(224)
def mobileone_s1(num_classes: int = 1000) -> MobileOne:
    """MobileOne-S1 as trained (timm's ``mobileone_s1``): 4,825,192 parameters; call
    ``reparameterize()`` for the 4,764,840-parameter inference network."""
    blocks, cin = [], 64
    for depth, width in zip((2, 8, 10, 1), (96, 192, 512, 1280)):  # widths 64/128/256/512 x
        for i in range(depth):  # 1.5, 1.5, 2, 2.5
            stride = 2 if i == 0 else 1
            blocks += [
                MobileOneBlock(cin, cin, 3, stride, groups=cin),
                MobileOneBlock(cin, width, 1, 1, groups=1),
            ]
            cin = width
    return MobileOne(
        OrderedDict(
            [
                ("stem", MobileOneBlock(3, 64, 3, 2, groups=1)),
                ("blocks", nn.Sequential(*blocks)),
                *_classifier(cin, None, "relu", num_classes),
            ]
        )
    )


@_reference(224)
def mobileone_s1_reparam(num_classes: int = 1000) -> MobileOne:
    """MobileOne-S1 reparameterized for inference, the form the paper compares with."""
    return mobileone_s1(num_classes).reparameterize()


# --------------------------------------------------------------------------- MobileViT-XS
class SelfAttention(nn.Module):
    """Multi-head self-attention written out (timm's ``Attention`` without the fused kernel):
    the batched matmuls and the softmax are visible to every counter and exporter."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = (
            self.qkv(x)
            .reshape(batch, tokens, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        attention = torch.softmax(q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5, -1)
        return self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer (timm's ViT ``Block``): attention, then an MLP, residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, act: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(dim, hidden), act=activation(act), fc2=nn.Linear(hidden, dim))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """MobileViT's block (Mehta & Rastegari 2022): local kxk conv, 1x1 to the transformer
    width, unfold into 2x2 patches (tokens at the same position in every patch attend to
    each other), transformer layers, fold, 1x1 back, then a kxk conv fusing the input.
    The map's sides must be multiples of the patch size (timm resizes them otherwise)."""

    def __init__(self, channels: int, dim: int, depth: int, patch: int = 2, heads: int = 4):
        super().__init__()
        self.patch = patch
        self.local = ConvBNAct(channels, channels, 3, act="silu")
        self.to_tokens = nn.Conv2d(channels, dim, 1, bias=False)
        self.transformer = nn.Sequential(
            *[TransformerBlock(dim, heads, 2.0, "silu") for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.project = ConvBNAct(dim, channels, 1, act="silu")
        self.fusion = ConvBNAct(2 * channels, channels, 3, act="silu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.to_tokens(self.local(x))
        b, c, h, w = y.shape
        p, nh, nw = self.patch, h // self.patch, w // self.patch
        # (B, C, nh, p, nw, p) -> (B * p * p, nh * nw, C): one sequence per patch position
        tokens = (
            y.reshape(b, c, nh, p, nw, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, nh * nw, c)
        )
        tokens = self.norm(self.transformer(tokens))
        y = tokens.reshape(b, p, p, nh, nw, c).permute(0, 5, 3, 1, 4, 2).reshape(b, c, h, w)
        return self.fusion(torch.cat((x, self.project(y)), 1))


@_reference(256)
def mobilevit_xs(num_classes: int = 1000) -> nn.Module:
    """MobileViT-XS as timm's ``mobilevit_xs``: 2,317,848 parameters, evaluated at 256 px."""
    blocks, cin = [], 16
    for repeats, stride, cout, transformer in [
        (1, 1, 32, None),
        (3, 2, 48, None),
        (1, 2, 64, (96, 2)),
        (1, 2, 80, (120, 4)),
        (1, 2, 96, (144, 3)),
    ]:
        for i in range(repeats):
            blocks.append(MBConv(cin, cout, 3, stride if i == 0 else 1, 4 * cin, "silu"))
            cin = cout
        if transformer:
            blocks.append(MobileViTBlock(cout, *transformer))
    return nn.Sequential(
        OrderedDict(
            [
                ("stem", ConvBNAct(3, 16, 3, 2, act="silu")),
                ("blocks", nn.Sequential(*blocks)),
                *_classifier(cin, 384, "silu", num_classes),
            ]
        )
    )
