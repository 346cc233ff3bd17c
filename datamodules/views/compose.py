from __future__ import annotations

import torch


class View(torch.nn.Module):
    """A sequence of uint8 -> uint8 augmentations followed by normalisation."""

    def __init__(self, augmentations, normalize):
        super().__init__()
        self.augmentations = torch.nn.ModuleList(augmentations)
        self.normalize = normalize

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        for op in self.augmentations:
            img = op(img)
        return self.normalize(img)


class MultiView(torch.nn.Module):
    """Applies several views to one image.

    Returns a tensor when there is exactly one output, else the flat list of
    outputs in request order (a multi-crop view contributes all its crops).
    """

    def __init__(self, views):
        super().__init__()
        self.views = torch.nn.ModuleList(views)

    def forward(self, img: torch.Tensor):
        outputs = []
        for view in self.views:
            out = view(img)
            outputs.extend(out if isinstance(out, list) else [out])
        return outputs[0] if len(outputs) == 1 else outputs
