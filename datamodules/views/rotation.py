"""RotNet's input (paper 000, `SSClustering/transforms.py::UnlabeledTransform.rotnet_mode`)."""
from __future__ import annotations

import torch

from .compose import View
from .geometry import random_crop_geometry
from .normalize import Normalize


class RotationView(torch.nn.Module):
    """The image in its 4 rotations, stacked (4, C, H, W); entry k is rotated k x 90 degrees
    counter-clockwise (PIL's `rotate(90 k)`) and its rotation label is k.

    As the official `rotnet_mode`, `[rotnet_transform(x.rotate(i * 90)) for i in range(4)]`, each
    rotation is augmented by `base` on its own (its own random crop). `shared_augmentation=True`
    augments once and rotates that one crop four times.
    """

    def __init__(self, base: View, shared_augmentation: bool = False):
        super().__init__()
        self.base = base
        self.shared_augmentation = shared_augmentation

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.shared_augmentation:
            x = self.base(img)
            return torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
        return torch.stack([self.base(torch.rot90(img, k, dims=(-2, -1))) for k in range(4)])


def rotation_view(info, hflip: bool = False, shared_augmentation: bool = False) -> RotationView:
    """`rotnet_transform` is the 12.5% reflect-padded RandomCrop alone: no flip (`hflip=False`),
    no colour jitter."""
    return RotationView(View(random_crop_geometry(info, hflip), Normalize(info.mean, info.std)), shared_augmentation)
