from __future__ import annotations

import functools

import torch

_CPU = torch.device("cpu")


@functools.lru_cache(maxsize=64)
def standardisation(mean: tuple[float, ...], std: tuple[float, ...], pixel_range: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 / (pixel_range std), -mean / std) as float32 (C, 1, 1), computed on the CPU and copied to
    `device`: x * scale + shift standardises pixels in [0, pixel_range] (255: uint8, 1: float)."""
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    return (1.0 / (pixel_range * std_t)).to(device), (-mean_t / std_t).to(device)


@functools.lru_cache(maxsize=64)
def _value_table(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """(C, 256): the CPU's output for every uint8 value in every channel, on `device`."""
    scale, shift = standardisation(mean, std, 255.0, _CPU)
    values = torch.arange(256, dtype=torch.float32).view(1, 1, 256)
    return torch.addcmul(shift, values, scale).view(-1, 256).to(device)


def _float32_values(values) -> tuple[float, ...]:
    return tuple(torch.as_tensor(values, dtype=torch.float32).reshape(-1).tolist())


class Normalize(torch.nn.Module):
    """uint8 (C, H, W) or (N, C, H, W) in [0, 255] -> float32 standardised per channel.

    On the CPU one fused op; on other devices a lookup of the CPU's result for each value, so
    that a batch finished on an accelerator equals the per-item path bit for bit (a device's
    fused multiply-add may round differently).
    """

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = _float32_values(mean), _float32_values(std)
        self.scale, self.shift = standardisation(self.mean, self.std, 255.0, _CPU)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            raise TypeError(f"views expect uint8 images, got {img.dtype}")
        if img.device == _CPU:
            return torch.addcmul(self.shift, img.float(), self.scale)
        return self._lookup(img)

    def _lookup(self, img: torch.Tensor) -> torch.Tensor:
        channels = img.shape[-3]
        table = _value_table(self.mean, self.std, img.device).expand(channels, 256)  # one mean/std: every channel
        offsets = torch.arange(0, 256 * channels, 256, device=img.device).view(channels, 1, 1)
        return table.reshape(-1).take(img.long() + offsets)
