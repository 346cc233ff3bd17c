from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def _scale_and_shift(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 / (255 std), -mean / std) as float32 (C, 1, 1), computed on the CPU and copied to `device`."""
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    return (1.0 / (255.0 * std_t)).to(device), (-mean_t / std_t).to(device)


def _float32_values(values) -> tuple[float, ...]:
    return tuple(torch.as_tensor(values, dtype=torch.float32).reshape(-1).tolist())


class Normalize(torch.nn.Module):
    """uint8 (C, H, W) or (N, C, H, W) in [0, 255] -> float32 standardised per channel, in one
    fused op, on the image's device."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = _float32_values(mean), _float32_values(std)
        self.scale, self.shift = _scale_and_shift(self.mean, self.std, torch.device("cpu"))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            raise TypeError(f"views expect uint8 images, got {img.dtype}")
        scale, shift = _scale_and_shift(self.mean, self.std, img.device)
        return torch.addcmul(shift, img.float(), scale)
