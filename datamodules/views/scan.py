"""SCAN's strong view ("ours" in wvangansbeke/Unsupervised-Classification, utils/common_config.py
get_train_transformations): flip, RandomCrop, ``Augment(4)``, normalise, ``Cutout(random=True)``."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms import v2

from .compose import View
from .geometry import RandomHorizontalFlip
from .normalize import Normalize
from .randaugment import _affine_source, autocontrast, brightness, color, contrast, equalize, posterize, sharpness, solarize


def _affine(img: Tensor, coeffs: tuple[float, ...], fill: int) -> Tensor:
    """PIL's nearest-neighbour ``Image.transform(AFFINE)``, without randaugment's cache of source
    indices: SCAN's continuous magnitudes would fill it with one entry per draw."""
    index, outside = _affine_source.__wrapped__(tuple(float(v) for v in coeffs), *img.shape)
    out = img.reshape(-1).take(index)
    if outside is not None:
        out.masked_fill_(outside, fill)
    return out.view_as(img)


def _rotate(img: Tensor, degrees: float, fill: int) -> Tensor:
    """``Image.rotate(degrees)`` (counter-clockwise about the centre, nearest, no expand), its matrix
    and rounding as in PIL (the same as randaugment.rotate, uncached)."""
    h, w = img.shape[-2:]
    angle = -math.radians(degrees)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    cx, cy = w / 2, h / 2
    return _affine(img, (a, b, a * -cx + b * -cy + 0.0 + cx, d, e, d * -cx + e * -cy + 0.0 + cy), fill)


# data/augment.py augment_list(): (op, low, high); the value is uniform in [low, high), and the
# geometric ops then flip its sign with probability 1/2 (random_mirror).
SCAN_OPS: dict[str, tuple] = {
    "Identity": (lambda img, v, fill: img, 0.0, 1.0),
    "AutoContrast": (lambda img, v, fill: autocontrast(img), 0.0, 1.0),
    "Equalize": (lambda img, v, fill: equalize(img), 0.0, 1.0),
    "Rotate": (lambda img, v, fill: _rotate(img, v, fill), -30.0, 30.0),
    # PIL inverts the pixels >= the (float) threshold, i.e. >= its ceiling.
    "Solarize": (lambda img, v, fill: solarize(img, math.ceil(v)), 0.0, 256.0),
    "Color": (lambda img, v, fill: color(img, v), 0.05, 0.95),
    "Contrast": (lambda img, v, fill: contrast(img, v), 0.05, 0.95),
    "Brightness": (lambda img, v, fill: brightness(img, v), 0.05, 0.95),
    "Sharpness": (lambda img, v, fill: sharpness(img, v), 0.05, 0.95),
    "ShearX": (lambda img, v, fill: _affine(img, (1, v, 0, 0, 1, 0), fill), -0.1, 0.1),
    "TranslateX": (lambda img, v, fill: _affine(img, (1, 0, v * img.shape[-1], 0, 1, 0), fill), -0.1, 0.1),
    "TranslateY": (lambda img, v, fill: _affine(img, (1, 0, 0, 0, 1, v * img.shape[-2]), fill), -0.1, 0.1),
    "Posterize": (lambda img, v, fill: posterize(img, int(v)), 4.0, 8.0),  # bits 4..7
    "ShearY": (lambda img, v, fill: _affine(img, (1, 0, 0, v, 1, 0), fill), -0.1, 0.1),
}
SCAN_OP_NAMES: tuple[str, ...] = tuple(SCAN_OPS)
MIRRORED_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})


def scan_op_value(name: str, u_value: float, u_sign: float) -> float:
    """The op's value from two uniforms in [0, 1), as ``Augment.__call__`` and the ops draw it."""
    _, low, high = SCAN_OPS[name]
    value = u_value * (high - low) + low
    return -value if name in MIRRORED_OPS and u_sign > 0.5 else value


class ScanAugment(torch.nn.Module):
    """``Augment(n)``: `num_ops` ops drawn uniformly with replacement (``random.choices``), each
    always applied with a continuous value (see `scan_op_value`); geometric ops fill with `fill`
    (0, PIL's default). Works on uint8 (C, H, W) images with torch's RNG."""

    def __init__(self, num_ops: int = 4, fill: int = 0):
        super().__init__()
        if num_ops < 1:
            raise ValueError(f"num_ops must be >= 1, got {num_ops}")
        self.num_ops, self.fill = num_ops, fill

    def sample(self, generator: torch.Generator | None = None) -> list[tuple[str, float]]:
        draws = torch.rand(self.num_ops, 3, dtype=torch.float64, generator=generator).tolist()
        policy = []
        for u_op, u_value, u_sign in draws:
            name = SCAN_OP_NAMES[int(u_op * len(SCAN_OP_NAMES))]
            policy.append((name, scan_op_value(name, u_value, u_sign)))
        return policy

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for name, value in self.sample(generator):
            img = SCAN_OPS[name][0](img, value, self.fill)
        return img

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, fill={self.fill}"


class ScanCutout(torch.nn.Module):
    """``Cutout(n_holes=1, length, random=True)``: draw L uniform in {1, ..., `max_length`} and a
    centre (y, x) uniform over the image, then zero [y - L//2, y + L//2) x [x - L//2, x + L//2),
    clipped: the side is L rounded down to even (L = 1 cuts nothing). Applied after
    normalisation, so the hole holds the dataset mean colour."""

    def __init__(self, max_length: int):
        super().__init__()
        if max_length < 1:
            raise ValueError(f"cutout_max must be >= 1 (or null for half the image size), got {max_length}")
        self.max_length = max_length

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        h, w = img.shape[-2:]
        half = int(torch.randint(1, self.max_length + 1, (), generator=generator)) // 2
        y, x = int(torch.randint(h, (), generator=generator)), int(torch.randint(w, (), generator=generator))
        top, bottom, left, right = max(0, y - half), min(h, y + half), max(0, x - half), min(w, x + half)
        out = img.clone()
        if bottom > top and right > left:
            out[..., top:bottom, left:right] = 0.0
        return out

    def extra_repr(self) -> str:
        return f"max_length={self.max_length}"


def scan_strong_view(info, num_ops: int = 4, cutout_max: int | None = None, hflip: bool | None = None, crop_scale=None, fill: int = 0) -> View:
    """SCAN's pipeline: RandomHorizontalFlip, RandomCrop(crop_size), ``Augment(num_ops)``, ToTensor,
    Normalize, ``Cutout(1, cutout_max, random=True)``.

    - Fixed-size images (CIFAR, STL-10): RandomCrop without padding at the image size is a
      no-op, so they are only flipped. Variable-size images (ImageNet): SCAN's dataset resizes
      the short side to 256, then flip and RandomCrop(224); `crop_scale` (e.g. [0.08, 1]) swaps
      that for a random resized crop (ours, not SCAN's).
    - The ops are SCAN's own table (`SCAN_OPS`), not FixMatch's RandAugment.
    - `cutout_max`: SCAN's `length` (16 on CIFAR, 32 on STL-10, 75 on ImageNet); default half
      the image size.
    """
    length = info.image_size // 2 if cutout_max is None else int(cutout_max)
    cutout = ScanCutout(length)  # checks the length first: one clear error
    flip = [RandomHorizontalFlip()] if (info.hflip if hflip is None else hflip) else []
    if info.fixed_size:
        geometry = flip
    elif crop_scale is not None:
        geometry = [v2.RandomResizedCrop(info.image_size, scale=tuple(crop_scale), antialias=True)] + flip
    else:
        geometry = [v2.Resize(round(info.image_size / 0.875), antialias=True)] + flip + [v2.RandomCrop(info.image_size)]
    return View(geometry + [ScanAugment(num_ops, fill)], torch.nn.Sequential(Normalize(info.mean, info.std), cutout))
