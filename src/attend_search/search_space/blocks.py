"""PyTorch building blocks of the search space.

Layers are plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` / activation modules so that any runtime
(onnxruntime, TFLite via conversion, ExecuTorch) and any counter (fvcore) sees standard ops.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .nb201_cell import EDGES
from .spec import Attention, Block

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "silu": nn.SiLU}
_GATES = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}


def activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name](inplace=True)


def gate(name: str) -> nn.Module:
    return _GATES[name]()


class ConvBNAct(nn.Sequential):
    """Bias-free convolution, batch norm, optional activation (None or ``"none"``: without):
    one fused kernel at inference."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout),
        )
        if act not in (None, "none"):
            layers["act"] = activation(act)
        super().__init__(layers)


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): a fixed 3x3 binomial low-pass, then stride 2.

    The filter is a buffer, not a parameter: it is never trained and adds no parameters.
    Placed *before* the layer that would have been strided, which then runs at stride 1 on
    the smaller map, so anti-aliasing costs one cheap depthwise pass instead of 4x compute.
    """

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = (taps[:, None] * taps[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous())
        self.stride = stride
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, stride=self.stride, padding=1, groups=self.channels)


def strided(
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    downsample: str,
    groups: int = 1,
    act: str | None = "relu",
) -> nn.Module:
    """A conv that downsamples either by its own stride or by a BlurPool in front of it."""
    if stride > 1 and downsample == "aads":
        return nn.Sequential(
            OrderedDict(
                blur=BlurPool(cin, stride), conv=ConvBNAct(cin, cout, kernel, 1, groups, act)
            )
        )
    return ConvBNAct(cin, cout, kernel, stride, groups, act)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation as in MobileNetV3: pool, 1x1 reduce (ReLU), 1x1 expand, gate."""

    def __init__(self, channels: int, squeeze: int, gate_name: str = "hardsigmoid"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate(gate_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class AttentionCondenser(nn.Module):
    """Attention condenser; with ``stages=2`` the double-condensing variant (DC-AC).

    condense (pool by ``factor``) -> embed (grouped k x k, pointwise) [-> condense -> embed]
    -> pointwise back to C channels -> upsample to H x W -> gate -> ``V * gate(A) * s``.
    Projecting to C channels *before* upsampling is exact (both are linear per pixel and
    nearest / bilinear weights sum to one) and costs ``factor**(2*stages)`` times fewer MACs.
    """

    def __init__(self, channels: int, cfg: Attention):
        super().__init__()
        self.cfg = cfg
        pool = nn.MaxPool2d if cfg.condense == "max" else nn.AvgPool2d
        steps: OrderedDict[str, nn.Module] = OrderedDict()
        cin = channels
        for i in range(1, cfg.stages + 1):
            steps[f"condense{i}"] = pool(cfg.factor, cfg.factor, ceil_mode=True)
            steps[f"embed{i}"] = nn.Sequential(
                OrderedDict(
                    spatial=ConvBNAct(cin, cfg.embed, cfg.kernel, groups=cfg.groups),
                    point=ConvBNAct(cfg.embed, cfg.embed, 1),
                )
            )
            cin = cfg.embed
        self.condense = nn.Sequential(steps)
        self.expand = nn.Conv2d(cfg.embed, channels, 1)
        self.gate = gate(cfg.gate)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.expand(self.condense(x))
        a = F.interpolate(
            a,
            size=x.shape[-2:],
            mode=self.cfg.expand,
            **({"align_corners": False} if self.cfg.expand == "bilinear" else {}),
        )
        attended = x * self.gate(a) * self.scale
        return x + attended if self.cfg.skip else attended


class _Residual(nn.Module):
    def __init__(self, use: bool):
        super().__init__()
        self.use_residual = use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_residual else y


def _use_residual(block: Block, cin: int) -> bool:
    return block.residual and block.stride == 1 and cin == block.out


class CondenserBlock(_Residual):
    """Attention condenser, then depthwise k x k (strided) and pointwise convolutions."""

    def __init__(self, cin: int, block: Block):
        super().__init__(_use_residual(block, cin))
        assert block.attention is not None
        self.body = nn.Sequential(
            OrderedDict(
                attention=AttentionCondenser(cin, block.attention),
                dw=strided(cin, cin, block.kernel, block.stride, block.downsample, cin, block.act),
                pw=ConvBNAct(cin, block.out, 1, act=block.act),
            )
        )


class DepthwiseSeparable(_Residual):
    """MobileNetV1-style depthwise k x k then pointwise, optional squeeze-excitation between."""

    def __init__(self, cin: int, block: Block):
        super().__init__(_use_residual(block, cin))
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            dw=strided(cin, cin, block.kernel, block.stride, block.downsample, cin, block.act)
        )
        if block.se:
            layers["se"] = SqueezeExcite(cin, block.se, block.se_gate)
        layers["pw"] = ConvBNAct(cin, block.out, 1, act=block.act)
        self.body = nn.Sequential(layers)


class InvertedResidual(_Residual):
    """MBConv (MobileNetV2/V3): 1x1 expand (skipped when mid == in), depthwise, SE, linear 1x1."""

    def __init__(self, cin: int, block: Block):
        super().__init__(_use_residual(block, cin))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if block.mid != cin:
            layers["expand"] = ConvBNAct(cin, block.mid, 1, act=block.act)
        layers["dw"] = strided(
            block.mid, block.mid, block.kernel, block.stride, block.downsample, block.mid, block.act
        )
        if block.se:
            layers["se"] = SqueezeExcite(block.mid, block.se, block.se_gate)
        layers["project"] = ConvBNAct(block.mid, block.out, 1, act=None)
        self.body = nn.Sequential(layers)


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201's convolution: ReLU (not in place: the input feeds other edges), bias-free
    convolution, batch norm."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(
            OrderedDict(
                act=nn.ReLU(),
                conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                bn=nn.BatchNorm2d(cout),
            )
        )


class Zero(nn.Module):
    """NAS-Bench-201's ``none`` edge: its input times zero, as the benchmark computes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def nb201_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 cell edge (stride 1, channels kept)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return ReLUConvBN(channels, channels, 1 if name == "nor_conv_1x1" else 3)


class Cell(nn.Module):
    """A NAS-Bench-201 cell: node ``i`` is the sum of ``edge(node j)`` over ``j < i``, every
    edge computed (unreachable ones too, as in the benchmark); node 3 is the output."""

    def __init__(self, cin: int, block: Block):
        super().__init__()
        self.wiring = EDGES
        self.edges = nn.ModuleList(nb201_op(op, cin) for op in block.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            total = None
            for edge, (i, j) in zip(self.edges, self.wiring):
                if i == node:
                    y = edge(nodes[j])
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[3]


class ResNetBasic(nn.Module):
    """NAS-Bench-201's reduction: ReLU-conv3x3-BN (strided), ReLU-conv3x3-BN, plus a shortcut
    (2x2 average pooling where strided, then a 1x1 convolution where the channels change)."""

    def __init__(self, cin: int, block: Block):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, block.out, 3, block.stride)
        self.conv_b = ReLUConvBN(block.out, block.out, 3)
        shortcut: OrderedDict[str, nn.Module] = OrderedDict()
        if block.stride > 1:  # ceil mode: the strided convolution's size at any input size
            shortcut["pool"] = nn.AvgPool2d(block.stride, block.stride, ceil_mode=True)
        if cin != block.out:
            shortcut["conv"] = nn.Conv2d(cin, block.out, 1, bias=False)
        self.shortcut = nn.Sequential(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Projection(ConvBNAct):
    """NAS-Bench-Macro's identity where a layer strides and widens: a 1x1 convolution (of the
    block's stride) and batch norm, no activation, no residual."""

    def __init__(self, cin: int, block: Block):
        super().__init__(cin, block.out, 1, block.stride, act=None)


BLOCKS: dict[str, type[nn.Module]] = {
    "condenser": CondenserBlock,
    "depthwise_separable": DepthwiseSeparable,
    "inverted_residual": InvertedResidual,
    "cell": Cell,
    "resnet_basic": ResNetBasic,
    "projection": Projection,
}


class Columns(nn.Module):
    """Parallel columns over the same input, merged by element-wise sum or channel concat."""

    def __init__(self, columns: list[nn.Module], merge: str):
        super().__init__()
        self.columns = nn.ModuleList(columns)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.join([column(x) for column in self.columns])

    def join(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """The merge alone, for callers that run the columns themselves (synflow's rescaling)."""
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total
