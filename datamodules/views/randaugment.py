"""FixMatch's RandAugment (kekmodel/FixMatch-pytorch ``RandAugmentMC(n=2, m=10)``) on uint8 (C, H, W) tensors.

Every op reproduces its PIL definition (``PIL.ImageOps``, ``PIL.ImageEnhance``,
``Image.rotate`` / ``Image.transform(AFFINE)`` with nearest sampling) bit for bit
on 1- and 3-channel images, using a few direct tensor ops instead of the
torchvision functional ops, which cost 10-240 us each on a 32 x 32 image.
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

# ITU-R 601-2 luma in PIL's 16-bit fixed point (Convert.c: L = (19595 R + 38470 G + 7471 B
# + 2**15) >> 16). Every partial sum stays below 2**24, so float32 computes it exactly.
_LUMA_WEIGHTS = torch.tensor([[19595.0, 38470.0, 7471.0]])
_LUMA_ROUNDING = torch.tensor(32768.0)


def _gray(x: Tensor) -> Tensor:
    """PIL ``convert("L")`` of a float (C, H, W) tensor holding integers, as (1, H, W)."""
    c, h, w = x.shape
    if c == 1:
        return x
    luma = torch.addmm(_LUMA_ROUNDING, _LUMA_WEIGHTS, x.reshape(c, h * w))
    return luma.mul_(1.0 / 65536.0).floor_().view(1, h, w)


def _blend(degenerate: Tensor | float, x: Tensor, factor: float) -> Tensor:
    """PIL ``Image.blend(degenerate, img, factor)`` on float images: ``degenerate + factor *
    (img - degenerate)`` in float32, clipped and truncated to uint8 (Pillow's ImagingBlend)."""
    out = (x - degenerate).mul_(factor).add_(degenerate)
    if not 0.0 <= factor <= 1.0:
        out.clamp_(0.0, 255.0)
    return out.to(torch.uint8)


# Pointwise ops that depend on the pixel value only are 256-entry lookup tables,
# built once per level (PIL applies them as tables too).
_VALUES = torch.arange(256)


def _lookup(img: Tensor, table: Tensor) -> Tensor:
    return table.take(img.long())


@functools.lru_cache(maxsize=64)
def _brightness_table(factor: float) -> Tensor:
    return _blend(0.0, _VALUES.float(), factor)


@functools.lru_cache(maxsize=64)
def _solarize_table(threshold: int) -> Tensor:
    return torch.where(_VALUES >= threshold, 255 - _VALUES, _VALUES).to(torch.uint8)


def brightness(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Brightness``: blend with black."""
    return _lookup(img, _brightness_table(factor))


def solarize(img: Tensor, threshold: int) -> Tensor:
    """``ImageOps.solarize``: invert the pixels >= threshold."""
    return _lookup(img, _solarize_table(threshold))


def posterize(img: Tensor, bits: int) -> Tensor:
    """``ImageOps.posterize``: keep the `bits` most significant bits."""
    return img & (256 - (1 << (8 - bits)))


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


@functools.lru_cache(maxsize=16)
def _smooth_operators(height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """``ImageFilter.SMOOTH`` as (13 * smoothed) = rows @ img @ cols + weights * img.

    rows @ img @ cols is the 3x3 box sum on the interior and 0 on the one-pixel
    border; `weights` adds the extra centre weight 4 inside and 13 * img on the
    border, which PIL copies unfiltered.
    """

    def box_sum(n: int) -> Tensor:
        band = torch.ones(n, n).triu(-1).tril(1)
        band[0] = band[-1] = 0.0
        return band

    weights = torch.full((height, width), 13.0)
    weights[1:-1, 1:-1] = 4.0
    return box_sum(height), box_sum(width).T.contiguous(), weights


def sharpness(img: Tensor, factor: float) -> Tensor:
    """``ImageEnhance.Sharpness``: blend with ``ImageFilter.SMOOTH``, the 3x3 kernel
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 rounded to nearest, border pixels unchanged."""
    h, w = img.shape[-2:]
    if h < 3 or w < 3:
        return img
    rows, cols, weights = _smooth_operators(h, w)
    x = img.float()
    # Integer sums below 2**24: float32 is exact, and so is the rounding division.
    smoothed = torch.matmul(torch.matmul(rows, x), cols).addcmul_(x, weights)
    smoothed = smoothed.add_(6.0).div_(13.0).floor_()
    return _blend(smoothed, x, factor)


def autocontrast(img: Tensor) -> Tensor:
    """``ImageOps.autocontrast`` (no cutoff): stretch each channel's [min, max] to [0, 255]."""
    c = img.shape[0]
    lo, hi = (t.tolist() for t in img.reshape(c, -1).aminmax(dim=1))
    # PIL's table is int(v * scale + offset) in double precision; exact integer or
    # float32 arithmetic differ from it by one level for 18% / 25% of the (lo, hi) pairs.
    scale = [255.0 / (h - l) if h > l else 1.0 for l, h in zip(lo, hi)]
    offset = [-l * s if h > l else 0.0 for l, h, s in zip(lo, hi, scale)]
    params = torch.tensor([scale, offset], dtype=torch.float64).view(2, c, 1, 1)
    # Results lie in [-1e-13, 255 + 1e-13], so truncating to uint8 needs no clamp.
    return img.double().mul_(params[0]).add_(params[1]).to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _channel_offsets(channels: int) -> Tensor:
    return torch.arange(0, 256 * channels, 256).view(channels, 1)


def equalize(img: Tensor) -> Tensor:
    """``ImageOps.equalize``, per channel, with PIL's integer arithmetic."""
    c = img.shape[0]
    keyed = img.reshape(c, -1).long() + _channel_offsets(c)  # value + 256 * channel
    hist = torch.bincount(keyed.reshape(-1), minlength=256 * c).view(c, 256)
    below = hist.cumsum(1).sub_(hist)  # number of pixels below each value
    # step = (pixels - pixels at the top value) // 255; a zero step keeps the channel.
    steps = [n // 255 for n in below.view(-1).take(keyed.amax(dim=1)).tolist()]
    params = torch.tensor([[s // 2 for s in steps], [max(s, 1) for s in steps]]).view(2, c, 1)
    table = below.add_(params[0]).div_(params[1], rounding_mode="floor").clamp_(max=255)
    for channel, step in enumerate(steps):
        if step == 0:
            table[channel] = _VALUES
    return table.view(-1).take(keyed).to(torch.uint8).view_as(img)


# --- PIL's nearest-neighbour affine transform ------------------------------------------


@functools.lru_cache(maxsize=1024)
def _affine_source(coeffs: tuple[float, ...], channels: int, height: int, width: int) -> tuple[Tensor, Tensor | None]:
    """Where each output pixel of ``Image.transform(AFFINE, coeffs, NEAREST)`` reads the input.

    The output pixel (x, y) reads the input at floor(a (x + .5) + b (y + .5) + c),
    floor(d (x + .5) + e (y + .5) + f), evaluated in Pillow's 16.16 fixed point
    (Geometry.c, affine_fixed). For integer translations Pillow takes another code
    path (ImagingScaleAffine) that gives the same pixels.
    Returns flat indices into the (C, H, W) input and the mask of the output pixels
    that fall outside it (None when there are none).
    """
    a, b, c, d, e, f = coeffs

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    ys = torch.arange(height).view(height, 1)
    xs = torch.arange(width).view(1, width)
    src_x = (fix(c + a * 0.5 + b * 0.5) + ys * fix(b) + xs * fix(a)) >> 16
    src_y = (fix(f + d * 0.5 + e * 0.5) + ys * fix(e) + xs * fix(d)) >> 16
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    pixel = torch.where(inside, src_y * width + src_x, 0).view(1, -1)
    index = (pixel + torch.arange(channels).view(-1, 1) * (height * width)).view(-1)
    outside = ~inside.view(1, -1).expand(channels, -1).reshape(-1)
    return index, (outside if bool(outside.any()) else None)


def affine(img: Tensor, coeffs: tuple[float, ...], fill: int) -> Tensor:
    """``Image.transform(size, AFFINE, coeffs, NEAREST, fillcolor=fill)``; coeffs map output to input."""
    index, outside = _affine_source(tuple(float(v) for v in coeffs), *img.shape)
    out = img.reshape(-1).take(index)
    if outside is not None:
        out.masked_fill_(outside, fill)
    return out.view_as(img)


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
    # PIL's shear coefficient s. The same image comes from torchvision's
    # F.affine(shear=degrees(atan(s)) on that axis, center=[0, 0]) (the top-left corner).
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
