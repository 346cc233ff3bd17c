"""Any timm model as a feature extractor: `timm.create_model(name, num_classes=0)`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TimmBackbone(nn.Module):
    """A timm model without its classifier; forward gives its pooled pre-logits (N, feature_dim).

    Extra keyword arguments go to `timm.create_model` (e.g. `img_size`, `patch_size`,
    `drop_path_rate`). Pretrained weights: `pretrained=True` downloads them from the Hugging Face
    hub, which needs network access; `checkpoint_path` loads a local timm checkpoint instead
    (through timm's `pretrained_cfg_overlay=dict(file=...)`, so classifier and input-channel
    adaptation still apply).
    """

    def __init__(
        self,
        model_name: str,
        pretrained: bool = False,
        checkpoint_path: str | Path | None = None,
        **kwargs,
    ):
        super().__init__()
        import timm  # imported here: it takes seconds and only timm backbones need it

        if checkpoint_path is not None:
            checkpoint_path = Path(checkpoint_path).expanduser()
            if not checkpoint_path.is_file():
                raise FileNotFoundError(
                    f"checkpoint_path {str(checkpoint_path)!r} for timm model {model_name!r} is not a file"
                )
            pretrained = True
            overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
            kwargs["pretrained_cfg_overlay"] = {**overlay, "file": str(checkpoint_path)}
        try:
            self.model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kwargs)
        except OSError as error:
            if not pretrained or checkpoint_path is not None:
                raise
            raise RuntimeError(
                f"Could not fetch the pretrained weights of timm model {model_name!r}: the Hugging Face "
                f"hub (or the weights URL) is unreachable from this machine ({error}). Download the "
                f"checkpoint where there is network access and pass it as checkpoint_path=..., "
                f"or use pretrained=False."
            ) from error
        # Models with a pre-logits MLP (e.g. MobileNetV3) output head_hidden_size, not num_features.
        self.feature_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
