from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from ..errors import ConfigError
from ..functional import scan_loss, scan_validation_loss, softmax_probs
from ..functional.neighbours import BACKENDS
from ..modules import ClusterNetwork, NeighbourTable
from ..modules.distributed import all_gather_uneven, all_reduce_mean, differentiable_mean
from .clustering_eval import ClusterMethod
from ..choices import check_choice, choices_of
from .neighbour_mining import load_embedder, mine_pool
from .ranges import AT_LEAST_ONE, NON_NEGATIVE, check_range, check_ranges

HeadSelection = Literal["val_scan_loss", "train_loss"]
MiningBackend = Literal[BACKENDS]
HEAD_SELECTIONS = choices_of(HeadSelection)
VAL_NEIGHBOURS = 5  # simclr.py mines the top-5 of the validation set; NeighborsDataset(val, indices, 5)


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
    the datamodule serves no labeled stream.

    Head selection (`head_selection`): "val_scan_loss" is the official one (scan.py with
    utils/evaluate_utils.py scan_evaluate): the validation images' 5 nearest neighbours among
    themselves are mined once with the same pretext; each validation computes every head's
    `scan_validation_loss` over the whole set (entropy weight 1), evaluates with the lowest and
    logs it as `val/scan_loss`, by which the official code also keeps its best checkpoint
    (`--checkpoint.monitor val/scan_loss --checkpoint.mode min`). On CIFAR/STL the validation
    set is the test split: no label is read, but test images are. "train_loss" (ours) uses
    the head with the lowest mean training loss over the last epoch instead.

    Defaults are the repository's (K=20, lambda=5, Adam 1e-4 with L2 1e-4, constant lr); the
    arXiv v1 values (K=5, lambda=2) are options. `num_clusters` above the number of classes
    overclusters (evaluated many-to-one). `update_backbone=False` trains the heads only
    (ImageNet), with the backbone in eval mode.

    Args:
        num_heads: clustering heads trained side by side, >= 1; the best is evaluated (code: 10).
        entropy_weight: lambda, weight of the entropy term H(mean Phi(X)), >= 0 (code: 5; arXiv v1: 2).
        num_neighbours: K, nearest neighbours mined per image, >= 1 (code: 20; arXiv v1: 5).
        pretext: the SimCLR checkpoint that embeds the images for mining; None uses init_from.
        neighbours_file: a .npz of mined neighbours, read when it exists and written otherwise.
        mining_backend: k-NN search, "auto" (faiss when installed), "faiss" or "torch".
        mining_chunk_size: query rows per k-NN chunk (memory), >= 1; None picks one.
        update_backbone: train the backbone too (CIFAR/STL: on); off trains the heads only (ImageNet).
        head_selection: "val_scan_loss" (the code: lowest SCAN loss on the validation set) or
            "train_loss" (ours: lowest mean training loss over the last epoch).
    """

    views = {"labeled": [], "unlabeled": ["scan_strong"]}

    def __init__(
        self,
        num_heads: int = 1,
        entropy_weight: float = 5.0,
        num_neighbours: int = 20,
        pretext: str | None = None,
        neighbours_file: str | None = None,
        mining_backend: MiningBackend = "auto",
        mining_chunk_size: int | None = None,
        update_backbone: bool = True,
        head_selection: HeadSelection = "val_scan_loss",
        **kwargs,
    ):
        check_ranges(AT_LEAST_ONE, num_heads=num_heads, num_neighbours=num_neighbours, mining_chunk_size=mining_chunk_size)
        check_range("entropy_weight", entropy_weight, NON_NEGATIVE)
        check_choice("mining_backend", mining_backend, MiningBackend)
        check_choice("head_selection", head_selection, HeadSelection)
        self.num_heads = num_heads
        super().__init__(**kwargs)
        self.entropy_weight = entropy_weight
        self.neighbour_table = NeighbourTable(num_neighbours + 1)
        self.val_neighbour_table = NeighbourTable(VAL_NEIGHBOURS + 1)
        self._val_rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
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
        datamodule = self.trainer.datamodule
        path = self.hparams.neighbours_file
        self._ensure_table(self.neighbour_table, path, lambda: datamodule.pool_dataloader("eval"), self.hparams.num_neighbours, "train")
        if self.hparams.head_selection == "val_scan_loss":
            val_path = str(Path(path).with_suffix("")) + "_val.npz" if path else None
            count = min(VAL_NEIGHBOURS, len(datamodule.val_dataloader().dataset) - 1)  # fewer only on a toy validation set
            if count < VAL_NEIGHBOURS:
                rank_zero_warn(f"SCAN: the validation set is too small for {VAL_NEIGHBOURS} neighbours; mining {count}")
                self.val_neighbour_table.num_candidates = count + 1
            self._ensure_table(self.val_neighbour_table, val_path, datamodule.val_dataloader, count, "validation")

    def _ensure_table(self, table: NeighbourTable, path: str | None, loader, num_neighbours: int, name: str) -> None:
        if len(table):
            return  # resumed: the checkpoint holds the table this run trained with
        if path and Path(path).is_file():
            table.load(path)
            rank_zero_info(f"SCAN: {len(table)} {name} anchors' neighbours read from {path}")
            return
        pretext = self.hparams.pretext or self.hparams.init_from
        if not pretext:
            raise ConfigError("SCAN mines neighbours with a pretext network: set `pretext` (or `init_from`) to a SimCLR checkpoint, or give `neighbours_file`")
        embedder = load_embedder(pretext, self.device)
        anchors, neighbours, report = mine_pool(embedder, loader(), num_neighbours, self.device, self.hparams.mining_chunk_size, self.hparams.mining_backend)
        table.fill(anchors, neighbours)
        if name == "train":
            self.mining_report = report
        rank_zero_info(f"SCAN {name} neighbours mined with {pretext}: " + ", ".join(f"{k} {v:.4g}" for k, v in report.items()))
        if path and self.trainer.is_global_zero:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            table.save(path)

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
        if self.hparams.head_selection == "train_loss":
            self.best_head.fill_(int((self.head_loss_sum / self.head_loss_steps).argmin()))
        self.log("train/best_head", self.best_head.float())
        self.head_loss_sum.zero_()
        self.head_loss_steps.zero_()

    # ---- model selection: the official SCAN loss on the validation set ---------------
    def _selects_on_validation(self) -> bool:
        return self.hparams.head_selection == "val_scan_loss" and len(self.val_neighbour_table) > 0 and not self.trainer.sanity_checking

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._val_rows = []

    def validation_step(self, batch, batch_idx):
        if not self._selects_on_validation():
            return super().validation_step(batch, batch_idx)
        probs = torch.stack([logits.float().softmax(dim=1) for logits in self.eval_network(batch["x"])], dim=1)  # [B, heads, C]
        self._val_rows.append((batch["idx"], probs, batch["y"]))

    def on_validation_epoch_end(self) -> None:
        if self._val_rows:
            idx, probs, labels = (torch.cat(parts) for parts in zip(*self._val_rows))
            self._val_rows = []
            self.best_head.fill_(self._lowest_val_loss_head(idx, probs))
            self.val_metrics.update(probs[:, int(self.best_head)], labels)
        super().on_validation_epoch_end()

    def _lowest_val_loss_head(self, idx: torch.Tensor, probs: torch.Tensor) -> int:
        idx, probs = all_gather_uneven(idx), all_gather_uneven(probs)
        order = torch.argsort(idx)
        idx, probs = idx[order], probs[order]
        anchors, neighbours = self.val_neighbour_table.anchors.to(idx.device), self.val_neighbour_table.neighbours.to(idx.device)
        if not torch.isin(idx, anchors).all():
            raise RuntimeError("the validation images differ from those whose neighbours were mined; delete the *_val.npz table to mine them again")
        neighbours = neighbours[torch.searchsorted(anchors, idx)]  # the rows of this pass (all of them, unless limit_val_batches)
        present = torch.isin(neighbours, idx)
        rows = torch.searchsorted(idx, neighbours).clamp_max(len(idx) - 1)
        losses = [scan_validation_loss(probs[:, head], rows, None if present.all() else present) for head in range(probs.shape[1])]
        totals = torch.stack([total for total, _, _ in losses])
        best = int(totals.argmin())
        self.log_dict({"val/scan_loss": totals[best], "val/consistency": losses[best][1], "val/entropy": losses[best][2]}, sync_dist=False)
        return best

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_network(x)[int(self.best_head)]

    def _identity(self) -> dict:
        return {**super()._identity(), "num_heads": self.num_heads}
