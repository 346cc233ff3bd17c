"""Boosted SSL's epoch schedule: RotNet warm-up, then rounds of SSL epochs and a clustering phase.

Follows `SSClustering/train.py::SSClusteringRunner.train` with the published flags
(`scripts/cifar10.sh`: `--us_rotnet_epoch`, defaults `--us_epochs 1`, no `--us_first`).
"""
from __future__ import annotations

PHASES = ("warmup", "ssl", "rotnet", "clustering")


def round_length(ssl_epochs: int, rotnet: bool = True) -> int:
    """Epochs per round: the SSL epochs, one RotNet epoch (if rotnet) and one clustering epoch."""
    return ssl_epochs + (2 if rotnet else 1)


def boosted_phase(epoch: int, warmup_epochs: int, ssl_epochs: int, rotnet: bool = True) -> tuple[str, int]:
    """(phase, round) of the 0-based `epoch`.

    - Epochs [0, warmup_epochs) are "warmup": full epochs of **RotNet only** (4 rotations
      per image, cross-entropy on the rotation head) with the clustering optimiser
      (`rotnet_start_epochs`, 20 by default, 0 for SVHN); round -1.
    - Then round i = 0, 1, ... (the code's `iterations`, 200) is `ssl_epochs` "ssl" epochs
      (FixMatch; `s_epochs` 10 for CIFAR-10, 5 for SVHN/STL-10), then one "rotnet" epoch
      (a full RotNet epoch, `--us_rotnet_epoch`; left out when rotnet=False, as for SVHN)
      and one "clustering" epoch (a full pass of `clustering_batch` steps). Warm-up,
      rotnet and clustering epochs all use the clustering optimiser (`us_optim`), whose
      MultiStepLR steps once per round, at the end of the clustering epoch (warm-up and
      RotNet epochs do not step it).

    `rotnet` only controls the per-round RotNet epoch; a RotNet-free run also passes
    warmup_epochs=0 (the code's two flags are independent too).
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if warmup_epochs < 0 or ssl_epochs < 0:
        raise ValueError(f"warmup_epochs and ssl_epochs must be >= 0, got {warmup_epochs} and {ssl_epochs}")
    if epoch < warmup_epochs:
        return "warmup", -1
    round_index, offset = divmod(epoch - warmup_epochs, round_length(ssl_epochs, rotnet))
    if offset < ssl_epochs:
        return "ssl", round_index
    if rotnet and offset == ssl_epochs:
        return "rotnet", round_index
    return "clustering", round_index


def boosted_total_epochs(rounds: int, warmup_epochs: int, ssl_epochs: int, rotnet: bool = True) -> int:
    """Epochs of a whole run: the warm-up plus `rounds` rounds (200 in the paper)."""
    return warmup_epochs + rounds * round_length(ssl_epochs, rotnet)
