"""CTAugment (FixMatch's other strong policy; ReMixMatch Sec. 3.2.2), as `google-research/fixmatch`
`libml/ctaugment.py` with the flags of `cta/lib/train.py` (depth 2, threshold 0.8, decay 0.99) and
`fixmatch.py::AugmentPoolCTACutOut` (strong images end with cutout at level 1).

The policy: each of the 19 ops has one rate vector per magnitude argument (17 bins; posterize 8;
rescale 17 + 6 resampling methods; identity none). An image gets `depth` ops drawn uniformly;
each argument's bin is drawn with p = rate + (1 - decay), divided by its max, zeroed below the
threshold and renormalised, and the value is (bin + U[0, 1)) / bins. A labeled *probe* image gets
uniform values instead; the model's proximity on it, 1 - |softmax(x) - onehot(y)|_1 / 2, then moves
each bin it used: rate <- decay * rate + (1 - decay) * proximity (`update_rates`).

Where the state lives (resume, DDP, DataLoader workers):
- `CTAugmentRates` is an nn.Module owned by the method: its rates are a persistent buffer, so a
  checkpoint resumes them. The method applies every probe of the global batch (all-gathered in rank
  order) in the same order on every process, so the rates are identical on every rank.
- After each update the method `publish()`es the rates into one shared-memory tensor per process
  (`shared_rates()`). The views hold that tensor; DataLoader workers (forked, or spawned: torch
  pickles a shared tensor as a handle) read the live values each time they draw a policy. Images are
  prepared ahead (the loader's prefetch), so a strong image uses rates a few steps old, as the
  official pool that queues 4 batches ahead. (SSClustering refreshes its workers' copy once per
  epoch; the rates themselves follow the same rule.)

Ops run on PIL images, as the reference. `translate_x/y` shift by +-0.3 *pixels* (PIL's affine
offset is in pixels), so they barely move the image: kept for fidelity (spec pitfall 10).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from .compose import View
from .geometry import random_crop_geometry
from .normalize import Normalize

DEPTH, THRESHOLD, DECAY = 2, 0.8, 0.99  # cta/lib/train.py: adepth, ath, adecay
MAX_ARGS = 2  # rescale takes (scale, method)


# ---- the ops (libml/ctaugment.py, `@register(bins)`), each f(PIL image, *values in [0, 1]) ----
def _enhance(enhancer, level):
    return lambda x: enhancer(x).enhance(0.1 + 1.9 * level)


def _blend(x, y, level):
    return Image.blend(x, y, level)


def _cutout(x: Image.Image, level: float) -> Image.Image:
    """A gray (127) square of side ~ level * min(size) / 2 at a uniform centre, clipped."""
    size = 1 + int(level * min(x.size) * 0.499)
    width, height = x.size
    cx, cy = int(torch.randint(width, ())), int(torch.randint(height, ()))
    x = x.copy()
    x.paste((127,) * len(x.getbands()) if len(x.getbands()) > 1 else 127,
            (max(0, cx - size // 2), max(0, cy - size // 2), min(width, cx + size // 2), min(height, cy + size // 2)))
    return x


_RESCALE_METHODS = (Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.BILINEAR,
                    Image.Resampling.BOX, Image.Resampling.HAMMING, Image.Resampling.NEAREST)  # ANTIALIAS = LANCZOS


def _rescale(x, scale, method):
    w, h = x.size
    scale *= 0.25
    box = (scale * w, scale * h, w * (1 - scale), h * (1 - scale))
    return x.crop(box).resize(x.size, _RESCALE_METHODS[int(method * 5.99)])


def _affine(coefficients):
    return lambda x: x.transform(x.size, Image.Transform.AFFINE, coefficients)


OPS: tuple[tuple[str, tuple[int, ...], callable], ...] = (  # registration order of libml/ctaugment.py
    ("autocontrast", (17,), lambda x, v: _blend(x, ImageOps.autocontrast(x), v)),
    ("blur", (17,), lambda x, v: _blend(x, x.filter(ImageFilter.BLUR), v)),
    ("brightness", (17,), lambda x, v: _enhance(ImageEnhance.Brightness, v)(x)),
    ("color", (17,), lambda x, v: _enhance(ImageEnhance.Color, v)(x)),
    ("contrast", (17,), lambda x, v: _enhance(ImageEnhance.Contrast, v)(x)),
    ("cutout", (17,), _cutout),
    ("equalize", (17,), lambda x, v: _blend(x, ImageOps.equalize(x), v)),
    ("invert", (17,), lambda x, v: _blend(x, ImageOps.invert(x), v)),
    ("identity", (), lambda x: x),
    ("posterize", (8,), lambda x, v: ImageOps.posterize(x, 1 + int(v * 7.999))),
    ("rescale", (17, 6), _rescale),
    ("rotate", (17,), lambda x, v: x.rotate(int(np.round((2 * v - 1) * 45)))),
    ("sharpness", (17,), lambda x, v: _enhance(ImageEnhance.Sharpness, v)(x)),
    ("shear_x", (17,), lambda x, v: _affine((1, (2 * v - 1) * 0.3, 0, 0, 1, 0))(x)),
    ("shear_y", (17,), lambda x, v: _affine((1, 0, 0, (2 * v - 1) * 0.3, 1, 0))(x)),
    ("smooth", (17,), lambda x, v: _blend(x, x.filter(ImageFilter.SMOOTH), v)),
    ("solarize", (17,), lambda x, v: ImageOps.solarize(x, int(v * 255.999))),
    ("translate_x", (17,), lambda x, v: _affine((1, 0, (2 * v - 1) * 0.3, 0, 1, 0))(x)),
    ("translate_y", (17,), lambda x, v: _affine((1, 0, 0, 0, 1, (2 * v - 1) * 0.3))(x)),
)
OP_NAMES = tuple(name for name, _, _ in OPS)
CUTOUT = OP_NAMES.index("cutout")


def _offsets() -> list[list[int]]:
    """Start of each (op, argument) rate vector in the flat rates tensor."""
    offsets, start = [], 0
    for _, bins, _ in OPS:
        offsets.append([start + sum(bins[:j]) for j in range(len(bins))])
        start += sum(bins)
    return offsets


OFFSETS = _offsets()
NUM_RATES = sum(sum(bins) for _, bins, _ in OPS)  # 303


def bin_of(value: float, bins: int) -> int:
    """The bin a value in [0, 1) falls in (`int(p * len(rate) * 0.999)`)."""
    return int(value * bins * 0.999)


def rate_to_probabilities(rate: torch.Tensor, decay: float = DECAY, threshold: float = THRESHOLD) -> torch.Tensor:
    """`rate_to_p`: (rate + 1 - decay) / max, zero below the threshold, normalised to sum 1."""
    p = rate.double() + (1 - decay)
    p = p / p.max()
    p[p < threshold] = 0
    return p / p.sum()


# ---- the policy: a [depth, 1 + MAX_ARGS] float tensor of (op index, value, value), -1 = unused ----
def sample_policy(rates: torch.Tensor, probe: bool, depth: int = DEPTH, decay: float = DECAY, threshold: float = THRESHOLD) -> torch.Tensor:
    """`CTAugment.policy(probe)`: `depth` ops drawn uniformly; probe values uniform, else drawn from the rates."""
    policy = torch.full((depth, 1 + MAX_ARGS), -1.0)
    for slot in range(depth):
        op = int(torch.randint(len(OPS), ()))
        bins = OPS[op][1]
        policy[slot, 0] = op
        for j, n in enumerate(bins):
            u = float(torch.rand(()))
            if probe:
                policy[slot, 1 + j] = u
            else:
                p = rate_to_probabilities(rates[OFFSETS[op][j]:OFFSETS[op][j] + n], decay, threshold)
                policy[slot, 1 + j] = (int(torch.multinomial(p, 1)) + u) / n
    return policy


def apply_policy(img: Image.Image, policy: torch.Tensor) -> Image.Image:
    for row in policy.tolist():
        op = int(row[0])
        img = OPS[op][2](img, *row[1:1 + len(OPS[op][1])])
    return img


def update_rates(rates: torch.Tensor, policies: torch.Tensor, proximities: torch.Tensor, decay: float = DECAY) -> torch.Tensor:
    """`update_rates`, probe after probe in order: every bin a probe used moves towards its
    proximity, rate <- decay * rate + (1 - decay) * proximity. Returns the new rates."""
    flat = rates.detach().double().cpu().numpy().copy()
    for policy, proximity in zip(policies.tolist(), proximities.tolist()):
        for row in policy:
            op = int(row[0])
            if op < 0:
                continue
            for j, n in enumerate(OPS[op][1]):
                index = OFFSETS[op][j] + bin_of(row[1 + j], n)
                flat[index] = flat[index] * decay + proximity * (1 - decay)
    return torch.from_numpy(flat).to(rates)


def probe_proximity(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - |softmax - onehot(y)|_1 / 2 (`cta/lib/train.py::train_step`), one per probe."""
    error = probs.double().clone()
    error[torch.arange(len(labels), device=error.device), labels.to(error.device)] -= 1
    return 1 - 0.5 * error.abs().sum(dim=1)


# ---- state: checkpointed on the method, shared with the loaders' workers ----
_SHARED_RATES: torch.Tensor | None = None


def shared_rates() -> torch.Tensor:
    """This process's shared-memory rates, which every CTAugment view reads (ones until published)."""
    global _SHARED_RATES
    if _SHARED_RATES is None:
        _SHARED_RATES = torch.ones(NUM_RATES).share_memory_()
    return _SHARED_RATES


class CTAugmentRates(torch.nn.Module):
    """The learned rates (a persistent buffer, all ones at the start, `np.ones(x, 'f')`)."""

    def __init__(self, decay: float = DECAY):
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError(f"CTAugment decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("rates", torch.ones(NUM_RATES))

    @torch.no_grad()
    def update(self, policies: torch.Tensor, proximities: torch.Tensor) -> None:
        """Apply these probes (the global batch, in the same order on every process) and publish."""
        if policies.shape[1:] != (policies.shape[1], 1 + MAX_ARGS) or len(policies) != len(proximities):
            raise ValueError(f"policies must be [N, depth, {1 + MAX_ARGS}] with one proximity each, got {tuple(policies.shape)} and {tuple(proximities.shape)}")
        self.rates.copy_(update_rates(self.rates, policies, proximities, self.decay))
        self.publish()

    def publish(self) -> None:
        shared_rates().copy_(self.rates.detach().cpu())

    def probabilities(self) -> dict[str, list[torch.Tensor]]:
        """Each op's bin probabilities (`CTAugment.stats`), for logging."""
        return {name: [rate_to_probabilities(self.rates[o:o + n].cpu(), self.decay) for o, n in zip(OFFSETS[i], bins)]
                for i, (name, bins, _) in enumerate(OPS)}


# ---- the views ----
def _to_pil(img: torch.Tensor) -> Image.Image:
    array = img.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def _to_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img)
    return torch.from_numpy(array.copy()).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1).contiguous()


class CTAugment(torch.nn.Module):
    """uint8 (C, H, W) -> uint8: `depth` ops from the shared rates, then cutout at level 1 (`probe=False`);
    with `probe=True` returns (image, policy) with uniform magnitudes and no cutout."""

    def __init__(self, probe: bool = False, depth: int = DEPTH, threshold: float = THRESHOLD, decay: float = DECAY):
        super().__init__()
        if depth < 1 or not 0 < threshold <= 1:
            raise ValueError(f"CTAugment needs depth >= 1 and threshold in (0, 1], got depth={depth}, threshold={threshold}")
        self.probe, self.depth, self.threshold, self.decay = probe, depth, threshold, decay
        self.rates = shared_rates()

    def forward(self, img: torch.Tensor):
        policy = sample_policy(self.rates.clone(), self.probe, self.depth, self.decay, self.threshold)
        out = apply_policy(_to_pil(img), policy)
        if self.probe:
            return _to_tensor(out), policy
        return _to_tensor(_cutout(out, 1.0))


class ProbeView(torch.nn.Module):
    """A labeled probe: (normalised image, its policy [depth, 3])."""

    def __init__(self, geometry, augment: CTAugment, normalize: Normalize):
        super().__init__()
        self.geometry = torch.nn.ModuleList(geometry)
        self.augment, self.normalize = augment, normalize

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for op in self.geometry:
            img = op(img)
        img, policy = self.augment(img)
        return self.normalize(img), policy


def ctaugment_view(info, hflip: bool | None = None, translate: float = 0.125, depth: int = DEPTH, threshold: float = THRESHOLD) -> View:
    """FixMatch's CTA strong view: the weak geometry (flip, 12.5% translation), CTAugment, cutout."""
    return View(random_crop_geometry(info, hflip, translate) + [CTAugment(False, depth, threshold)], Normalize(info.mean, info.std))


def cta_probe_view(info, hflip: bool | None = None, translate: float = 0.125, depth: int = DEPTH) -> ProbeView:
    """The labeled probe that trains the rates: weak geometry, then CTAugment with uniform magnitudes."""
    return ProbeView(random_crop_geometry(info, hflip, translate), CTAugment(True, depth), Normalize(info.mean, info.std))


__all__ = ["CTAugmentRates", "NUM_RATES", "OPS", "ctaugment_view", "cta_probe_view", "probe_proximity", "rate_to_probabilities",
           "sample_policy", "shared_rates", "update_rates"]
