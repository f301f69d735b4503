"""One naming of a network's layers for everything a user reads: ``build``'s layer table,
``evaluate`` and ``latency predict``'s kernels and the report all say
``stages[1].columns[0].blocks[2].dw``, the spec's own field path, never the module path
``stages.1.columns.0.2.body.dw`` that PyTorch and the latency trace use."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"^stages\.(\d+)(?:\.columns\.(\d+))?(?:\.(\d+)(?:\.body)?)?(?=\.|$)")
_HEAD = {
    "head_conv": "head.conv",
    "pool": "head.pool",
    "pool.0": "head.pool",
    "classifier": "head.classifier",
}


def layer_name(module: str) -> str:
    """``stages.1.columns.0.2.body.dw`` -> ``stages[1].columns[0].blocks[2].dw``;
    ``head_conv`` -> ``head.conv``, ``pool.0`` -> ``head.pool``, ``classifier.fc`` ->
    ``head.classifier.fc``. Names of no spec-built module are returned as they are."""
    match = _BLOCK.match(module)
    if match:
        stage, column, block = match.groups()
        name = (
            f"stages[{stage}]"
            + (f".columns[{column}]" if column is not None else "")
            + (f".blocks[{block}]" if block is not None else "")
        )
        return name + module[match.end() :]
    for prefix in sorted(_HEAD, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return _HEAD[prefix] + module[len(prefix) :]
    return module


def module_path(layer: str) -> str:
    """A block's layer name -> its module's name: ``stages[1].columns[0].blocks[2]`` ->
    ``stages.1.columns.0.2`` (the inverse of :func:`layer_name` for blocks)."""
    out = []
    for part in layer.replace("]", "").split("."):
        key, _, index = part.partition("[")
        out.append(index if key == "blocks" else f"{key}.{index}")
    return ".".join(out)
