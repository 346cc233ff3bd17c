"""Augmentations split into their random draws and their pixel work, so whole batches can be
augmented on the accelerator while every image keeps the draws of its own per-item seed.

A `BatchableOp` draws its parameters with exactly the RNG calls the per-item op makes (its
`forward` *is* ``apply(img, draw(shape))``), so the DataLoader worker can draw them under the
item's seed and leave the pixels to `apply_batch` on the device. The per-item and the batched
paths are then equal pixel for pixel (uint8 ops) or to float rounding (float ops), whatever the
number of workers, processes or resumes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class BatchableOp(torch.nn.Module):
    """One augmentation as ``draw`` (random, per item, on the CPU) + ``apply`` / ``apply_batch`` (pixels).

    Subclasses set `param_count` (the fixed length of a draw) and implement:
      - ``draw(shape) -> tuple[float, ...]``: every random call the op makes, for an image of
        `shape` (C, H, W), in the per-item op's order, as `param_count` floats;
      - ``apply(img, params)``: the op on one (C, H, W) image with those parameters;
      - ``apply_batch(imgs, params)``: the op on (N, C, H, W) images with an (N, param_count)
        float64 tensor of parameters, equal to stacking ``apply`` per image;
      - ``out_shape(shape)`` when the op changes the image shape (crops); the default keeps it.
    """

    param_count: int = 0
    fixes_size: bool = False  # the output size does not depend on the input's (a resized crop)

    def draw(self, shape: tuple[int, ...]) -> tuple[float, ...]:
        raise NotImplementedError

    def apply(self, img: Tensor, params: Sequence[float]) -> Tensor:
        raise NotImplementedError

    def apply_batch(self, imgs: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)

    def forward(self, img: Tensor) -> Tensor:
        return self.apply(img, self.draw(tuple(img.shape)))


def per_image(values: Tensor, imgs: Tensor) -> Tensor:
    """(N,) per-image values as (N, 1, ..., 1) on the images' device, to broadcast over a batch."""
    return values.to(imgs.device).view(-1, *(1,) * (imgs.dim() - 1))


def split_params(params: Tensor, ops: Sequence[BatchableOp]) -> list[Tensor]:
    """The (N, P) parameters of a chain of ops cut into each op's (N, param_count) columns."""
    return list(params.split([op.param_count for op in ops], dim=-1)) if ops else []


def batchable_tail(ops: Sequence[torch.nn.Module], variable_size_input: bool = False) -> int:
    """Index of the first op from which every op is a `BatchableOp` (len(ops) when the last is not).

    With `variable_size_input` (images of different sizes cannot be stacked into one batch) the
    ops up to the first one that `fixes_size` stay per item too.
    """
    start = len(ops)
    while start > 0 and isinstance(ops[start - 1], BatchableOp):
        start -= 1
    if variable_size_input:
        fixing = next((i for i in range(start, len(ops)) if ops[i].fixes_size), None)
        if fixing is not None:
            start = fixing + 1
    return start
