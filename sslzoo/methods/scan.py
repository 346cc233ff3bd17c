from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info

from ..functional import scan_loss, softmax_probs
from ..modules import ClusterNetwork, NeighbourTable
from ..modules.distributed import all_reduce_mean, differentiable_mean
from .clustering_eval import ClusterMethod
from .neighbour_mining import load_embedder, mine_pool


class SCAN(ClusterMethod):
    """SCAN clustering (Van Gansbeke et al., ECCV 2020), steps 2 and 3.

    Before training (unless resumed or `neighbours_file` exists): embed the
    training pool with the `pretext` network (SimCLR, eval view) and keep each image's K
    nearest neighbours plus itself; the table is a persistent buffer (and written to
    `neighbours_file`). The backbone starts from `init_from` (by default the same pretext).
    Each step, for a batch of anchors X with one neighbour k drawn uniformly from its K+1
    candidates (by the datamodule), every head h minimises (Eq. 2)
        -mean_X log <Phi_h(X), Phi_h(k)>  -  lambda * H(mean_X Phi_h(X)),
    with gradients through both branches; the heads' losses are summed. Labels are not used:
    the datamodule serves no labeled stream. Evaluation uses the head with the lowest mean
    training loss over the last epoch (the official code picks it by the loss on test-set
    neighbours, which we avoid).

    Defaults are the repository's (K=20, lambda=5, Adam 1e-4 with L2 1e-4, constant lr); the
    arXiv v1 values (K=5, lambda=2) are options. `num_clusters` above the number of classes
    overclusters (evaluated many-to-one). `update_backbone=False` trains the heads only
    (ImageNet), with the backbone in eval mode.
    """

    views = {"labeled": [], "unlabeled": ["scan_strong"]}

    def __init__(
        self,
        num_heads: int = 1,
        entropy_weight: float = 5.0,
        num_neighbours: int = 20,
        pretext: str | None = None,
        neighbours_file: str | None = None,
        mining_backend: str = "auto",
        mining_chunk_size: int | None = None,
        update_backbone: bool = True,
        **kwargs,
    ):
        self.num_heads = num_heads
        super().__init__(**kwargs)
        if num_neighbours < 1:
            raise ValueError(f"num_neighbours must be at least 1, got {num_neighbours}")
        self.entropy_weight = entropy_weight
        self.neighbour_table = NeighbourTable(num_neighbours + 1)
        self.register_buffer("head_loss_sum", torch.zeros(num_heads, dtype=torch.float64))
        self.register_buffer("head_loss_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("best_head", torch.zeros((), dtype=torch.long))
        self.mining_report: dict = {}
        if not update_backbone:
            self.network.backbone.requires_grad_(False)

    def build_network(self, backbone, num_classes):
        return ClusterNetwork(backbone, self.num_clusters, self.num_heads)

    def trainable_modules(self):
        return [self.network if self.hparams.update_backbone else self.network.heads]

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if not self.hparams.update_backbone:
            self.network.backbone.eval()  # frozen, BatchNorm statistics included (Lightning re-enables train mode around validation)

    # ---- step 2: neighbours --------------------------------------------------------
    def configure_optimizers(self):
        # Lightning builds the train loader inside configure_optimizers (estimated_stepping_batches),
        # after restoring a checkpoint: the table must exist by then.
        self.ensure_neighbours()
        return super().configure_optimizers()

    def on_fit_start(self) -> None:
        self.ensure_neighbours()

    def ensure_neighbours(self) -> None:
        if len(self.neighbour_table):
            return  # resumed: the checkpoint holds the table this run trained with
        path = self.hparams.neighbours_file
        if path and Path(path).is_file():
            self.neighbour_table.load(path)
            rank_zero_info(f"SCAN: {len(self.neighbour_table)} anchors' neighbours read from {path}")
            return
        pretext = self.hparams.pretext or self.hparams.init_from
        if not pretext:
            raise ValueError("SCAN mines neighbours with a pretext network: set `pretext` (or `init_from`) to a SimCLR checkpoint, or give `neighbours_file`")
        embedder = load_embedder(pretext, self.device)
        loader = self.trainer.datamodule.pool_dataloader("eval")
        anchors, neighbours, self.mining_report = mine_pool(
            embedder, loader, self.hparams.num_neighbours, self.device, self.hparams.mining_chunk_size, self.hparams.mining_backend
        )
        self.neighbour_table.fill(anchors, neighbours)
        rank_zero_info(f"SCAN neighbours mined with {pretext}: " + ", ".join(f"{k} {v:.4g}" for k, v in self.mining_report.items()))
        if path and self.trainer.is_global_zero:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.neighbour_table.save(path)

    # ---- step 3: clustering ---------------------------------------------------------
    def training_step(self, batch, batch_idx):
        pairs = batch["unlabeled"]
        if "neighbour_x" not in pairs:
            raise RuntimeError("SCAN's batches need anchor/neighbour pairs; use an sslzoo datamodule, which pairs them from the neighbour table")
        # Two forward passes (two BatchNorm batches), as the official code does.
        anchor_logits, neighbour_logits = self.network(pairs["x"]), self.network(pairs["neighbour_x"])
        totals, consistencies, entropies = [], [], []
        for anchor, neighbour in zip(anchor_logits, neighbour_logits):
            mean_probs = differentiable_mean(softmax_probs(anchor).mean(dim=0))
            total, consistency, spread = scan_loss(anchor, neighbour, self.entropy_weight, mean_probs)
            totals.append(total)
            consistencies.append(consistency.detach())
            entropies.append(spread.detach())
        # Averaged over processes as they accumulate, so every rank holds the same sums: a checkpoint
        # (rank 0's buffers) taken inside an epoch resumes them on every rank.
        self.head_loss_sum += all_reduce_mean(torch.stack(totals).detach()).double()
        self.head_loss_steps += 1
        best = int(self.best_head)
        known = (pairs["y_hidden"] >= 0) & (pairs["neighbour_y_hidden"] >= 0)
        agree = ((pairs["y_hidden"] == pairs["neighbour_y_hidden"]) & known).float().sum() / known.sum().clamp_min(1)
        self.log_dict({"train/consistency": consistencies[best], "train/entropy": entropies[best], "train/pair_label_agreement": agree},
                      batch_size=len(anchor_logits[0]))
        return self.total_loss({"scan": torch.stack(totals).sum()}, len(anchor_logits[0]))

    def on_train_epoch_end(self) -> None:
        if int(self.head_loss_steps) == 0 or not self.epoch_ran_to_its_end():
            return
        self.best_head.fill_(int((self.head_loss_sum / self.head_loss_steps).argmin()))
        self.log("train/best_head", self.best_head.float())
        self.head_loss_sum.zero_()
        self.head_loss_steps.zero_()

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_network(x)[int(self.best_head)]

    def _identity(self) -> dict:
        return {**super()._identity(), "num_heads": self.num_heads}
