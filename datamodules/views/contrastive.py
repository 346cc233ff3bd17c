"""Views of the self-supervised pretexts: SimCLR pairs and SwAV/DINO multi-crop.

These views leave uint8 right after the crop: `RandomResizedCropFloat` returns float32 in
[0, 1], flip, colour distortion and blur work in float (clamping to [0, 1] after every colour
op, as torchvision does), and `UnitNormalize` standardises. The random draws are those of the
torchvision pipeline they replace (``v2.RandomResizedCrop``, ``v2.RandomApply([v2.ColorJitter])``,
``v2.RandomGrayscale``, ``v2.RandomApply([v2.GaussianBlur])``): same calls on torch's global
generator, in the same order, with the same parameter ranges, so the augmentation
distribution is unchanged; only the uint8 rounding between ops is gone.

Every augmentation of these views is a `BatchableOp`, so a view's `plan` draws all its
parameters per item and `apply_batch` does all the pixel work on a batch (e.g. on the
accelerator), equal to the per-item view up to float rounding.
"""
from __future__ import annotations

import functools
import math

import torch
from torchvision.transforms import v2

from .batched import BatchableOp, per_image, split_params
from .compose import View
from .geometry import RandomHorizontalFlip, RandomResizedCropFloat
from .normalize import _float32_values, standardisation

_CONSTANTS = {
    # torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma, with 0.2989 for red).
    "gray": torch.tensor([[0.2989, 0.587, 0.114]]),
    # Rows give g - b, b - r, r - g: the hue numerator when the max channel is r, g or b ...
    "hue_diffs": torch.tensor([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]]),
    # ... and six times the hue is then base + numerator / chroma.
    "hue_base": torch.tensor([0.0, 2.0, 4.0]).view(3, 1, 1),
    # n in the HSV -> RGB formula channel = V - C * clamp(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6.
    "hue_n": torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1),
}


@functools.lru_cache(maxsize=64)
def _constant(name: str, device: torch.device) -> torch.Tensor:
    """The float32 constant `name` of `_CONSTANTS` on `device`, copied once per device."""
    return _CONSTANTS[name].to(device)


def _float32(p: float) -> float:
    # torchvision tests `torch.rand(1) >= p` in float32; comparing Python floats against p
    # rounded to float32 gives the same answer for every draw.
    return float(torch.tensor(p, dtype=torch.float32))


def _mix_channels(name: str, img: torch.Tensor) -> torch.Tensor:
    """(K, C) weights `_CONSTANTS[name]` applied along the channel axis: (..., C, H, W) -> (..., K, H, W)."""
    weights = _constant(name, img.device)
    if img.dim() == 3:  # the common case, one mm
        return torch.mm(weights, img.reshape(img.shape[0], -1)).view(-1, *img.shape[-2:])
    return torch.matmul(weights, img.flatten(-2)).unflatten(-1, img.shape[-2:])


def rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) float -> (..., 1, H, W) luma 0.2989 R + 0.587 G + 0.114 B (torchvision's weights)."""
    return _mix_channels("gray", img)


# The colour ops take a float `factor`, or for an (N, C, H, W) batch an (N, 1, 1, 1) float32 tensor (one per image).


def adjust_brightness(img: torch.Tensor, factor) -> torch.Tensor:
    """``clamp(factor * img, 0, 1)`` for float images in [0, 1] (torchvision's definition)."""
    return img.mul(factor).clamp_(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the mean of the greyscale image: ``clamp(mean + factor * (img - mean), 0, 1)``."""
    gray = rgb_to_gray(img) if img.shape[-3] == 3 else img
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
    return torch.lerp(mean, img, factor).clamp_(0.0, 1.0)


def adjust_saturation(img: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the greyscale image: ``clamp(gray + factor * (img - gray), 0, 1)``; 1-channel images are returned as is."""
    if img.shape[-3] == 1:
        return img
    return torch.lerp(rgb_to_gray(img), img, factor).clamp_(0.0, 1.0)


def adjust_hue(img: torch.Tensor, factor) -> torch.Tensor:
    """Rotate the HSV hue by `factor` turns (in [-0.5, 0.5]) of a float RGB image in [0, 1].

    Exact HSV arithmetic without materialising H, S and V: a hue shift keeps each pixel's
    max V and chroma C = max - min, so with the shifted hue H' = H + factor the result is
    ``V - C * clamp(min(k, 4 - k), 0, 1)`` per channel, ``k = (n + 6 H') mod 6`` and n = 5, 3, 1
    for R, G, B; it stays in [min, max] of the pixel. Agrees with torchvision's ``adjust_hue``
    on float images up to float rounding (~1e-6); 1-channel images are returned as is.
    """
    if img.shape[-3] == 1:
        return img
    maxc, argmax = img.max(dim=-3, keepdim=True)  # ties: any max channel gives the same hue
    chroma = maxc - img.amin(dim=-3, keepdim=True)
    numerators = _mix_channels("hue_diffs", img)
    # Grey pixels (C = 0) have numerator 0 and come out as V whatever their hue.
    base = _constant("hue_base", img.device) + 6.0 * factor
    shifted_hue6 = torch.addcdiv(base, numerators, chroma.clamp_min(1e-20)).gather(-3, argmax)
    k = (shifted_hue6 + _constant("hue_n", img.device)).remainder_(6.0)
    return torch.addcmul(maxc, chroma, torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0), value=-1.0)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)  # torchvision's fn_idx order


class ColorJitter(BatchableOp):
    """torchvision's ``v2.ColorJitter`` for float images in [0, 1], with fewer and cheaper ops.

    Takes the same arguments and validates them with torchvision's own checks, so the factor
    ranges are identical: brightness/contrast/saturation uniform in [max(0, 1 - x), 1 + x], hue
    uniform in [-x, x]. Draws like torchvision (``torch.randperm(4)`` for the order, then one
    ``uniform_`` per enabled factor in the order b, c, s, h) and applies the enabled ops in that
    random order, each clamping to [0, 1]. Does not modify its input. A batch runs four rounds;
    in each, every enabled op is applied to the images whose order puts it there.
    """

    param_count = 8  # the order (a permutation of 0..3), then the four factors (0 for a disabled op)

    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None):
        super().__init__()
        reference = v2.ColorJitter(brightness, contrast, saturation, hue)
        self.brightness, self.contrast = reference.brightness, reference.contrast
        self.saturation, self.hue = reference.saturation, reference.hue

    @property
    def _enabled(self) -> list[int]:
        """Indices into `_JITTER_OPS` of the ops with a factor range."""
        bounds = (self.brightness, self.contrast, self.saturation, self.hue)
        return [i for i, b in enumerate(bounds) if b is not None]

    @staticmethod
    def _uniform(bounds) -> float:
        return 0.0 if bounds is None else float(torch.empty(1).uniform_(bounds[0], bounds[1]).item())

    def draw(self, shape: tuple[int, ...]) -> tuple[float, ...]:
        order = [float(i) for i in torch.randperm(4).tolist()]
        return (*order, *(self._uniform(b) for b in (self.brightness, self.contrast, self.saturation, self.hue)))

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        enabled = self._enabled
        for i in (int(v) for v in params[:4]):
            if i in enabled:
                img = _JITTER_OPS[i](img, float(params[4 + i]))
        return img

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        order, factors = params[:, :4], params[:, 4:].float()
        for position in range(4):
            for i in self._enabled:
                chosen = per_image(order[:, position] == i, imgs)
                imgs = torch.where(chosen, _JITTER_OPS[i](imgs, per_image(factors[:, i], imgs)), imgs)
        return imgs

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}"


class RandomApply(BatchableOp):
    """``v2.RandomApply``: one ``torch.rand(1)``; the transforms run in order iff it is below `p`.

    Batchable when its transforms are shape-keeping `BatchableOp`s: the parameters are the
    applied flag then the transforms' own, drawn (as per item) only when applied and zero
    otherwise; a batch runs the transforms on every image and keeps the applied ones.
    """

    def __init__(self, transforms, p: float = 0.5):
        super().__init__()
        self.transforms = torch.nn.ModuleList(transforms)
        self.p = p
        self._threshold = _float32(p)
        self.param_count = 1 + sum(getattr(t, "param_count", 0) for t in self.transforms)

    def _batchable_transforms(self) -> list[BatchableOp]:
        ops = list(self.transforms)
        plain = [type(op).__name__ for op in ops if not isinstance(op, BatchableOp)]
        if plain:
            raise TypeError(f"RandomApply can split only BatchableOps into draws and pixels, not {', '.join(plain)}")
        return ops

    def forward(self, img: torch.Tensor) -> torch.Tensor:  # any transforms; draws as `draw` does
        if float(torch.rand(1)) >= self._threshold:
            return img
        for transform in self.transforms:
            img = transform(img)
        return img

    def draw(self, shape: tuple[int, ...]) -> tuple[float, ...]:
        ops = self._batchable_transforms()
        if float(torch.rand(1)) >= self._threshold:
            return (0.0,) * self.param_count
        params = [1.0]
        for op in ops:
            params.extend(op.draw(shape))
            shape = op.out_shape(shape)
        return tuple(params)

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        if not params[0]:
            return img
        start = 1
        for op in self._batchable_transforms():
            img = op.apply(img, params[start : start + op.param_count])
            start += op.param_count
        return img

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        ops = self._batchable_transforms()
        out = imgs
        for op, op_params in zip(ops, split_params(params[:, 1:], ops)):
            out = op.apply_batch(out, op_params)
        return torch.where(per_image(params[:, 0].bool(), imgs), out, imgs)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class RandomGrayscale(BatchableOp):
    """``v2.RandomGrayscale`` for float images: w.p. `p` (one ``torch.rand(1)``) every channel becomes the luma."""

    param_count = 1  # 1.0: grey

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = p
        self._threshold = _float32(p)

    def draw(self, shape: tuple[int, ...]) -> tuple[float]:
        return (float(float(torch.rand(1)) < self._threshold),)

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        if not params[0]:
            return img
        if img.shape[-3] == 1:
            return img.clone()
        return rgb_to_gray(img).expand_as(img)

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        if imgs.shape[-3] == 1:
            return imgs
        return torch.where(per_image(params[:, 0].bool(), imgs), rgb_to_gray(imgs), imgs)


def _gaussian_kernel1d(size: int, sigma, device: torch.device) -> torch.Tensor:
    """torchvision's kernel exp(-i^2 / (2 sigma^2)) over integer offsets i, normalised: (size,)
    for a float `sigma`, (N, size) for (N,) float32 sigmas."""
    lim = (size - 1) / (2.0 * math.sqrt(2.0))
    offsets = torch.linspace(-lim, lim, steps=size, device=device)
    return torch.softmax(offsets.div(sigma[:, None] if isinstance(sigma, torch.Tensor) else sigma).pow(2).neg(), dim=-1)


@functools.lru_cache(maxsize=64)
def _blur_taps(size: int, kernel_size: int, device: torch.device) -> torch.Tensor:
    """(kernel_size, size * size) 0/1 map of a 1-D convolution with reflect padding on `size`
    pixels: entry (t, i * size + j) is 1 where tap t of output i reads input j."""
    if kernel_size // 2 >= size:
        raise ValueError(f"reflect padding by {kernel_size // 2} needs more than {size} pixels")
    out = torch.arange(size).repeat_interleave(kernel_size)
    taps = torch.arange(kernel_size).repeat(size)
    src = (out + taps - kernel_size // 2).abs()
    src = torch.where(src >= size, 2 * (size - 1) - src, src)
    return torch.zeros(kernel_size, size * size).index_put_((taps, out * size + src), torch.tensor(1.0)).to(device)


def _blur_matrix(size: int, kernel: torch.Tensor) -> torch.Tensor:
    """(..., size, size) matrices of the 1-D blurs by (..., k) kernels with reflect padding:
    entry (i, j) sums the taps that reach j from i."""
    return torch.matmul(kernel, _blur_taps(size, kernel.shape[-1], kernel.device)).unflatten(-1, (size, size))


def gaussian_blur(img: torch.Tensor, kernel_size: tuple[int, int], sigma) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` of a float (..., C, H, W) image with an isotropic sigma
    (a float, or (N,) float32 sigmas, one per image of an (N, C, H, W) batch).

    Reflect padding by half the kernel and the 2-D Gaussian (the outer product of two 1-D
    ones) are both separable, so the blur is ``rows @ img @ cols^T`` with per-axis matrices
    that fold the padding in: equal to torchvision's 2-D convolution up to float rounding,
    and far cheaper than its depthwise k x k convolution (3x224x224, k = 23, one core:
    ~55 ms -> ~2.5 ms).
    """
    kx, ky = kernel_size
    h, w = img.shape[-2:]
    rows = _blur_matrix(h, _gaussian_kernel1d(ky, sigma, img.device))
    cols = _blur_matrix(w, _gaussian_kernel1d(kx, sigma, img.device))
    if isinstance(sigma, torch.Tensor):  # (N, size, size): the same blur for every channel of an image
        rows, cols = rows[:, None], cols[:, None]
    return torch.matmul(rows, img).matmul(cols.transpose(-1, -2))


class GaussianBlur(BatchableOp):
    """``v2.GaussianBlur(kernel_size, sigma)`` for float images: same arguments (checked by
    torchvision), same draw (one ``uniform_`` for sigma), separable `gaussian_blur`."""

    param_count = 1  # sigma

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        super().__init__()
        reference = v2.GaussianBlur(kernel_size, sigma)
        self.kernel_size, self.sigma = tuple(reference.kernel_size), tuple(reference.sigma)

    def draw(self, shape: tuple[int, ...]) -> tuple[float]:
        return (torch.empty(1).uniform_(self.sigma[0], self.sigma[1]).item(),)

    def apply(self, img: torch.Tensor, params) -> torch.Tensor:
        return gaussian_blur(img, self.kernel_size, float(params[0]))

    def apply_batch(self, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        sigma = params[:, 0].to(imgs.device, torch.float32)
        # Sigma 0 is RandomApply's placeholder for a blur it does not apply: any valid sigma will do.
        return gaussian_blur(imgs, self.kernel_size, torch.where(sigma > 0, sigma, 1.0))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}"


class UnitNormalize(torch.nn.Module):
    """float32 (C, H, W) or (N, C, H, W) in [0, 1] -> standardised per channel, on the image's
    device: the float counterpart of `Normalize`."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = _float32_values(mean), _float32_values(std)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not img.is_floating_point():
            raise TypeError(f"UnitNormalize expects float images in [0, 1], got {img.dtype}")
        scale, shift = standardisation(self.mean, self.std, 1.0, img.device)
        return torch.addcmul(shift, img, scale)


class FloatView(View):
    """A `View` whose first augmentation turns the uint8 image into float32 in [0, 1] (the
    resized crop); the other augmentations work on float and `normalize` is a `UnitNormalize`."""


def color_distortion(
    strength: float, jitter_prob: float = 0.8, gray_prob: float = 0.2, blur_prob: float = 0.0, image_size: int = 32, hue: float | None = None
):
    """SimCLR's colour distortion: jitter (0.8s, 0.8s, 0.8s, 0.2s) w.p. 0.8, greyscale w.p. 0.2, optional blur.
    `hue` (None: 0.2s) sets the hue jitter alone, e.g. Suave's light labeled view ColorJitter(0.1, 0.1, 0.1, 0.1).

    The ops take and return float images in [0, 1] (e.g. after `RandomResizedCropFloat`).
    """
    s = strength
    hue = 0.2 * s if hue is None else hue
    ops = [
        RandomApply([ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, hue)], p=jitter_prob),
        RandomGrayscale(p=gray_prob),
    ]
    if blur_prob > 0:
        kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # ~10% of the image, odd
        ops.append(RandomApply([GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_prob))
    return ops


def _default_blur(info) -> float:
    # SimCLR/SwAV blur on ImageNet-sized images; CIFAR recipes (SCAN, solo-learn) do not blur.
    return 0.0 if info.fixed_size else 0.5


def _crop_view(info, size: int, scale, strength: float, blur_prob: float, gray_prob: float = 0.2, hue: float | None = None) -> FloatView:
    """RandomResizedCrop(size, scale) + flip + colour distortion + normalisation, in float after the crop."""
    ops = [RandomResizedCropFloat(size, scale=scale), RandomHorizontalFlip()]
    ops += color_distortion(strength, gray_prob=gray_prob, blur_prob=blur_prob, image_size=size, hue=hue)
    return FloatView(ops, UnitNormalize(info.mean, info.std))


def simclr_view(
    info, crop_scale=None, strength: float = 0.5, blur_prob: float | None = None, gray_prob: float = 0.2, hue: float | None = None
) -> View:
    """RandomResizedCrop + flip + colour distortion (SCAN's CIFAR recipe: scale (0.2, 1), s=0.5).
    With strength 0.5 and no blur it is also Suave's Inception-style labeled view (jitter 0.4/0.4/0.4/0.1);
    strength 0.125, hue 0.1, no grey is its light fine-tuning view (jitter 0.1/0.1/0.1/0.1)."""
    crop_scale = tuple(crop_scale or ((0.2, 1.0) if info.fixed_size else (0.08, 1.0)))
    blur_prob = _default_blur(info) if blur_prob is None else blur_prob
    return _crop_view(info, info.image_size, crop_scale, strength, blur_prob, gray_prob, hue)


class MultiCrop(torch.nn.Module):
    """`num_global` large crops then `num_local` small crops, as a list of tensors."""

    def __init__(self, global_view: View, local_view: View, num_global: int, num_local: int):
        super().__init__()
        self.global_view, self.local_view = global_view, local_view
        self.num_global, self.num_local = num_global, num_local

    def output_views(self) -> list[View]:
        """The view behind each output, in output order (see `MultiView.plan`)."""
        return [self.global_view] * self.num_global + [self.local_view] * self.num_local

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        return [view(img) for view in self.output_views()]


def multicrop_view(
    info,
    num_global: int = 2,
    num_local: int = 6,
    global_size: int | None = None,
    local_size: int | None = None,
    global_scale=None,
    local_scale=None,
    strength: float = 1.0,
    blur_prob: float | None = None,
    gray_prob: float = 0.2,
) -> MultiCrop:
    """SwAV multi-crop. Defaults: ImageNet 2x224 (0.14, 1) + 96 px (0.05, 0.14);
    fixed-size data (Suave's CIFAR appendix) global (0.6, 1) + local (0.1, 0.6) at 18/32 of the size."""
    global_size = global_size or info.image_size
    if local_size is None:
        local_size = round(info.image_size * (18 / 32 if info.fixed_size else 96 / 224))
    global_scale = tuple(global_scale or ((0.6, 1.0) if info.fixed_size else (0.14, 1.0)))
    local_scale = tuple(local_scale or ((0.1, 0.6) if info.fixed_size else (0.05, 0.14)))
    blur_prob = _default_blur(info) if blur_prob is None else blur_prob
    return MultiCrop(
        _crop_view(info, global_size, global_scale, strength, blur_prob, gray_prob),
        _crop_view(info, local_size, local_scale, strength, blur_prob, gray_prob),
        num_global,
        num_local,
    )
