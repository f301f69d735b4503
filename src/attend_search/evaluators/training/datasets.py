"""Small image-classification datasets for short proxy training, held in memory as tensors.

Four sources, all offline:

- ``"digits"``: scikit-learn's bundled handwritten digits (1,797 8x8 grayscale images of
  10 classes, shipped inside the package), upsampled to 32x32 by default, since the search
  space's networks expect at least 32 pixels;
- ``"digits-hard"``: the same digits made hard enough that a few epochs do not saturate
  and networks are told apart: split first, then each image drawn :data:`HARD_COPIES` times
  under a random affine map (rotation, scale, shift) with pixel noise, and a share
  :data:`HARD_LABEL_NOISE` of the training labels replaced at random (validation labels
  stay true); reproducible for a seed;
- a ``.npz`` file with arrays ``x_train, y_train, x_val, y_val``, or ``x, y`` that are split
  here. Images are ``(N, H, W)`` (grayscale), ``(N, C, H, W)`` or ``(N, H, W, C)`` with
  1 or 3 channels: the layout is channels-last when the last axis has 1 or 3 entries and the
  second has not. ``uint8`` is scaled to [0, 1], floats are kept. Labels are integers
  ``0 .. K-1``;
- a folder with one sub-folder per class (sorted names are the classes), images read with
  Pillow and resized to a common square size (the first image's width unless given).

Sets without a validation part are split at random, reproducibly for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import AttendSearchError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class DatasetError(AttendSearchError):
    """A dataset file or folder is missing or malformed."""


@dataclass(frozen=True)
class Dataset:
    """Images ``(N, C, H, W)`` float32 and int64 labels, as a train and a validation split."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    num_classes: int

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[-2:])


def load_dataset(
    source: str | Path,
    *,
    channels: int | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    validation: str | Path | None = None,
) -> Dataset:
    """``"digits"``, a ``.npz`` file or a class-folder tree (see the module docstring).

    ``channels`` (1 or 3) and ``image_size`` (square) convert the images on load;
    ``val_fraction`` and ``seed`` split sets that come without a validation part.
    ``validation``, another source, is the validation split: then all of ``source`` trains.
    """
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if validation is not None:
        return _with_validation(source, validation, channels, image_size)
    if str(source) in ("digits", "digits-hard"):
        x, y = _digits()
        data = _split(
            str(source), adapt_images(x, channels, image_size or 32), y, val_fraction, seed
        )
        return _distorted(data, seed) if source == "digits-hard" else data
    path = Path(source)
    if path.is_dir():
        x, y = _folder(path, channels, image_size)
        return _split(str(path), x, y, val_fraction, seed)
    if path.suffix == ".npz":
        return _npz(path, channels, image_size, val_fraction, seed)
    if not path.exists():
        raise DatasetError(
            "no such file or folder (expected 'digits', 'digits-hard', a .npz "
            "file or a folder of class sub-folders)",
            source=str(source),
        )
    raise DatasetError(
        "not a dataset: expected a .npz file or a folder of class sub-folders", source=str(source)
    )


def _with_validation(
    source: str | Path, validation: str | Path, channels: int | None, size: int | None
) -> Dataset:
    """All of ``source`` to train on and all of ``validation`` to validate on, the latter's
    images given the former's channels and (square) size."""
    x, y = _whole(source, channels, size)
    side = x.shape[-1] if x.shape[-1] == x.shape[-2] else size
    x_val, y_val = _whole(validation, x.shape[1], side)
    if Path(source).is_dir() and Path(validation).is_dir():
        names = [
            sorted(p.name for p in Path(s).iterdir() if p.is_dir()) for s in (source, validation)
        ]
        if names[0] != names[1]:
            raise DatasetError(
                f"the validation folder's classes ({', '.join(names[1])}) are not "
                f"the training folder's ({', '.join(names[0])})",
                source=str(validation),
            )
    return Dataset(str(source), x, y, x_val, y_val, int(max(y.max(), y_val.max())) + 1)


def _whole(source: str | Path, channels: int | None, size: int | None) -> tuple[Tensor, Tensor]:
    """Every image and label of a source, its splits (if any) put back together."""
    data = load_dataset(source, channels=channels, image_size=size)
    return torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])


def adapt_images(x: Tensor, channels: int | None = None, size: int | None = None) -> Tensor:
    """Images with ``channels`` (grayscale repeated, or RGB averaged to one) at ``size`` x ``size``.

    ``None`` keeps what there is. Resizing is bilinear, anti-aliased when it shrinks.
    """
    if channels and channels != x.shape[1]:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1:
            x = x.mean(1, keepdim=True)
        else:
            raise DatasetError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")
    if size and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return x


def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # pixel values are 0..16
    return x, torch.from_numpy(digits.target).long()


HARD_COPIES = 1  # distorted draws of each digit
HARD_LABEL_NOISE = 0.1  # share of training labels replaced by a random class
_MAX_ANGLE, _SCALES, _MAX_SHIFT, _NOISE = 0.35, (0.8, 1.2), 0.15, 0.15  # radians, -, of the side


def _distorted(data: Dataset, seed: int) -> Dataset:
    """``digits-hard`` from split digits (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)

    def draw(x: Tensor, y: Tensor, label_noise: float) -> tuple[Tensor, Tensor]:
        x, y = x.repeat(HARD_COPIES, 1, 1, 1), y.repeat(HARD_COPIES)
        n = len(y)
        angle = (2 * torch.rand(n, generator=generator) - 1) * _MAX_ANGLE
        scale = _SCALES[0] + (_SCALES[1] - _SCALES[0]) * torch.rand(n, generator=generator)
        shift = (2 * torch.rand(n, 2, generator=generator) - 1) * 2 * _MAX_SHIFT
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False)
        x = x + _NOISE * torch.randn(x.shape, generator=generator)
        noisy = torch.rand(n, generator=generator) < label_noise
        return x, torch.where(noisy, torch.randint(data.num_classes, (n,), generator=generator), y)

    x_train, y_train = draw(data.x_train, data.y_train, HARD_LABEL_NOISE)
    x_val, y_val = draw(data.x_val, data.y_val, 0.0)
    return Dataset(data.name, x_train, y_train, x_val, y_val, data.num_classes)


def _split(name: str, x: Tensor, y: Tensor, val_fraction: float, seed: int) -> Dataset:
    """A random train/validation split, the same for the same seed."""
    n = len(y)
    if n < 2:
        raise DatasetError(
            f"{n} example(s): too few to split into train and validation", source=name
        )
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    return Dataset(name, x[train], y[train], x[val], y[val], int(y.max()) + 1)


def _npz(
    path: Path, channels: int | None, size: int | None, val_fraction: float, seed: int
) -> Dataset:
    if not path.is_file():
        raise DatasetError("no such file", source=str(path))
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"not a readable .npz file: {exc}", source=str(path)) from None
    with arrays:
        keys = set(arrays.files)
        if {"x_train", "y_train", "x_val", "y_val"} <= keys:
            (x_train, y_train), (x_val, y_val) = (
                _npz_part(arrays, path, split, channels, size) for split in ("train", "val")
            )
            classes = int(max(y_train.max(), y_val.max())) + 1
            return Dataset(str(path), x_train, y_train, x_val, y_val, classes)
        if {"x", "y"} <= keys:
            x, y = _npz_part(arrays, path, "", channels, size)
            return _split(str(path), x, y, val_fraction, seed)
    raise DatasetError(
        f"expected arrays x_train, y_train, x_val, y_val (or x, y), found "
        f"{', '.join(sorted(keys)) or 'none'}",
        source=str(path),
    )


def _npz_part(
    arrays, path: Path, split: str, channels: int | None, size: int | None
) -> tuple[Tensor, Tensor]:
    xkey, ykey = (f"x_{split}", f"y_{split}") if split else ("x", "y")
    x, y = arrays[xkey], arrays[ykey]
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise DatasetError(
            f"images must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {x.shape}",
            path=xkey,
            source=str(path),
        )
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"labels must be {len(x)} integers (one per image), got shape {y.shape} of {y.dtype}",
            path=ykey,
            source=str(path),
        )
    if len(y) and y.min() < 0:
        raise DatasetError("labels must be 0 or more", path=ykey, source=str(path))
    images = torch.from_numpy(np.ascontiguousarray(x)).float()
    if x.dtype == np.uint8:
        images /= 255.0
    return adapt_images(images, channels, size), torch.from_numpy(y).long()


def _folder(root: Path, channels: int | None, size: int | None) -> tuple[Tensor, Tensor]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in root.iterdir() if p.is_dir())
    files = [
        (f, label)
        for label, folder in enumerate(classes)
        for f in sorted(folder.iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DatasetError(
            "no images found: expected one sub-folder of images per class", source=str(root)
        )
    mode = "L" if channels == 1 else "RGB"
    images = []
    for file, _ in files:
        try:
            with Image.open(file) as img:
                size = size or img.width
                images.append(np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR)))
        except (OSError, UnidentifiedImageError) as exc:
            raise DatasetError(f"cannot read image: {exc}", source=str(file)) from None
    x = torch.from_numpy(np.stack(images)).float() / 255.0
    x = x.unsqueeze(1) if mode == "L" else x.permute(0, 3, 1, 2)
    return x.contiguous(), torch.tensor([label for _, label in files])
