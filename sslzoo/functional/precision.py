"""Numerically sensitive math in float32 under mixed precision.

Under `--trainer.precision bf16-mixed` (or 16-mixed) the networks run inside
`torch.autocast`, so their outputs are bfloat16/float16 and matmuls inside a loss would
be too. bf16 keeps 8 bits of mantissa: a softmax over logits divided by a temperature of
0.04-0.1, a Sinkhorn iteration in log space or a threshold of 0.95 on a probability are
visibly off in it. Every function decorated with `float32` runs with autocast switched off
and its 16-bit floating-point tensor arguments (also inside lists, tuples and dicts)
upcast to float32; float32 and float64 arguments are left as they are, so float32 runs are
unchanged. Gradients flow back through the casts to the 16-bit activations.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, TypeVar

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)
F = TypeVar("F", bound=Callable)


def upcast(value: Any) -> Any:
    """`value` with every float16/bfloat16 tensor in it (also in lists, tuples, dicts) cast to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in LOW_PRECISION else value
    if isinstance(value, (list, tuple)):
        items = [upcast(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {key: upcast(item) for key, item in value.items()}
    return value


def _device_types(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, torch.Tensor):
        found.add(value.device.type)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _device_types(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _device_types(item, found)
    return found


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else device_type == "cuda" and torch.is_autocast_enabled()


@contextlib.contextmanager
def autocast_disabled(*values: Any):
    """Switch autocast off for the device types of the tensors in `values` (and the CPU)."""
    with contextlib.ExitStack() as stack:
        for device_type in sorted(_device_types(values, {"cpu"})):
            if _autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def float32(function: F) -> F:
    """Run `function` in float32 under autocast (see the module docstring). The undecorated
    function stays reachable as `function.__wrapped__`."""

    @functools.wraps(function)
    def in_float32(*args, **kwargs):
        with autocast_disabled(args, kwargs):
            return function(*upcast(args), **upcast(kwargs))

    in_float32.computes_in_float32 = True
    return in_float32  # type: ignore[return-value]
