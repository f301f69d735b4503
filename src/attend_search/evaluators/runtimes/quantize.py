"""int8 post-training quantization: a calibration batch from a data source, and ONNX int8.

Static quantization needs the ranges of the activations the network will see, so the
calibration batch comes from real images (:func:`calibration_batch`, any source
:func:`~..training.datasets.load_dataset` reads), converted to the spec's channels and size. ONNX
goes through onnxruntime's quantizer (QDQ format, int8 weights per channel, int8
activations); LiteRT through its own (:func:`.litert.convert_tflite`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...errors import AttendSearchError
from ...search_space import Spec
from ..training.datasets import load_dataset


def calibration_batch(
    source: str | Path, spec: Spec, images: int = 64, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``images`` images of ``source`` drawn at random (reproducibly for ``seed``) from its
    training part, at the spec's channels and input size, and their labels."""
    if images < 1:
        raise AttendSearchError(f"--calibration-images: needs at least 1 image, got {images}")
    data = load_dataset(source, channels=spec.in_channels, image_size=spec.input_size, seed=seed)
    if len(data.x_train) < images:
        raise AttendSearchError(
            f"has {len(data.x_train)} training images, fewer than the "
            f"{images} asked for calibration",
            source=str(source),
        )
    pick = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    pick = pick[:images]
    return data.x_train[pick], data.y_train[pick]


def quantize_onnx(
    float_path: str | Path, out: str | Path, calibration: Tensor, batch: int = 16
) -> Path:
    """Write the int8 version of an ONNX file (dynamic batch), its activation ranges taken
    from ``calibration`` in batches of ``batch``."""
    from onnxruntime import InferenceSession
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    session = InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = calibration.detach().float().numpy()

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(np.array_split(images, max(1, -(-len(images) // batch))))

        def get_next(self) -> dict[str, np.ndarray] | None:
            part = next(self._batches, None)
            return None if part is None else {name: part}

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))  # shape inference, BN folded
        quantize_static(
            str(prepared),
            str(out),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    return out
