"""Geometric augmentations shared by several views."""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from .batched import BatchableOp, per_image

# Largest table of cached flat indices RandomTranslate keeps per image shape, in elements
# (int64, so 8 MiB): every (dy, dx) of a 3x32x32 image with pad 4 takes 81 * 3072.
_TRANSLATE_TABLE_LIMIT = 1 << 20


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    # numpy/torch 'reflect' padding: the edge pixel is not repeated.
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


@functools.lru_cache(maxsize=1024)
def _shifted_axis(size: int, shift: int) -> torch.Tensor:
    """Indices of one axis shifted by `shift` with reflection at both ends."""
    return _reflect(torch.arange(size) + shift, size)


@functools.lru_cache(maxsize=1024)
def _shifted_flat(shape: tuple[int, ...], dy: int, dx: int) -> torch.Tensor:
    """Flat indices into a contiguous tensor of `shape` (..., H, W) for the shift (dy, dx)."""
    h, w = shape[-2:]
    plane = (_shifted_axis(h, dy)[:, None] * w + _shifted_axis(w, dx)[None, :]).reshape(-1)
    offsets = torch.arange(0, math.prod(shape), h * w)
    return (offsets[:, None] + plane[None, :]).reshape(shape)


PADDINGS = ("reflect", "zero")


class RandomTranslate(BatchableOp):
    """FixMatch's `augment_shift`: reflect-pad by `fraction` of the size, then random crop.

    Draws dy then dx, each ``torch.randint(-pad, pad + 1, ())``, and returns
    ``reflect_pad(img)[..., pad + dy : pad + dy + H, pad + dx : pad + dx + W]`` without
    building the full padded copy. Small images (a 3x32x32 CIFAR image: 81 shifts) use one
    ``torch.take`` with a cached flat index per shift; larger ones (which must be (C, H, W)
    or (N, C, H, W)) reflect-pad only the sides the shift exposes. A batch gathers every
    image through its own (dy, dx) index map.

    `padding="zero"` fills the exposed border with 0 (black, before normalisation), as
    torchvision's ``RandomCrop(32, padding=2)`` does in Mean Teacher / LC-MT's code.
    """

    param_count = 2  # dy, dx

    def __init__(self, fraction: float = 0.125, padding: str = "reflect"):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.fraction = fraction
        self.padding = padding

    def _pads(self, shape: tuple[int, ...]) -> tuple[int, int]:
        h, w = shape[-2:]
        return round(self.fraction * h), round(self.fraction * w)

    def draw(self, shape: tuple[int, ...]) -> tuple[float, float]:
        pad_h, pad_w = self._pads(shape)
        dy = int(torch.randint(-pad_h, pad_h + 1, ()))
        dx = int(torch.randint(-pad_w, pad_w + 1, ()))
        return float(dy), float(dx)

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        dy, dx = (int(v) for v in params)
        shape = tuple(img.shape)
        h, w = shape[-2:]
        pad_h, pad_w = self._pads(shape)
        if self.padding == "zero":
            kept = img[..., max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            return F.pad(kept, (max(0, -dx), max(0, dx), max(0, -dy), max(0, dy)), mode="constant", value=0)
        if img.numel() * (2 * pad_h + 1) * (2 * pad_w + 1) <= _TRANSLATE_TABLE_LIMIT:
            return img.take(_shifted_flat(shape, dy, dx))
        # Rows dy.. (or ..h+dy) keep the image edge on the side that gets padded, so reflecting
        # the kept part there is the same as reflecting the whole image.
        kept = img[..., max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
        return F.pad(kept, (max(0, -dx), max(0, dx), max(0, -dy), max(0, dy)), mode="reflect")

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        n, (h, w) = imgs.shape[0], imgs.shape[-2:]
        shifts = params.to(imgs.device, torch.long)
        rows = torch.arange(h, device=imgs.device) + shifts[:, :1]  # (N, H) source rows
        cols = torch.arange(w, device=imgs.device) + shifts[:, 1:]  # (N, W) source columns
        if self.padding == "reflect":
            rows, cols = _reflect(rows, h), _reflect(cols, w)
        else:
            inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
            rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
        source = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, h * w)
        out = imgs.reshape(n, -1, h * w).take_along_dim(source, dim=2)
        if self.padding == "zero":
            out.masked_fill_(~inside.view(n, 1, h * w), 0)
        return out.view(imgs.shape)


class RandomHorizontalFlip(BatchableOp):
    """Flip the last axis with probability `p` (one ``torch.rand(())`` per image); any dtype and shape."""

    param_count = 1  # 1.0: flip

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def draw(self, shape: tuple[int, ...]) -> tuple[float]:
        return (float(float(torch.rand(())) < self.p),)

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        return img.flip(-1) if params[0] else img

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return torch.where(per_image(params[:, 0].bool(), imgs), imgs.flip(-1), imgs)


# Resizes whose input and output sides are all at most this are done as two small matmuls.
_MATMUL_RESIZE_MAX_SIDE = 64


def _window_resize_weights(starts: torch.Tensor, lengths: torch.Tensor, out_size: int, in_size: int) -> torch.Tensor:
    """(N, out_size, in_size) float64 weights of torch's antialiased bilinear resize (its
    ``_compute_weights_aa``, in double) of each window ``[start, start + length)`` of an axis of
    `in_size` pixels to `out_size` pixels, zero outside the window; `starts`, `lengths`: (N,)."""
    kwargs = {"dtype": torch.float64, "device": starts.device}
    starts, lengths = starts.to(**kwargs).view(-1, 1, 1), lengths.to(**kwargs).view(-1, 1, 1)
    scale = lengths / out_size
    downscale = scale >= 1.0
    support = torch.where(downscale, scale, 1.0)  # the bilinear filter's half-width 1, stretched when shrinking
    inv_scale = torch.where(downscale, 1.0 / scale, 1.0)
    centers = scale * (torch.arange(out_size, **kwargs).view(1, -1, 1) + 0.5)
    first = (centers - support + 0.5).trunc().clamp_min_(0.0)
    end = torch.minimum((centers + support + 0.5).trunc(), lengths)
    offsets = torch.arange(in_size, **kwargs).view(1, 1, -1) - starts  # source pixel - window start
    weights = (1.0 - ((offsets - centers + 0.5) * inv_scale).abs()).clamp_min_(0.0)
    weights = torch.where((offsets >= first) & (offsets < end), weights, 0.0)
    total = weights.sum(-1, keepdim=True)
    return weights / total.masked_fill_(total == 0, 1.0)  # an empty window (length 0) stays zero, as in torch


@functools.lru_cache(maxsize=1024)
def _resize_matrix(in_size: int, out_size: int, scale: float = 1.0, transpose: bool = False) -> torch.Tensor:
    """(out_size, in_size) weights of torch's antialiased bilinear resize along one axis, times `scale`."""
    weights = _window_resize_weights(torch.zeros(1), torch.full((1,), float(in_size)), out_size, in_size)[0] * scale
    return (weights.T if transpose else weights).to(torch.float32).contiguous()


def resize_boxes_to_unit_float(imgs: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`resize_to_unit_float` of each image of an (N, C, H, W) batch cropped to its own box
    (top, left, height, width) of the (N, 4) `boxes`: two batched matmuls with per-image
    (out_h, H) row and (out_w, W) column weights that are zero outside the box."""
    boxes = boxes.to(imgs.device, torch.float64)
    (h, w), (out_h, out_w) = imgs.shape[-2:], size
    rows = _window_resize_weights(boxes[:, 0], boxes[:, 2], out_h, h).mul_(1 / 255).float()
    cols_t = _window_resize_weights(boxes[:, 1], boxes[:, 3], out_w, w).float().transpose(1, 2)
    return torch.matmul(rows[:, None], imgs.float()).matmul(cols_t[:, None])


def resize_to_unit_float(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize (torchvision's default) of a uint8 or float image in [0, 255],
    returned as float32 in [0, 1]. No rounding to uint8 happens on the way."""
    h, w = img.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return img.mul(1 / 255).float()
    if max(h, w, out_h, out_w) <= _MATMUL_RESIZE_MAX_SIDE:
        # The antialiased resize is separable: rows @ img @ cols^T, with /255 folded into the rows.
        rows = _resize_matrix(h, out_h, scale=1 / 255)
        cols_t = _resize_matrix(w, out_w, transpose=True)
        if img.dim() == 3:  # two bmm beat matmul's broadcasting for one (C, H, W) image
            c = img.shape[0]
            return torch.bmm(torch.bmm(rows.expand(c, -1, -1), img.float()), cols_t.expand(c, -1, -1))
        return torch.matmul(rows, img.float()).matmul(cols_t)
    flat = img.float().reshape(-1, *img.shape[-3:])
    out = F.interpolate(flat, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
    return out.mul_(1 / 255).reshape(*img.shape[:-2], out_h, out_w)


class RandomResizedCropFloat(BatchableOp):
    """torchvision's ``v2.RandomResizedCrop(size, scale, ratio, antialias=True)`` that returns
    float32 in [0, 1] instead of uint8.

    The crop box is drawn exactly as torchvision draws it (same calls on torch's global
    generator: up to 10 tries of area/log-ratio uniforms, then the top/left randints, else
    the central fallback), so the crop distribution is unchanged. The crop is resized
    bilinearly with antialiasing in float (small images as two cached-weight matmuls), which
    matches torchvision's float resize up to float rounding and skips its uint8 rounding.
    A batch (of one image size) is resized through per-image weights that select each box.
    """

    param_count = 4  # top, left, height, width
    fixes_size = True

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        log_ratio = torch.log(torch.tensor(self.ratio))  # float32, as torchvision
        self._log_ratio = (float(log_ratio[0]), float(log_ratio[1]))

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the crop, with torchvision's draws."""
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(self.scale[0], self.scale[1]).item()
            aspect_ratio = torch.exp(torch.empty(1).uniform_(*self._log_ratio)).item()
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                i = torch.randint(0, height - h + 1, size=(1,)).item()
                j = torch.randint(0, width - w + 1, size=(1,)).item()
                return i, j, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def draw(self, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.get_params(*shape[-2:]))

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        top, left, h, w = (int(v) for v in params)
        return resize_to_unit_float(img[..., top : top + h, left : left + w], self.size)

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return resize_boxes_to_unit_float(imgs, params, self.size)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-2], *self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"


def resize_center_crop(size: int, crop_fraction: float = 0.875) -> v2.Compose:
    """Standard evaluation geometry for variable-size images (resize 256, crop 224)."""
    return v2.Compose([v2.Resize(round(size / crop_fraction), antialias=True), v2.CenterCrop(size)])


def random_crop_geometry(
    info, hflip: bool | None = None, translate: float = 0.125, crop_scale=(0.08, 1.0), padding: str = "reflect"
) -> list[torch.nn.Module]:
    """The 'weak' geometry: flip + translate (`padding` "reflect" or "zero") for fixed-size
    data, resized crop (area fraction in `crop_scale`) + flip otherwise."""
    flip = info.hflip if hflip is None else hflip
    ops: list[torch.nn.Module] = []
    if not info.fixed_size:
        ops.append(v2.RandomResizedCrop(info.image_size, scale=tuple(crop_scale), antialias=True))
    if flip:
        ops.append(RandomHorizontalFlip())
    if info.fixed_size and translate > 0:
        ops.append(RandomTranslate(translate, padding))
    return ops
