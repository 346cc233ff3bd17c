"""Synchronised BatchNorm on any device, for `Trainer(sync_batchnorm=True)`.

torch's `SyncBatchNorm` only runs on GPUs (its forward refuses CPU tensors and DDP refuses it
in a CPU module), so Lightning's `sync_batchnorm` cannot train on CPU processes (gloo). The
`SyncBatchNormAnyDevice` plugin keeps torch's layer on GPUs and uses `ProcessGroupBatchNorm`
elsewhere. Both give, in training mode, the statistics of the whole batch over all processes.
"""
from __future__ import annotations

import torch
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm, _BatchNormXd
from torch import nn

from ..functional.precision import float32
from .distributed import world_size


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes; its backward sums the gradients too, so every process's input gets
    the gradient of the loss summed over processes (which DDP then averages)."""
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)


class ProcessGroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training mean and variance are over the rows of every process (two
    passes: the mean, then the squared deviations), with gradients through both all-reduces,
    so N processes train as one process with the concatenated batch. The running statistics
    take the unbiased variance of the global batch, as torch's layers do. State-dict keys are
    those of BatchNorm. In eval mode, or in one process, it is plain BatchNorm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (N, C, ...), got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        return self.global_batch_norm(input).to(input.dtype)

    @float32  # statistics in float32 under bf16 autocast, as BatchNorm keeps them
    def global_batch_norm(self, input: torch.Tensor) -> torch.Tensor:
        """Training-mode BatchNorm over the rows of every process; updates the running statistics."""
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = _all_reduce_sum(input.new_tensor(float(input.numel() // input.shape[1])))
        mean = _all_reduce_sum(input.sum(dims)) / count
        centred = input - mean.view(shape)
        var = _all_reduce_sum((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(var * count / (count - 1).clamp_min(1), factor)

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm layer of `module` (in place where possible) by this class, keeping its state."""
        converted = module
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, (cls, nn.SyncBatchNorm)):
            converted = _with_state_of(module, cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats))
        for name, child in module.named_children():
            converted.add_module(name, cls.convert(child))
        return converted


def _with_state_of(old: nn.Module, new: nn.Module) -> nn.Module:
    """`new` BatchNorm takes `old`'s statistics, mode and (shared) affine parameters."""
    new.load_state_dict(old.state_dict())
    new.train(old.training)
    if old.affine:
        new.weight, new.bias = old.weight, old.bias
    return new


class SyncBatchNormAnyDevice(TorchSyncBatchNorm):
    """Lightning's `sync_batchnorm` layer plugin, on CPU too: torch's SyncBatchNorm for a model on a
    GPU, `ProcessGroupBatchNorm` otherwise (e.g. CPU processes with gloo). Pass it with
    `Trainer(sync_batchnorm=True, plugins=[SyncBatchNormAnyDevice()])` (Lightning allows this
    subclass next to the flag)."""

    def apply(self, model: nn.Module) -> nn.Module:
        first = next(iter(model.parameters()), None)
        if first is not None and first.device.type == "cpu":
            return ProcessGroupBatchNorm.convert(model)
        return super().apply(model)

    def revert(self, model: nn.Module) -> nn.Module:
        if isinstance(model, ProcessGroupBatchNorm):
            plain = _with_state_of(model, _BatchNormXd(model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats))
            for name, child in model.named_children():
                plain.add_module(name, self.revert(child))
            return plain
        return super().revert(model)
