from __future__ import annotations

import torch


class Normalize(torch.nn.Module):
    """uint8 (C, H, W) in [0, 255] -> float32 standardised per channel, in one fused op."""

    def __init__(self, mean, std):
        super().__init__()
        std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
        mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            raise TypeError(f"views expect uint8 images, got {img.dtype}")
        return torch.addcmul(self.shift, img.float(), self.scale)
