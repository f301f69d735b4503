import shutil

import pytest
import torch
from helpers import DATA

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def space():
    from attend_search import load_space

    return load_space("attendnext")


@pytest.fixture(params=[32, 45], ids=["input32", "input45"])
def unsampled_spec(request):
    """Settings the space never samples: one input channel, a stride-1 stem, odd sizes (down
    to 1x1 from 32), condensing by 3 and 4 (ceil mode), 1x1 attention kernels, three added
    columns, silu and relu6, an inverted residual without expansion, a hidden head layer."""
    from attend_search.search_space import Attention, Block, Head, Spec, Stage, Stem

    def condenser(out, stride, factor, stages, **att):
        return Block(
            "condenser",
            out=out,
            stride=stride,
            act="silu",
            downsample="aads",
            attention=Attention(embed=4, stages=stages, factor=factor, **att),
        )

    stages = (
        Stage(
            (
                condenser(
                    8,
                    2,
                    3,
                    2,
                    condense="avg",
                    groups=4,
                    kernel=1,
                    expand="bilinear",
                    gate="hardsigmoid",
                    skip=True,
                ),
            ),
            columns=3,
            merge="add",
        ),
        Stage(
            (
                Block(
                    "inverted_residual",
                    out=16,
                    stride=2,
                    act="relu6",
                    mid=8,
                    se=4,
                    se_gate="sigmoid",
                ),
            ),
            columns=2,
            merge="concat",
        ),
        Stage((condenser(32, 2, 4, 1), condenser(32, 1, 4, 2, skip=True))),
        Stage(
            (
                Block("depthwise_separable", out=32, kernel=7, stride=2, act="hswish"),
                Block("depthwise_separable", out=32, kernel=5, stride=2, act="silu"),
            )
        ),
    )
    return Spec(
        input_size=request.param,
        num_classes=5,
        in_channels=1,
        stages=stages,
        stem=Stem(out=8, kernel=5, stride=1, act="silu"),
        head=Head(channels=48, act="hswish", hidden=24, hidden_act="silu"),
    )


@pytest.fixture
def workdir(tmp_path):
    """A folder with the tiny space and study, as a user's project folder."""
    for name in ("tiny_space.yaml", "tiny_study.yaml"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path
