"""An exponential-moving-average copy of a network (EMA teacher / EMA evaluation weights)."""
from __future__ import annotations

import copy

import torch
from torch import nn

BUFFER_MODES = ("average", "copy", "own")


class EMA(nn.Module):
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, with torch._foreach ops.

    The averaged network is a submodule, so it is saved in and restored from
    checkpoints; `num_updates` counts the updates, which lets a method apply
    exactly one update per optimizer step (not per micro-batch) and resume.

    Buffers (BatchNorm statistics):
      "average" - averaged like the parameters;
      "copy"    - copied from the student, so the EMA network uses the live statistics (FixMatch's
                  TF code averages the trainable variables only; USB; SSClustering at epoch end);
      "own"     - left to the teacher's own forward passes (Mean Teacher, whose
                  teacher runs in train mode and keeps its own statistics).
    Integer buffers (num_batches_tracked) are always copied in "average" mode.
    """

    def __init__(self, network: nn.Module, decay: float, buffers: str = "average"):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        if buffers not in BUFFER_MODES:
            raise ValueError(f"buffers must be one of {BUFFER_MODES}, got {buffers!r}")
        self.decay = decay
        self.buffer_mode = buffers
        self.module = copy.deepcopy(network)
        self.module.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, network: nn.Module, decay: float | None = None) -> None:
        weight = 1.0 - (self.decay if decay is None else decay)
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in network.parameters()]
        if len(ema_params) != len(params):
            raise RuntimeError("the EMA copy and the network have different parameters")
        torch._foreach_lerp_(ema_params, params, weight)
        if self.buffer_mode != "own":
            ema_float, float_buffers, ema_other, other = [], [], [], []
            for ema_buf, buf in zip(self.module.buffers(), network.buffers()):
                if self.buffer_mode == "average" and ema_buf.is_floating_point():
                    ema_float.append(ema_buf)
                    float_buffers.append(buf)
                else:
                    ema_other.append(ema_buf)
                    other.append(buf)
            if ema_float:
                torch._foreach_lerp_(ema_float, float_buffers, weight)
            if ema_other:
                torch._foreach_copy_(ema_other, other)
        self.num_updates += 1
