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

`FixMatchRandAugment` is a `BatchableOp`: its policy is drawn per image and `apply_batch` runs each
op on the (N, C, H, W) images that drew it (`apply_op_batch`), on their device, pixel for pixel
equal to `apply_op`. The batched ops use integer arithmetic or elementwise float ops only: no
matmul (an accelerator may run it in reduced precision such as TF32) and no float division by a
scalar or of a scalar (CUDA and ``scalar / tensor`` multiply by a reciprocal instead, which can
round differently).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .batched import BatchableOp, per_image

# --- PIL's pointwise and blending ops -------------------------------------------------

# ITU-R 601-2 luma in PIL's 16-bit fixed point (Convert.c: L = (19595 R + 38470 G + 7471 B
# + 2**15) >> 16). Every partial sum stays below 2**24, so float32 computes it exactly.
_LUMA = (19595, 38470, 7471)
_LUMA_WEIGHTS = torch.tensor([_LUMA], dtype=torch.float32)
_LUMA_ROUNDING = torch.tensor(32768.0)


def _gray(x: Tensor) -> Tensor:
    """PIL ``convert("L")`` of a float (C, H, W) tensor holding integers, as (1, H, W)."""
    c, h, w = x.shape
    if c == 1:
        return x
    luma = torch.addmm(_LUMA_ROUNDING, _LUMA_WEIGHTS, x.reshape(c, h * w))
    return luma.mul_(1.0 / 65536.0).floor_().view(1, h, w)


def _gray_batch(imgs: Tensor) -> Tensor:
    """`_gray` of uint8 (N, C, H, W) images as float (N, 1, H, W), in exact int32 arithmetic."""
    if imgs.shape[1] == 1:
        return imgs.float()
    r, g, b = imgs.to(torch.int32).unbind(1)
    luma = (r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2] + 32768) >> 16
    return luma.unsqueeze(1).float()


def _blend(degenerate: Tensor | float, x: Tensor, factor: float | Tensor) -> Tensor:
    """PIL ``Image.blend(degenerate, img, factor)`` on float images: ``degenerate + factor *
    (img - degenerate)`` in float32, clipped and truncated to uint8 (Pillow's ImagingBlend).
    A tensor `factor` (one per image, float32) is always clipped: for factors in [0, 1] the
    rounded blend lies between `degenerate` and `img`, so there the clip changes nothing."""
    out = (x - degenerate).mul_(factor).add_(degenerate)
    if isinstance(factor, Tensor) or not 0.0 <= factor <= 1.0:
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


def _color_batch(imgs: Tensor, factors: Tensor) -> Tensor:
    if imgs.shape[1] == 1:
        return imgs
    return _blend(_gray_batch(imgs), imgs.float(), per_image(factors, imgs))


def _contrast_batch(imgs: Tensor, factors: Tensor) -> Tensor:
    gray = _gray_batch(imgs)
    # `contrast`'s int(sum / n + 0.5) in integers: (2 sum + n) // 2n. The float64 quotient is
    # within 1e-13 of sum / n, far less than sum / n + 0.5 can be from an integer it is not.
    n = gray[0].numel()
    mean = gray.sum(dim=(1, 2, 3), dtype=torch.int64).mul_(2).add_(n).div_(2 * n, rounding_mode="floor")
    return _blend(per_image(mean.float(), imgs), imgs.float(), per_image(factors, imgs))


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


def _sharpness_batch(imgs: Tensor, factors: Tensor) -> Tensor:
    """`sharpness` of (N, C, H, W) images with the 3x3 sums as shifted adds (exact integers)."""
    h, w = imgs.shape[-2:]
    if h < 3 or w < 3:
        return imgs
    x = imgs.to(torch.int32)
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smoothed = x.clone()  # PIL copies the border unfiltered
    # floor((sum + 6) / 13) of `sharpness`, whose float32 quotient is never within rounding of an integer above.
    smoothed[..., 1:-1, 1:-1] = box.add_(x[..., 1:-1, 1:-1], alpha=4).add_(6).div_(13, rounding_mode="floor")
    return _blend(smoothed.float(), imgs.float(), per_image(factors, imgs))


def _autocontrast_planes(planes: Tensor) -> Tensor:
    """``ImageOps.autocontrast`` (no cutoff) of each row of a uint8 (P, L) tensor (one channel a row)."""
    lo, hi = (t.double() for t in planes.aminmax(dim=1))
    stretched = hi > lo
    # PIL's table is int(v * scale + offset) in double precision; exact integer or
    # float32 arithmetic differ from it by one level for 18% / 25% of the (lo, hi) pairs.
    scale = torch.where(stretched, torch.full_like(hi, 255.0).div_(hi - lo), 1.0)
    offset = torch.where(stretched, -lo * scale, 0.0)
    # Results lie in [-1e-13, 255 + 1e-13], so truncating to uint8 needs no clamp.
    return planes.double().mul_(scale[:, None]).add_(offset[:, None]).to(torch.uint8)


def autocontrast(img: Tensor) -> Tensor:
    """``ImageOps.autocontrast`` (no cutoff): stretch each channel's [min, max] to [0, 255].
    The same arithmetic as `_autocontrast_planes`, with Python floats: faster on one CPU image."""
    c = img.shape[0]
    lo, hi = (t.tolist() for t in img.reshape(c, -1).aminmax(dim=1))
    scale = [255.0 / (h - l) if h > l else 1.0 for l, h in zip(lo, hi)]
    offset = [-l * s if h > l else 0.0 for l, h, s in zip(lo, hi, scale)]
    params = torch.tensor([scale, offset], dtype=torch.float64).view(2, c, 1, 1)
    return img.double().mul_(params[0]).add_(params[1]).to(torch.uint8)


def _autocontrast_batch(imgs: Tensor) -> Tensor:
    return _autocontrast_planes(imgs.reshape(imgs.shape[0] * imgs.shape[1], -1)).view_as(imgs)


def _equalize_planes(planes: Tensor) -> Tensor:
    """``ImageOps.equalize`` of each row of a uint8 (P, L) tensor, with PIL's integer arithmetic:
    one histogram per row from a single count of value + 256 * row (a scatter-add, which unlike
    CUDA's bincount does not wait for the device to learn the histogram's length)."""
    p = planes.shape[0]
    keyed = planes.long() + torch.arange(0, 256 * p, 256, device=planes.device).view(p, 1)
    flat = keyed.view(-1)
    hist = torch.zeros(256 * p, dtype=torch.long, device=planes.device).scatter_add_(0, flat, torch.ones_like(flat)).view(p, 256)
    below = hist.cumsum(1).sub_(hist)  # number of pixels below each value
    # step = (pixels - pixels at the top value) // 255; a zero step keeps the channel.
    steps = below.view(-1).take(keyed.amax(dim=1)).div_(255, rounding_mode="floor").view(p, 1)
    table = below.add_(steps // 2).div_(steps.clamp(min=1), rounding_mode="floor").clamp_(max=255)
    table = torch.where(steps == 0, torch.arange(256, device=planes.device), table)
    return table.view(-1).take(keyed).to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _channel_offsets(channels: int) -> Tensor:
    return torch.arange(0, 256 * channels, 256).view(channels, 1)


def equalize(img: Tensor) -> Tensor:
    """``ImageOps.equalize``, per channel, with PIL's integer arithmetic. The same arithmetic as
    `_equalize_planes`, with the steps as Python ints: faster on one CPU image."""
    c = img.shape[0]
    keyed = img.reshape(c, -1).long() + _channel_offsets(c)  # value + 256 * channel
    hist = torch.bincount(keyed.reshape(-1), minlength=256 * c).view(c, 256)
    below = hist.cumsum(1).sub_(hist)
    steps = [n // 255 for n in below.view(-1).take(keyed.amax(dim=1)).tolist()]
    params = torch.tensor([[s // 2 for s in steps], [max(s, 1) for s in steps]]).view(2, c, 1)
    table = below.add_(params[0]).div_(params[1], rounding_mode="floor").clamp_(max=255)
    for channel, step in enumerate(steps):
        if step == 0:
            table[channel] = _VALUES
    return table.view(-1).take(keyed).to(torch.uint8).view_as(img)


def _equalize_batch(imgs: Tensor) -> Tensor:
    return _equalize_planes(imgs.reshape(imgs.shape[0] * imgs.shape[1], -1)).view_as(imgs)


# --- PIL's nearest-neighbour affine transform ------------------------------------------


def _fixed_point(coeffs: tuple[float, ...]) -> tuple[int, int, int, int, int, int]:
    """The affine map in Pillow's 16.16 fixed point (Geometry.c, affine_fixed): source x at the
    centre of pixel (0, 0), its steps per column and per row, then the same for source y."""
    a, b, c, d, e, f = coeffs

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    return fix(c + a * 0.5 + b * 0.5), fix(a), fix(b), fix(f + d * 0.5 + e * 0.5), fix(d), fix(e)


def _source_pixels(fixed, ys: Tensor, xs: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Flat source pixel (0 outside) and inside mask of output rows `ys` and columns `xs`;
    `fixed` is `_fixed_point`'s six integers, or six tensors that broadcast with `ys` and `xs`."""
    x0, x_col, x_row, y0, y_col, y_row = fixed
    src_x = (x0 + ys * x_row + xs * x_col) >> 16
    src_y = (y0 + ys * y_row + xs * y_col) >> 16
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    return torch.where(inside, src_y * width + src_x, 0), inside


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
    ys = torch.arange(height).view(height, 1)
    xs = torch.arange(width).view(1, width)
    pixel, inside = _source_pixels(_fixed_point(coeffs), ys, xs, height, width)
    index = (pixel.view(1, -1) + torch.arange(channels).view(-1, 1) * (height * width)).view(-1)
    outside = ~inside.view(1, -1).expand(channels, -1).reshape(-1)
    return index, (outside if bool(outside.any()) else None)


def affine(img: Tensor, coeffs: tuple[float, ...], fill: int) -> Tensor:
    """``Image.transform(size, AFFINE, coeffs, NEAREST, fillcolor=fill)``; coeffs map output to input."""
    index, outside = _affine_source(tuple(float(v) for v in coeffs), *img.shape)
    out = img.reshape(-1).take(index)
    if outside is not None:
        out.masked_fill_(outside, fill)
    return out.view_as(img)


def _affine_batch(imgs: Tensor, fixed: Tensor, fill: int) -> Tensor:
    """`affine` of (N, C, H, W) images, image i with the (N, 6) `fixed` row i of `_fixed_point`."""
    n, c, h, w = imgs.shape
    ys = torch.arange(h, device=imgs.device).view(1, h, 1)
    xs = torch.arange(w, device=imgs.device).view(1, 1, w)
    pixel, inside = _source_pixels(fixed.T.reshape(6, n, 1, 1).unbind(0), ys, xs, h, w)
    out = imgs.reshape(n, c, h * w).take_along_dim(pixel.view(n, 1, h * w), dim=2)
    return out.masked_fill_(~inside.view(n, 1, h * w), fill).view_as(imgs)


def rotate_coefficients(degrees: float, height: int, width: int) -> tuple[float, ...]:
    """The affine coefficients of ``Image.rotate(degrees)``: same matrix, same rounding and
    same evaluation order."""
    angle = -math.radians(degrees)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    cx, cy = width / 2, height / 2
    c = a * -cx + b * -cy + 0.0 + cx
    f = d * -cx + e * -cy + 0.0 + cy
    return a, b, c, d, e, f


def rotate(img: Tensor, degrees: float, fill: int) -> Tensor:
    """``Image.rotate(degrees, fillcolor=fill)``: counter-clockwise about the image centre."""
    return affine(img, rotate_coefficients(degrees, *img.shape[-2:]), fill)


# --- The FixMatch op table ---------------------------------------------------------------

# The geometric ops' PIL affine coefficients: name -> f(parameter, height, width).
_AFFINE_COEFFICIENTS = {
    "Rotate": rotate_coefficients,
    # PIL's shear coefficient s. The same image comes from torchvision's
    # F.affine(shear=degrees(atan(s)) on that axis, center=[0, 0]) (the top-left corner).
    "ShearX": lambda s, h, w: (1, s, 0, 0, 1, 0),
    "ShearY": lambda s, h, w: (1, 0, 0, s, 1, 0),
    "TranslateX": lambda pixels, h, w: (1, 0, pixels, 0, 1, 0),
    "TranslateY": lambda pixels, h, w: (1, 0, 0, 0, 1, pixels),
}


def _affine_op(name: str):
    coefficients = _AFFINE_COEFFICIENTS[name]
    return lambda img, parameter, fill: affine(img, coefficients(parameter, *img.shape[-2:]), fill)


# The op code, shared by every variant: name -> f(img, parameter, fill), where the parameter is
# the op's own unit (enhancement factor, degrees, PIL affine coefficient, pixels, bits, threshold).
# The order is the policy's: a draw picks the op by its position.
_OPS = {
    "Identity": lambda img, p, fill: img,
    "AutoContrast": lambda img, p, fill: autocontrast(img),
    "Equalize": lambda img, p, fill: equalize(img),
    "Rotate": _affine_op("Rotate"),
    "Solarize": lambda img, threshold, fill: solarize(img, threshold),
    "Color": lambda img, factor, fill: color(img, factor),
    "Contrast": lambda img, factor, fill: contrast(img, factor),
    "Brightness": lambda img, factor, fill: brightness(img, factor),
    "Sharpness": lambda img, factor, fill: sharpness(img, factor),
    "ShearX": _affine_op("ShearX"),
    "ShearY": _affine_op("ShearY"),
    "TranslateX": _affine_op("TranslateX"),
    "TranslateY": _affine_op("TranslateY"),
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


# --- The ops on batches --------------------------------------------------------------------

_BATCH_OPS_WITHOUT_PARAMETER = {"Identity": lambda imgs: imgs, "AutoContrast": _autocontrast_batch, "Equalize": _equalize_batch}
_BATCH_OPS_WITH_FACTOR = {"Color": _color_batch, "Contrast": _contrast_batch, "Sharpness": _sharpness_batch}
# Ops of the pixel value alone: each level is the 256-entry table of the per-image op.
_POINTWISE_OPS = frozenset({"Brightness", "Solarize", "Posterize"})


@functools.lru_cache(maxsize=256)
def _level_table(name: str, variant: str, magnitude_bound: int, height: int, width: int, device: torch.device) -> Tensor:
    """What op `name` needs per level 2 m + (s < 0), for magnitudes m < `magnitude_bound` and signs
    s on height x width images, on `device`: the 256-entry table of a pointwise op, the
    `_fixed_point` coefficients of a geometric op, else the float32 enhancement factor."""
    parameters = [op_parameter(name, m, s, height, width, variant) for m in range(magnitude_bound) for s in (1, -1)]
    if name in _POINTWISE_OPS:
        values = torch.arange(256, dtype=torch.uint8).view(1, 1, 256)
        table = torch.stack([_OPS[name](values, parameter, 0).view(256) for parameter in parameters])
    elif name in GEOMETRIC_OPS:
        coefficients = _AFFINE_COEFFICIENTS[name]
        table = torch.tensor([_fixed_point(tuple(float(v) for v in coefficients(p, height, width))) for p in parameters])
    else:
        # The float32 rounding of the factor that multiplying a float32 image by it does.
        table = torch.tensor(parameters, dtype=torch.float32)
    return table.to(device)


def apply_op_batch(
    imgs: Tensor, name: str, magnitudes: Tensor, signs: Tensor, fill: int = 128, variant: str = "pytorch_port", magnitude_bound: int = 10
) -> Tensor:
    """`apply_op` on uint8 (N, C, H, W) images on any device, image i at ``magnitudes[i]`` (an integer
    below `magnitude_bound`) and ``signs[i]`` (+1 / -1); equal pixel for pixel to `apply_op` per image."""
    if name not in _OPS:
        raise ValueError(f"unknown op '{name}'; FixMatch ops: {', '.join(FIXMATCH_OPS)}")
    if imgs.dtype != torch.uint8 or imgs.dim() != 4:
        raise TypeError(f"expected uint8 (N, C, H, W) images, got {imgs.dtype} {tuple(imgs.shape)}")
    if name in _BATCH_OPS_WITHOUT_PARAMETER:
        return _BATCH_OPS_WITHOUT_PARAMETER[name](imgs)
    levels = magnitudes.to(imgs.device, torch.long) * 2 + (signs.to(imgs.device) < 0)
    parameters = _level_table(name, variant, magnitude_bound, *imgs.shape[-2:], imgs.device)[levels]
    if name in GEOMETRIC_OPS:
        return _affine_batch(imgs, parameters, fill)
    if name in _POINTWISE_OPS:
        return parameters.take_along_dim(imgs.reshape(len(imgs), -1).long(), dim=1).view_as(imgs)
    return _BATCH_OPS_WITH_FACTOR[name](imgs, parameters)


class FixMatchRandAugment(BatchableOp):
    """``RandAugmentMC``: `num_ops` ops drawn with replacement, each with its own magnitude
    v ~ U{1, ..., max_magnitude - 1} and random sign, applied with probability `apply_prob`.

    `variant` picks the magnitude ranges: "pytorch_port" (kekmodel's, the default, so recipes that
    do not choose, e.g. SimMatch's and the quick start, keep their augmentation) or "fixmatch_tf" (google-research's
    ``AugmentPoolRAMC``, whose policy draws are the same: 2 ops, p = 0.5, ``randint(1, 10)``).
    Known difference to the TF code: it runs the ops on RGBA images, so a geometric op's
    transparent fill is grey (127.5; ours `fill`) unless a later AutoContrast, Equalize,
    Posterize or Solarize (which convert to RGB) turns it into black.
    Cutout is a separate module (:class:`datamodules.views.cutout.Cutout`).

    A draw is, per op slot, [applied (1 / 0), op index in FIXMATCH_OPS, magnitude, sign];
    `apply_batch` runs each slot as one `apply_op_batch` per op on the images that drew it.
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
        self.param_count = 4 * num_ops

    def draw(self, shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> tuple[float, ...]:
        # One RNG call per image; float64 uniforms keep int(u * k) < k.
        draws = torch.rand(self.num_ops, 4, dtype=torch.float64, generator=generator).tolist()
        params: list[float] = []
        for u_op, u_mag, u_apply, u_sign in draws:
            op = int(u_op * len(FIXMATCH_OPS))
            magnitude = 1 + int(u_mag * (self.max_magnitude - 1))
            params += [float(u_apply < self.apply_prob), float(op), float(magnitude), 1.0 if u_sign < 0.5 else -1.0]
        return tuple(params)

    @staticmethod
    def policy(params) -> list[tuple[str, int, int]]:
        """The (op name, magnitude, sign) triples a draw applies, in order."""
        values = [float(v) for v in params]
        slots = (values[i : i + 4] for i in range(0, len(values), 4))
        return [(FIXMATCH_OPS[int(op)], int(magnitude), int(sign)) for applied, op, magnitude, sign in slots if applied]

    def sample(self, generator: torch.Generator | None = None) -> list[tuple[str, int, int]]:
        """Draw one policy: the (op name, magnitude, sign) triples that will be applied."""
        return self.policy(self.draw((), generator))

    def apply(self, img: Tensor, params) -> Tensor:
        for name, magnitude, sign in self.policy(params):
            img = apply_op(img, name, magnitude, sign, self.fill, self.variant)
        return img

    def apply_batch(self, imgs: Tensor, params: Tensor) -> Tensor:
        slots = params.to(imgs.device).view(len(imgs), self.num_ops, 4).unbind(1)
        for applied, op, magnitude, sign in (slot.unbind(1) for slot in slots):
            imgs = self._apply_slot(imgs, torch.where(applied != 0, op.long(), len(FIXMATCH_OPS)), magnitude, sign)
        return imgs

    def _apply_slot(self, imgs: Tensor, ops: Tensor, magnitudes: Tensor, signs: Tensor) -> Tensor:
        """One op slot: image i gets op ``ops[i]`` (len(FIXMATCH_OPS): none), grouped by op."""
        members = ops.argsort(stable=True).split(torch.bincount(ops, minlength=len(FIXMATCH_OPS) + 1).tolist())
        out = imgs.clone()
        for name, images in zip(FIXMATCH_OPS, members):
            if len(images) and name != "Identity":
                group = apply_op_batch(imgs[images], name, magnitudes[images], signs[images], self.fill, self.variant, self.max_magnitude)
                out.index_copy_(0, images, group)
        return out

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(img, self.draw(tuple(img.shape), generator))

    def extra_repr(self) -> str:
        return (
            f"num_ops={self.num_ops}, max_magnitude={self.max_magnitude}, apply_prob={self.apply_prob}, "
            f"fill={self.fill}, variant={self.variant}"
        )
