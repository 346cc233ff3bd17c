"""Initialise a network's backbone (and optionally more) from an sslzoo checkpoint or a plain state dict."""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from ..errors import ConfigError, ConfigFileNotFound

# Wrappers around the weights in the files we read: sslzoo methods keep the trained network
# under "network." (its backbone under "backbone.", a timm model under "backbone.model."),
# SwAV/DINO releases under "module."/"student." and "backbone.".
_WRAPPERS = ("network.", "module.", "student.", "backbone.", "model.")


def _core(key: str) -> str:
    """The key without any leading wrapper prefixes: "network.backbone.model.conv1.weight" -> "conv1.weight"."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPERS:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def read_torch_file(path: str, option: str, weights_only: bool):
    """torch.load, with a one-line ConfigError naming `option` for a truncated or foreign file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # truncated, not a torch file, or pickled objects
        reason = (str(err).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{option}: {path} could not be read ({type(err).__name__}: {reason}); pass a complete checkpoint") from err


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """The tensors of an sslzoo/Lightning checkpoint or of a (wrapped) state dict file."""
    if not Path(path).is_file():
        raise ConfigFileNotFound(f"init_from: {path} does not exist; point it at a checkpoint (.ckpt) or a saved state dict (.pt)")
    blob = read_torch_file(path, "init_from", weights_only=True)
    for key in ("state_dict", "model", "student"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
            break
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ConfigError(f"init_from: {path} holds no state dict of tensors")
    return blob


def init_from_checkpoint(network: nn.Module, path: str, parts: tuple[str, ...] = ("backbone",)) -> dict[str, list[str]]:
    """Copy the weights of `network`'s sub-modules `parts` (e.g. "backbone", "head.hidden")
    from `path`. Keys are matched after stripping wrapper prefixes on both sides (so an
    sslzoo checkpoint, a plain backbone state dict and SwAV/DINO/timm releases all fit);
    everything else in the file (prototypes, classifier heads, EMA copies) is ignored.
    Reports and returns the missing and the ignored keys; raises when nothing matches."""
    source = load_state_dict_file(path)
    wanted = {k: v for k, v in network.state_dict().items() if any(k == p or k.startswith(p + ".") for p in parts)}
    by_core = {_core(k): k for k in wanted}
    matched = {by_core[_core(k)]: v for k, v in source.items() if _core(k) in by_core}
    if not matched:
        raise ConfigError(
            f"init_from: no weight in {path} matches this network's {', '.join(parts)} "
            f"(first keys in the file: {', '.join(list(source)[:5])}); is it a checkpoint of the same backbone?"
        )
    mismatched = [k for k, v in matched.items() if v.shape != wanted[k].shape]
    if mismatched:
        raise ConfigError(f"init_from: shapes differ for {', '.join(mismatched[:5])}; the checkpoint has another backbone configuration")
    network.load_state_dict(matched, strict=False)
    report = {"loaded": sorted(matched), "missing": sorted(set(wanted) - set(matched)), "ignored": len(source) - len(matched)}
    rank_zero_info(
        f"init_from {path}: loaded {len(matched)} tensors into {', '.join(parts)}; "
        f"missing {len(report['missing'])}{': ' + ', '.join(report['missing'][:10]) if report['missing'] else ''}; "
        f"ignored {report['ignored']} other tensors in the file (e.g. prototypes, heads)"
    )
    return report
