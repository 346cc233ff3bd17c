"""FixMatch's RandAugment (kekmodel/FixMatch-pytorch ``RandAugmentMC(n=2, m=10)``) on uint8 (C, H, W) tensors.

Every op reproduces its PIL definition (``PIL.ImageOps``, ``PIL.ImageEnhance``,
``Image.rotate`` / ``Image.transform(AFFINE)`` with nearest sampling) bit for bit
on 1- and 3-channel images, using a few direct tensor ops instead of the
torchvision functional ops, which cost 10-200 us each on a 32 x 32 image.
Randomness comes only from torch's RNG, so DataLoader worker seeding makes a
run reproducible. Unlike kekmodel, the geometric ops fill uncovered pixels with
``fill`` (128, as google-research/fixmatch does) instead of black.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

# --- PIL's pointwise and blending ops -------------------------------------------------

# ITU-R 601-2 luma in PIL's 16-bit fixed point (Convert.c, rgb2l). Every partial
# sum stays below 2**24, so float32 computes it exactly.
_LUMA = (19595.0, 38470.0, 7471.0)


def _gray(x: Tensor) -> Tensor:
    """PIL ``convert("L")`` of a float (C, H, W) tensor holding integers, as (1, H, W)."""
    if x.shape[0] == 1:
        return x
    c, h, w = x.shape
    weights = x.new_tensor(_LUMA).view(1, 3)
    luma = weights.mm(x.reshape(c, h * w)).add_(32768.0).mul_(1.0 / 65536.0).floor_()
    return luma.view(1, h, w)


def _blend(degenerate: Tensor | float, x: Tensor, factor: float) -> Tensor:
    """PIL ``Image.blend(degenerate, img, factor)``: ``degenerate + factor * (img - degenerate)``
    in float32, clipped and truncated to uint8 (Pillow's ImagingBlend)."""
    out = (x - degenerate).mul_(factor).add_(degenerate)
    if not 0.0 <= factor <= 1.0:
        out.clamp_(0.0, 255.0)
    return out.to(torch.uint8)


def brightness(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return _blend(0.0, img.float(), factor)


def color(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Color``: blend with the grayscale image (a no-op on 1 channel)."""
    if img.shape[0] == 1:
        return img
    x = img.float()
    return _blend(_gray(x), x, factor)


def contrast(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Contrast``: blend with the rounded mean of the grayscale image."""
    x = img.float()
    gray = _gray(x)
    mean = int(gray.sum(dtype=torch.float64).item() / gray.numel() + 0.5)
    return _blend(float(mean), x, factor)


@functools.lru_cache(maxsize=8)
def _smooth_kernel(channels: int) -> Tensor:
    kernel = torch.ones(3, 3)
    kernel[1, 1] = 5.0
    return kernel.expand(channels, 1, 3, 3).contiguous()


def sharpness(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Sharpness``: blend with ``ImageFilter.SMOOTH``.

    SMOOTH is the 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13, rounded to nearest,
    with the one-pixel border copied from the input; so only the interior changes.
    """
    c, h, w = img.shape
    if h < 3 or w < 3:
        return img
    x = img.float()
    weighted_sum = torch.conv2d(x.unsqueeze(0), _smooth_kernel(c), groups=c).squeeze(0)
    smoothed = weighted_sum.add_(6.0).div_(13.0).floor_()  # exact: integer numerator < 2**24
    out = img.clone()
    out[:, 1:-1, 1:-1] = _blend(smoothed, x[:, 1:-1, 1:-1], factor)
    return out


def autocontrast(img: Tensor) -> Tensor:
    """``ImageOps.autocontrast`` (no cutoff): stretch each channel's [min, max] to [0, 255]."""
    c = img.shape[0]
    lo, hi = (t.tolist() for t in img.reshape(c, -1).aminmax(dim=1))
    # PIL's per-channel lut: int(ix * scale + offset) in double precision.
    scale = [255.0 / (h - l) if h > l else 1.0 for l, h in zip(lo, hi)]
    offset = [-l * s if h > l else 0.0 for l, h, s in zip(lo, hi, scale)]
    scale_t = torch.tensor(scale, dtype=torch.float64).view(c, 1, 1)
    offset_t = torch.tensor(offset, dtype=torch.float64).view(c, 1, 1)
    return img.double().mul_(scale_t).add_(offset_t).clamp_(0.0, 255.0).to(torch.uint8)


def equalize(img: Tensor) -> Tensor:
    """``ImageOps.equalize``, per channel, with integer arithmetic like PIL's lut."""
    c = img.shape[0]
    flat = img.reshape(c, -1).long()
    keyed = flat if c == 1 else flat + torch.arange(0, 256 * c, 256).view(c, 1)
    hist = torch.bincount(keyed.view(-1), minlength=256 * c).view(c, 256)
    # step = (pixel count - count of the largest value) // 255; step 0 keeps the channel.
    top_count = hist.gather(1, flat.amax(dim=1, keepdim=True))
    step = (flat.shape[1] - top_count) // 255
    lut = (hist.cumsum(1) - hist + step // 2).div_(step.clamp(min=1), rounding_mode="floor")
    lut = torch.where(step > 0, lut.clamp_(max=255), torch.arange(256))
    return lut.gather(1, flat).to(torch.uint8).view_as(img)


def solarize(img: Tensor, threshold: int) -> Tensor:
    """``ImageOps.solarize``: invert the pixels >= threshold."""
    if threshold > 255:
        return img
    return torch.where(img >= threshold, 255 - img, img)


def posterize(img: Tensor, bits: int) -> Tensor:
    """``ImageOps.posterize``: keep the `bits` most significant bits."""
    return img & (256 - (1 << (8 - bits)))


# --- PIL's nearest-neighbour affine transform ------------------------------------------


@functools.lru_cache(maxsize=1024)
def _affine_source(coeffs: tuple[float, ...], height: int, width: int) -> tuple[Tensor, Tensor]:
    """Source pixel of every output pixel for ``Image.transform(AFFINE, coeffs, NEAREST)``.

    The output pixel (x, y) reads the input at floor(a (x + .5) + b (y + .5) + c),
    floor(d (x + .5) + e (y + .5) + f), evaluated in Pillow's 16.16 fixed point
    (Geometry.c, affine_fixed). For pure integer translations Pillow takes another
    code path (ImagingScaleAffine) that gives the same indices.
    Returns the flat source index and the mask of output pixels with no source.
    """
    a, b, c, d, e, f = coeffs

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    ys = torch.arange(height).view(height, 1)
    xs = torch.arange(width).view(1, width)
    src_x = (fix(c + a * 0.5 + b * 0.5) + ys * fix(b) + xs * fix(a)) >> 16
    src_y = (fix(f + d * 0.5 + e * 0.5) + ys * fix(e) + xs * fix(d)) >> 16
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    index = torch.where(inside, src_y * width + src_x, 0)
    return index.flatten(), ~inside.flatten()


def affine(img: Tensor, coeffs: tuple[float, ...], fill: int) -> Tensor:
    """``Image.transform(size, AFFINE, coeffs, NEAREST, fillcolor=fill)``; coeffs map output to input."""
    c, h, w = img.shape
    index, outside = _affine_source(tuple(float(v) for v in coeffs), h, w)
    out = img.reshape(c, h * w).index_select(1, index)
    return out.masked_fill_(outside, fill).view(c, h, w)


def rotate(img: Tensor, degrees: float, fill: int) -> Tensor:
    """``Image.rotate(degrees, fillcolor=fill)``: counter-clockwise about the image centre."""
    h, w = img.shape[-2:]
    # Same matrix, same rounding and same evaluation order as Image.rotate.
    angle = -math.radians(degrees)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    cx, cy = w / 2, h / 2
    c = a * -cx + b * -cy + 0.0 + cx
    f = d * -cx + e * -cy + 0.0 + cy
    return affine(img, (a, b, c, d, e, f), fill)


# --- The FixMatch op table ---------------------------------------------------------------

# Magnitude mappings exactly as kekmodel's fixmatch_augment_pool: (op, max_v, bias)
# with level = v * max_v / 10 + bias, written with the same float expressions.


def _enhance_factor(v: int) -> float:
    return float(v) * 0.9 / 10 + 0.05


def _shear(v: int, sign: int) -> float:
    # PIL's shear coefficient s; the torchvision equivalent is a shear angle of
    # degrees(atan(s)) about the top-left corner (center=[0, 0]).
    return sign * (float(v) * 0.3 / 10)


def _shift(v: int, sign: int, size: int) -> int:
    return int(sign * (float(v) * 0.3 / 10) * size)


_OPS = {
    "Identity": lambda img, v, sign, fill: img,
    "AutoContrast": lambda img, v, sign, fill: autocontrast(img),
    "Equalize": lambda img, v, sign, fill: equalize(img),
    "Rotate": lambda img, v, sign, fill: rotate(img, sign * int(v * 30 / 10), fill),
    "Solarize": lambda img, v, sign, fill: solarize(img, 256 - int(v * 256 / 10)),
    "Color": lambda img, v, sign, fill: color(img, _enhance_factor(v)),
    "Contrast": lambda img, v, sign, fill: contrast(img, _enhance_factor(v)),
    "Brightness": lambda img, v, sign, fill: brightness(img, _enhance_factor(v)),
    "Sharpness": lambda img, v, sign, fill: sharpness(img, _enhance_factor(v)),
    "ShearX": lambda img, v, sign, fill: affine(img, (1, _shear(v, sign), 0, 0, 1, 0), fill),
    "ShearY": lambda img, v, sign, fill: affine(img, (1, 0, 0, _shear(v, sign), 1, 0), fill),
    "TranslateX": lambda img, v, sign, fill: affine(img, (1, 0, _shift(v, sign, img.shape[-1]), 0, 1, 0), fill),
    "TranslateY": lambda img, v, sign, fill: affine(img, (1, 0, 0, 0, 1, _shift(v, sign, img.shape[-2])), fill),
    "Posterize": lambda img, v, sign, fill: posterize(img, int(v * 4 / 10) + 4),
}

FIXMATCH_OPS: tuple[str, ...] = tuple(_OPS)
GEOMETRIC_OPS: frozenset[str] = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})


def apply_op(img: Tensor, name: str, magnitude: int, sign: int = 1, fill: int = 128) -> Tensor:
    """Apply one FixMatch op at an integer magnitude (1..9 in FixMatch) to a uint8 (C, H, W) image.

    `sign` (+1 or -1) only matters for the geometric ops; +1 follows PIL's
    convention (Rotate: counter-clockwise; the others: positive affine coefficient).
    """
    if name not in _OPS:
        raise ValueError(f"unknown op '{name}'; FixMatch ops: {', '.join(FIXMATCH_OPS)}")
    if img.dtype != torch.uint8 or img.dim() != 3:
        raise TypeError(f"expected a uint8 (C, H, W) image, got {img.dtype} {tuple(img.shape)}")
    return _OPS[name](img, magnitude, sign, fill)


class FixMatchRandAugment(torch.nn.Module):
    """``RandAugmentMC``: `num_ops` ops drawn with replacement, each with its own magnitude
    v ~ U{1, ..., max_magnitude - 1} and random sign, applied with probability `apply_prob`.

    Cutout is a separate module (:class:`datamodules.views.cutout.Cutout`).
    """

    def __init__(self, num_ops: int = 2, max_magnitude: int = 10, apply_prob: float = 0.5, fill: int = 128):
        super().__init__()
        if num_ops < 1 or max_magnitude < 2:
            raise ValueError("need num_ops >= 1 and max_magnitude >= 2")
        self.num_ops = num_ops
        self.max_magnitude = max_magnitude
        self.apply_prob = apply_prob
        self.fill = fill

    def sample(self, generator: torch.Generator | None = None) -> list[tuple[str, int, int]]:
        """Draw one policy: the (op name, magnitude, sign) triples that will be applied."""
        # One RNG call per image; float64 uniforms keep int(u * k) < k.
        draws = torch.rand(self.num_ops, 4, dtype=torch.float64, generator=generator).tolist()
        policy = []
        for u_op, u_mag, u_apply, u_sign in draws:
            if u_apply < self.apply_prob:
                name = FIXMATCH_OPS[int(u_op * len(FIXMATCH_OPS))]
                magnitude = 1 + int(u_mag * (self.max_magnitude - 1))
                policy.append((name, magnitude, 1 if u_sign < 0.5 else -1))
        return policy

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for name, magnitude, sign in self.sample(generator):
            img = apply_op(img, name, magnitude, sign, self.fill)
        return img

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, max_magnitude={self.max_magnitude}, apply_prob={self.apply_prob}, fill={self.fill}"
