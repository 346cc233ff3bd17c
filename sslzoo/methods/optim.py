"""Optimizers and per-step LR schedules shared by every method."""
from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..functional.schedules import SCHEDULES
from ..nets.options import check_options
from ..choices import check_choice, choices_of

OptimizerName = Literal["sgd", "lars", "adam", "adamw"]
SchedulerName = Literal[tuple(SCHEDULES)]
LRScaling = Literal["none", "linear", "sqrt"]
OPTIMIZERS = choices_of(OptimizerName)
LR_SCALINGS = choices_of(LRScaling)


def check_lr_scaling(rule: str, reference_batch: int | None) -> None:
    """Refuse an unknown rule, or a scaling rule without the batch the given lr was tuned for."""
    check_choice("lr_scaling", rule, LRScaling)
    if rule != "none" and (reference_batch is None or reference_batch <= 0):
        raise ConfigError(
            f"lr_scaling={rule!r} needs lr_reference_batch, the global batch the given lr was tuned for "
            f"(e.g. 64 for FixMatch's one GPU x 64 labeled images), got {reference_batch!r}; "
            "set --model.init_args.lr_reference_batch, or use lr_scaling: none"
        )


def scaled_lr(lr: float, rule: str, global_batch: int | None, reference_batch: int | None) -> float:
    """The learning rate for `global_batch`: lr x (global / reference) ("linear", Goyal et al. 2017),
    lr x sqrt(global / reference) ("sqrt"), or lr unchanged ("none")."""
    check_lr_scaling(rule, reference_batch)
    if rule == "none":
        return lr
    if global_batch is None or global_batch <= 0:
        raise ConfigError(f"lr_scaling={rule!r} needs the global batch, but it is unknown ({global_batch!r}); train with an sslzoo datamodule")
    ratio = global_batch / reference_batch
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))


def global_batch_size(trainer) -> int | None:
    """Labeled images per optimizer step over all processes: the datamodule's per-process
    batch x world size x accumulated batches (None without a datamodule that has a batch_size)."""
    per_process = getattr(getattr(trainer, "datamodule", None), "batch_size", None)
    if per_process is None:
        return None
    return int(per_process) * trainer.world_size * trainer.accumulate_grad_batches


def param_groups(modules: list[nn.Module], weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict]:
    """Weight decay on weights only: BatchNorm parameters and biases (1-D tensors) get none,
    as FixMatch's explicit L2 loss over conv/dense kernels does; `decay_norm_and_bias`
    decays everything (SimMatch's ImageNet code)."""
    decay, no_decay = [], []
    seen = set()
    for module in modules:
        for param in module.parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if param.ndim <= 1 and not decay_norm_and_bias else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# timm Lars options. Defaults are SwAV/Suave's LARS (suave/main_suave.py LARS(eta=0.001), no clipping):
# every parameter gets the trust ratio; timm's own always_adapt=False would leave no-decay groups
# (BN, biases) at plain SGD with LARS's large lr. solo-learn's CIFAR SwAV (eta 0.02, clip_lr,
# exclude_bias_n_norm) is {trust_coeff: 0.02, trust_clip: true, always_adapt: false} with
# decay_norm_and_bias off: BN and biases then get neither decay nor the trust ratio.
LARS_DEFAULTS = {"trust_coeff": 0.001, "trust_clip": False, "always_adapt": True}


def check_lars_options(name: str, lars_options: dict | None) -> None:
    """lars_options only with optimizer 'lars', and only `LARS_DEFAULTS`' keys."""
    if lars_options and name != "lars":
        raise ConfigError(f"lars_options are for optimizer 'lars', not {name!r}; remove them or use optimizer: lars")
    check_options("lars_options", lars_options or {}, list(LARS_DEFAULTS))


def build_optimizer(
    groups: list[dict], name: str, lr: float, momentum: float = 0.9, nesterov: bool = True, lars_options: dict | None = None
) -> torch.optim.Optimizer:
    check_choice("optimizer", name, OptimizerName)
    check_lars_options(name, lars_options)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=lr, momentum=momentum, **{**LARS_DEFAULTS, **(lars_options or {})})
    if name == "adam":  # L2 decay added to the gradient (SCAN's Adam, wd 1e-4), unlike AdamW's decoupled decay
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer, name: str, total_steps: int, warmup_steps: int = 0, final_lr_fraction: float = 0.0, decay_start: float = 0.0):
    check_choice("scheduler", name, SchedulerName)
    schedule = SCHEDULES[name]
    if name == "warmup_cosine":
        schedule = functools.partial(schedule, warmup_steps=warmup_steps, final_fraction=final_lr_fraction)
    elif name == "linear_decay":
        schedule = functools.partial(schedule, decay_start=decay_start)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step, total_steps))
