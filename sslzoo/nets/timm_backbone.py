"""Any timm model as a feature extractor: `timm.create_model(name, num_classes=0)`."""

from __future__ import annotations

import difflib
import inspect
import typing
from pathlib import Path

import torch
from torch import nn

from sslzoo.errors import ConfigError, ConfigFileNotFound

# Names timm reads from elsewhere (the Hugging Face hub, a local folder): not in its registry.
EXTERNAL_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


def check_timm_name(model_name: str) -> None:
    """Refuse a name timm does not know (from its registry, without network), with the close ones."""
    import timm

    if model_name.startswith(EXTERNAL_PREFIXES) or timm.is_model(model_name):
        return
    close = difflib.get_close_matches(model_name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"close names: {', '.join(close)}" if close else "see timm.list_models() for the names"
    raise ConfigError(f"timm has no model {model_name!r}; {hint}")


def timm_takes_img_size(model_name: str) -> bool:
    """Whether the model class of timm's `model_name` takes `img_size` (ViTs and the like), read
    from its registered constructor's return type; False when timm does not say."""
    from timm.models import _registry

    if model_name.startswith(EXTERNAL_PREFIXES):
        return False
    entrypoint = _registry.model_entrypoint(model_name)
    try:
        model_class = typing.get_type_hints(entrypoint).get("return")
    except Exception:  # an annotation timm's module cannot resolve
        return False
    return inspect.isclass(model_class) and "img_size" in inspect.signature(model_class).parameters


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
                raise ConfigFileNotFound(
                    f"checkpoint_path {str(checkpoint_path)!r} for timm model {model_name!r} is not a file"
                )
            pretrained = True
            overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
            kwargs["pretrained_cfg_overlay"] = {**overlay, "file": str(checkpoint_path)}
        try:
            self.model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kwargs)
        except TypeError as error:
            if "unexpected keyword argument" not in str(error):
                raise
            raise ConfigError(f"timm model {model_name!r} does not take one of backbone_options {sorted(kwargs)} ({error})") from error
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
