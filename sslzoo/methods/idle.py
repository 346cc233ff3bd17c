"""Parameters a training step leaves unused (a phase's idle head), made harmless under DDP."""
from __future__ import annotations

import torch
from torch import nn


class IdleParameters:
    """DDP (without `find_unused_parameters`) needs every parameter in every step's graph, while
    one process leaves an unused parameter's gradient None, which every optimizer skips (no weight
    decay, no momentum). `use(modules)` returns a zero-weight term over the modules' parameters, to
    add to the loss: their gradient becomes 0, so every process reduces every gradient. Before the
    optimizer step, `drop_gradients()` sets the gradient of each parameter left idle by every
    micro-batch since the last step back to None, which gives the one-process update exactly.
    The idle modules must be the same on every process (a function of the epoch, or of an
    all-reduced flag)."""

    def __init__(self):
        self._idle: dict[int, nn.Parameter] | None = None  # since the last optimizer step; None: no step yet

    def use(self, modules: list[nn.Module]) -> torch.Tensor | None:
        params = {id(p): p for module in modules for p in module.parameters() if p.requires_grad}
        self._idle = params if self._idle is None else {k: p for k, p in self._idle.items() if k in params}
        if not params:
            return None
        return torch.stack([p.sum() for p in params.values()]).sum() * 0.0

    def drop_gradients(self) -> None:
        for param in (self._idle or {}).values():
            param.grad = None
        self._idle = None
