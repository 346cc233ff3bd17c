from __future__ import annotations

from typing import Literal

import torch

from ..functional import nt_xent
from ..functional.contrastive import ANCHORS
from ..modules import ProjectionHead
from ..choices import check_choice
from .multicrop import MultiCropMethod, PretextMixin
from .ranges import AT_LEAST_ONE, check_ranges

Anchors = Literal[ANCHORS]


class SimCLR(PretextMixin, MultiCropMethod):
    """SimCLR pretext (Chen et al. 2020) as SCAN trains it: two augmented views of every
    unlabeled image, backbone -> Linear-ReLU-Linear to 128-d, L2-normalised, NT-Xent with
    temperature 0.1 over the batch (gathered over processes).

    `anchors="first"` reproduces the SCAN repo's SimCLRLoss, where only the first view's rows
    are anchors; "both" is the symmetric loss of the SimCLR paper. The labeled stream, when
    there is one, only trains the online probe used for monitoring (validation reads it):
    its images go through the network in eval mode without gradient, so the BatchNorm batch
    (and running statistics) of the representation holds the 2B views only, as in SCAN's
    simclr_train; with or without labels the representation is learned the same way.
    `embed` gives the normalised projection that SCAN mines neighbours with.

    Args:
        hidden_dim: width of the projection MLP's hidden layer (SCAN: 512 for ResNet-18).
        projection_dim: size of the L2-normalised embedding z (SCAN: 128).
        anchors: NT-Xent anchors, "both" views (the SimCLR paper) or the "first" only (SCAN's SimCLRLoss).
    """

    views = {
        "labeled": ["weak"],
        "unlabeled": ["simclr", "simclr"],  # SCAN's CIFAR/STL recipe: crop scale (0.2, 1), jitter 0.4/0.4/0.4/0.1, gray 0.2
    }

    def __init__(self, hidden_dim: int = 512, projection_dim: int = 128, anchors: Anchors = "both", **kwargs):
        check_choice("anchors", anchors, Anchors)
        check_ranges(AT_LEAST_ONE, hidden_dim=hidden_dim, projection_dim=projection_dim)
        self.head_options = dict(hidden_dim=hidden_dim, projection_dim=projection_dim)
        super().__init__(**kwargs)
        self.anchors = anchors
        self._without_labels = False

    def build_head(self, feature_dim):
        return ProjectionHead(feature_dim, **self.head_options)

    def training_step(self, batch, batch_idx):
        labeled, (view0, view1) = batch.get("labeled"), batch["unlabeled"]["x"]
        z0, z1 = self.network([view0, view1])["z"].split(len(view0))
        terms = {"simclr": nt_xent(z0, z1, self.temperature, self.anchors)}
        self._without_labels = labeled is None
        if labeled is not None:
            terms["probe"] = self.probe_loss(self.frozen_outputs(labeled["x"]), labeled["y"])
        return self.total_loss(terms, len(view0))

    @torch.no_grad()
    def frozen_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's outputs in eval mode (running BatchNorm statistics, left unchanged)."""
        self.network.eval()
        try:
            return self.network(x)
        finally:
            self.network.train()

    def required_streams(self) -> tuple[str, ...]:
        return ("unlabeled",)  # the labeled stream only trains the monitoring probe

    def idle_modules(self):
        return [self.probes] if self._without_labels else []  # no labeled stream: the probes learn nothing

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised projection of the evaluated network (SCAN's mining features)."""
        return self.eval_network(x)["z"]
