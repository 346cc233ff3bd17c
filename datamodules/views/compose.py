from __future__ import annotations

import torch

from .batched import batchable_tail, split_params


class View(torch.nn.Module):
    """A sequence of uint8 -> uint8 augmentations followed by normalisation.

    `plan` + `apply_batch` is the same view split for augmentation on the accelerator: `plan`
    runs the leading ops that cannot be batched (e.g. a resized crop of variable-size images)
    and draws the parameters of the rest (`BatchableOp`s) on one image; `apply_batch` applies
    them to a batch of planned images and normalises.
    """

    def __init__(self, augmentations, normalize):
        super().__init__()
        self.augmentations = torch.nn.ModuleList(augmentations)
        self.normalize = normalize
        self._tail_start = batchable_tail(list(self.augmentations))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        for op in self.augmentations:
            img = op(img)
        return self.normalize(img)

    @property
    def batched_ops(self) -> list:
        return list(self.augmentations)[self._tail_start :]

    def expect_variable_size_input(self) -> None:
        """Images of different sizes come in (ImageFolder data): keep the ops up to the resized
        crop per item, so that planned images can be stacked."""
        self._tail_start = batchable_tail(list(self.augmentations), variable_size_input=True)

    def plan(self, img: torch.Tensor) -> dict:
        """{"image": the image after the per-item ops, "params": float64 draws of the batched ops}."""
        for op in list(self.augmentations)[: self._tail_start]:
            img = op(img)
        shape, params = tuple(img.shape), []
        for op in self.batched_ops:
            params.extend(op.draw(shape))
            shape = op.out_shape(shape)
        return {"image": img, "params": torch.tensor(params, dtype=torch.float64)}

    def apply_batch(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        ops = self.batched_ops
        for op, op_params in zip(ops, split_params(params, ops)):
            images = op.apply_batch(images, op_params)
        return self.normalize(images)


class MultiView(torch.nn.Module):
    """Applies several views to one image.

    Returns a tensor when there is exactly one output, else the flat list of
    outputs in request order (a multi-crop view contributes all its crops).
    `plan` / `finish_batch` are the same outputs for augmentation on the accelerator: outputs
    of a `View` are planned per item and finished per batch, other outputs come finished.
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

    def expect_variable_size_input(self) -> None:
        for view in {id(v): v for v in self.output_views() if v is not None}.values():
            view.expect_variable_size_input()

    def _output_parts(self) -> list:
        """The module that makes each output position (a multi-crop's crops one by one)."""
        return [part for view in self.views for part in (view.output_views() if hasattr(view, "output_views") else [view])]

    def output_views(self) -> list:
        """For each output position, the `View` that makes it, or None when it comes finished."""
        return [part if isinstance(part, View) else None for part in self._output_parts()]

    def plan(self, img: torch.Tensor):
        outputs = [part.plan(img) if isinstance(part, View) else part(img) for part in self._output_parts()]
        return outputs[0] if len(outputs) == 1 else outputs

    def finish_batch(self, planned):
        """The collated output of `plan` (on any device) -> what `forward` would have collated to.

        Outputs of the same view (a multi-crop's global crops, its local crops) are finished in
        one call on their concatenation: fewer, larger kernels.
        """
        views = self.output_views()
        items = [planned] if len(views) == 1 else list(planned)
        finished = list(items)
        groups: dict[int, list[int]] = {}
        for position, view in enumerate(views):
            if view is not None:
                groups.setdefault(id(view), []).append(position)
        for positions in groups.values():
            view = views[positions[0]]
            images = torch.cat([items[p]["image"] for p in positions])
            params = torch.cat([items[p]["params"] for p in positions])
            outputs = view.apply_batch(images, params).split([len(items[p]["params"]) for p in positions])
            for position, output in zip(positions, outputs):
                finished[position] = output
        return finished[0] if len(finished) == 1 else finished
