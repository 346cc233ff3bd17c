"""MixUp / CutMix in Suave's "extend" mode: mixed copies are appended to the batch, not swapped in."""
from __future__ import annotations

import torch
from scipy.special import betaincinv


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """A box of area ~(1 - lam) H W centred uniformly at random, clipped to the image
    (timm's `rand_bbox`, drawn from a torch generator so it resumes and does not touch numpy's RNG)."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def mix_pair(
    first: torch.Tensor, second: torch.Tensor, generator: torch.Generator, alpha: float = 1.0, switch_prob: float = 0.5
) -> tuple[torch.Tensor, float]:
    """Mix two batches of images with one lam per batch: CutMix with probability
    `switch_prob`, else MixUp, lam ~ Beta(alpha, alpha). For CutMix lam is corrected to the
    pasted area (timm's `correct_lam`). Returns (mixed, lam): mixed = lam first + (1 - lam) second."""
    # Beta by inverse CDF of a uniform from `generator` (torch's Beta sampler takes no generator).
    lam = float(betaincinv(alpha, alpha, float(torch.rand((), generator=generator, dtype=torch.float64))))
    if float(torch.rand((), generator=generator)) < switch_prob:
        top, bottom, left, right = cutmix_box(first.shape[-2], first.shape[-1], lam, generator)
        mixed = first.clone()
        mixed[..., top:bottom, left:right] = second[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (first.shape[-2] * first.shape[-1])
        return mixed, lam
    return torch.lerp(second, first, lam), lam


def extend_with_mix(
    images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, alpha: float = 1.0, switch_prob: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """[images; mix(images, images.flip(0))] with soft targets [targets; lam t + (1 - lam) t.flip(0)]."""
    mixed, lam = mix_pair(images, images.flip(0), generator, alpha, switch_prob)
    return torch.cat([images, mixed]), torch.cat([targets, torch.lerp(targets.flip(0), targets, lam)])
