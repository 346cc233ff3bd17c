"""FixMatch's RandAugment on uint8 (C, H, W) tensors, in two variants that share the op code:
kekmodel/FixMatch-pytorch ``RandAugmentMC(n=2, m=10)`` ("pytorch_port") and google-research/fixmatch
``AugmentPoolRAMC`` ("fixmatch_tf"), which differ only in the magnitude ranges (RANDAUGMENT_VARIANTS).

Every op reproduces its PIL definition (``PIL.ImageOps``, ``PIL.ImageEnhance``,
``Image.rotate`` / ``Image.transform(AFFINE)`` with nearest sampling) bit for bit
on 1- and 3-channel images, using a few direct tensor ops instead of the
torchvision functional ops, which cost 10-240 us each on a 32 x 32 image.
Randomness comes only from torch's RNG, so DataLoader worker seeding makes a
run reproducible. Unlike kekmodel, the geometric ops fill uncovered pixels with
``fill`` (128; google-research/fixmatch's transparent fill ends as 127.5 grey) instead of black.
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

# The op code, shared by every variant: name -> f(img, parameter, fill), where the parameter is
# the op's own unit (enhancement factor, degrees, PIL affine coefficient, pixels, bits, threshold).
_OPS = {
    "Identity": lambda img, p, fill: img,
    "AutoContrast": lambda img, p, fill: autocontrast(img),
    "Equalize": lambda img, p, fill: equalize(img),
    "Rotate": lambda img, degrees, fill: rotate(img, degrees, fill),
    "Solarize": lambda img, threshold, fill: solarize(img, threshold),
    "Color": lambda img, factor, fill: color(img, factor),
    "Contrast": lambda img, factor, fill: contrast(img, factor),
    "Brightness": lambda img, factor, fill: brightness(img, factor),
    "Sharpness": lambda img, factor, fill: sharpness(img, factor),
    # PIL's shear coefficient s. The same image comes from torchvision's
    # F.affine(shear=degrees(atan(s)) on that axis, center=[0, 0]) (the top-left corner).
    "ShearX": lambda img, s, fill: affine(img, (1, s, 0, 0, 1, 0), fill),
    "ShearY": lambda img, s, fill: affine(img, (1, 0, 0, s, 1, 0), fill),
    "TranslateX": lambda img, pixels, fill: affine(img, (1, 0, pixels, 0, 1, 0), fill),
    "TranslateY": lambda img, pixels, fill: affine(img, (1, 0, 0, 0, 1, pixels), fill),
    "Posterize": lambda img, bits, fill: posterize(img, bits),
}

FIXMATCH_OPS: tuple[str, ...] = tuple(_OPS)
GEOMETRIC_OPS: frozenset[str] = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})

# Each variant maps a magnitude v (1..9) and a sign to the op's parameter: name -> f(v, sign, height,
# width), written with the sources' own float expressions. Both use the same 14 ops.


def _no_parameter(v: int, sign: int, height: int, width: int) -> None:
    return None


def _with_enhance_factor(factor) -> dict:
    return {name: (lambda v, sign, h, w: factor(v)) for name in ("Color", "Contrast", "Brightness", "Sharpness")}


_SHARED_LEVELS = {
    "Identity": _no_parameter,
    "AutoContrast": _no_parameter,
    "Equalize": _no_parameter,
    "Rotate": lambda v, sign, h, w: sign * int(v * 30 / 10),
    "Solarize": lambda v, sign, h, w: 256 - int(v * 256 / 10),
    "ShearX": lambda v, sign, h, w: sign * (float(v) * 0.3 / 10),
    "ShearY": lambda v, sign, h, w: sign * (float(v) * 0.3 / 10),
}

RANDAUGMENT_VARIANTS: dict[str, dict] = {
    # kekmodel/FixMatch-pytorch dataset/randaugment.py fixmatch_augment_pool (the paper's Table 12
    # ranges): factors 0.05 + 0.09 v (0.14..0.86), translate 0.03 v of the image size, 4..7 bits.
    "pytorch_port": {
        **_SHARED_LEVELS,
        **_with_enhance_factor(lambda v: float(v) * 0.9 / 10 + 0.05),
        "TranslateX": lambda v, sign, h, w: int(sign * (float(v) * 0.3 / 10) * w),
        "TranslateY": lambda v, sign, h, w: int(sign * (float(v) * 0.3 / 10) * h),
        "Posterize": lambda v, sign, h, w: int(v * 4 / 10) + 4,
    },
    # google-research/fixmatch third_party/auto_augment/augmentations.py, the ops of
    # libml/augment.py AugmentPoolRAMC (--augment d.d.rac, the paper's FixMatch (RA) runs):
    # factors 0.1 + 0.18 v (_enhancer_impl, 0.28..1.72), translate int_parameter(v, 10) = v
    # pixels whatever the image size, posterize 4 - int_parameter(v, 4) = 4..1 bits.
    "fixmatch_tf": {
        **_SHARED_LEVELS,
        **_with_enhance_factor(lambda v: float(v) * 1.8 / 10 + 0.1),
        "TranslateX": lambda v, sign, h, w: sign * int(v * 10 / 10),
        "TranslateY": lambda v, sign, h, w: sign * int(v * 10 / 10),
        "Posterize": lambda v, sign, h, w: 4 - int(v * 4 / 10),
    },
}


def _check_variant(variant: str) -> None:
    if variant not in RANDAUGMENT_VARIANTS:
        raise ValueError(f"unknown RandAugment variant {variant!r}; choose one of: {', '.join(RANDAUGMENT_VARIANTS)}")


def op_parameter(name: str, magnitude: int, sign: int, height: int, width: int, variant: str = "pytorch_port"):
    """The parameter `variant` gives op `name` at `magnitude` and `sign` on a height x width image."""
    _check_variant(variant)
    return RANDAUGMENT_VARIANTS[variant][name](magnitude, sign, height, width)


def apply_op(img: Tensor, name: str, magnitude: int, sign: int = 1, fill: int = 128, variant: str = "pytorch_port") -> Tensor:
    """Apply one FixMatch op at an integer magnitude (1..9 in FixMatch) to a uint8 (C, H, W) image.

    `sign` (+1 or -1) only matters for the geometric ops; +1 follows PIL's
    convention (Rotate: counter-clockwise; the others: positive affine coefficient).
    `variant` picks the magnitude ranges (:data:`RANDAUGMENT_VARIANTS`).
    """
    if name not in _OPS:
        raise ValueError(f"unknown op '{name}'; FixMatch ops: {', '.join(FIXMATCH_OPS)}")
    if img.dtype != torch.uint8 or img.dim() != 3:
        raise TypeError(f"expected a uint8 (C, H, W) image, got {img.dtype} {tuple(img.shape)}")
    return _OPS[name](img, op_parameter(name, magnitude, sign, *img.shape[-2:], variant=variant), fill)


class FixMatchRandAugment(torch.nn.Module):
    """``RandAugmentMC``: `num_ops` ops drawn with replacement, each with its own magnitude
    v ~ U{1, ..., max_magnitude - 1} and random sign, applied with probability `apply_prob`.

    `variant` picks the magnitude ranges: "pytorch_port" (kekmodel's, the default, so recipes that
    do not choose, e.g. SimMatch's and the quick start, keep their augmentation) or "fixmatch_tf" (google-research's
    ``AugmentPoolRAMC``, whose policy draws are the same: 2 ops, p = 0.5, ``randint(1, 10)``).
    Known difference to the TF code: it runs the ops on RGBA images, so a geometric op's
    transparent fill is grey (127.5; ours `fill`) unless a later AutoContrast, Equalize,
    Posterize or Solarize (which convert to RGB) turns it into black.
    Cutout is a separate module (:class:`datamodules.views.cutout.Cutout`).
    """

    def __init__(self, num_ops: int = 2, max_magnitude: int = 10, apply_prob: float = 0.5, fill: int = 128, variant: str = "pytorch_port"):
        super().__init__()
        if num_ops < 1 or max_magnitude < 2:
            raise ValueError("need num_ops >= 1 and max_magnitude >= 2")
        _check_variant(variant)
        self.num_ops = num_ops
        self.max_magnitude = max_magnitude
        self.apply_prob = apply_prob
        self.fill = fill
        self.variant = variant

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
            img = apply_op(img, name, magnitude, sign, self.fill, self.variant)
        return img

    def extra_repr(self) -> str:
        return (
            f"num_ops={self.num_ops}, max_magnitude={self.max_magnitude}, apply_prob={self.apply_prob}, "
            f"fill={self.fill}, variant={self.variant}"
        )
