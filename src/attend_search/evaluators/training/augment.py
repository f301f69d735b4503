"""Standard training augmentation on batched image tensors (torchvision cannot be used here).

Each policy maps a batch ``(N, C, H, W)`` to ``(N, C, size, size)`` in a few whole-batch
tensor operations on the device the batch is on (a crop is one ``grid_sample``). Random
draws come from the ``torch.Generator`` passed in (on the CPU, whatever the device), so a run
is reproducible and resumable from the generator's state.

- ``crop``: Inception-style random resized crop (Szegedy et al. 2015; torchvision's
  ``RandomResizedCrop``): a box of :data:`CROP_SCALE` of the area and :data:`CROP_RATIO`
  aspect, at a random place, resized bilinearly to ``size``; the ImageNet default;
- ``shift``: pad-and-crop (the CIFAR recipe): the image resized to ``size``, then moved by up
  to :data:`SHIFT` of its side, whole pixels, the uncovered border zero;
- ``none``: resize only.

Each may add a horizontal flip with probability ``hflip`` (0 for digits and text).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import AttendSearchError
from .datasets import adapt_images

AUGMENTATIONS = ("crop", "shift", "none")
CROP_SCALE = (0.25, 1.0)  # area of the crop box, of the image's (torchvision: 0.08..1)
CROP_RATIO = (3 / 4, 4 / 3)  # width / height of the box
SHIFT = 1 / 8  # largest move of ``shift``, of the side (4 pixels at 32)


def check_augmentation(name: str, hflip: float) -> None:
    if name not in AUGMENTATIONS:
        raise AttendSearchError(
            f"--augment: unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}"
        )
    if not 0 <= hflip <= 1:
        raise AttendSearchError(f"--hflip: a probability lies in 0..1, got {hflip}")


def augment(x: Tensor, size: int, name: str, hflip: float, generator: torch.Generator) -> Tensor:
    """The batch ``x`` augmented by policy ``name`` and resized to ``size`` x ``size``."""
    if name == "crop":
        x = _crop(x, size, generator)
    else:
        x = adapt_images(x, size=size)
        if name == "shift":
            x = _shift(x, generator)
    flip = (torch.rand(len(x), generator=generator) < hflip).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _crop(x: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Random resized crop: one bilinear resampling of a random box per image."""
    n = len(x)
    area = torch.empty(n).uniform_(*CROP_SCALE, generator=generator)
    log_ratio = torch.empty(n).uniform_(*map(math.log, CROP_RATIO), generator=generator)
    # the box's half-sides in grid units (the image spans -1..1), clamped so that it fits
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    centre_x = (2 * torch.rand(n, generator=generator) - 1) * (1 - width)
    centre_y = (2 * torch.rand(n, generator=generator) - 1) * (1 - height)
    zero = torch.zeros(n)
    theta = torch.stack(
        [torch.stack([width, zero, centre_x], 1), torch.stack([zero, height, centre_y], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Pad-and-crop: each image moved by whole pixels, exactly (an index, no resampling)."""
    n, size = len(x), x.shape[-1]
    reach = int(SHIFT * size)
    dy, dx = torch.randint(0, 2 * reach + 1, (2, n), generator=generator).to(x.device)
    steps = torch.arange(size, device=x.device)
    rows, cols = (dy[:, None] + steps)[:, :, None], (dx[:, None] + steps)[:, None, :]
    padded = F.pad(x, (reach, reach, reach, reach))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (n, H, W, C) back
