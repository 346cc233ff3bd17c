"""Methods whose outputs are clusters, not classes (SCAN and its self-labeling): their shared
optimiser defaults and their evaluation."""
from __future__ import annotations

import torch

from ..functional.cluster_metrics import cluster_to_class_map
from ..functional.clustering import confusion_counts
from ..modules import ClusteringMetrics
from ..modules.distributed import world_size
from .base import SSLMethod, required_num_classes
from .optim import OptimizerName, SchedulerName
from .ranges import AT_LEAST_ONE, check_range


class ClusterMethod(SSLMethod):
    """Base of methods with `num_clusters` outputs (default: one per class), trained with
    SCAN's optimiser by default (Adam 1e-4 with L2 1e-4 on every parameter, constant lr).

    Val/test report Hungarian-matched
    accuracy (many-to-one when overclustering, logged as `cluster_acc_many_to_one`), NMI, ARI
    and top-5 after remapping; the test confusion table is written to the run's log directory.

    With `name_clusters_with_labels`, each evaluation also names the clusters from the
    datamodule's labeled split (Hungarian on the labeled images' confusion table) and logs
    `named_acc`: the classification accuracy a user with those few labels gets, next to the
    clustering accuracy (which peeks at every test label to match).

    Args:
        num_clusters: the clusters (outputs per head); None: one per class (SCAN), more overclusters.
        name_clusters_with_labels: also name the clusters from the labeled split and log `named_acc`.
        optimizer: as SSLMethod's (SCAN: "adam").
        lr: the learning rate (SCAN: 1e-4).
        weight_decay: the L2 coefficient (SCAN: 1e-4).
        decay_norm_and_bias: decay every parameter (SCAN: on).
        scheduler: the lr schedule (SCAN: "constant").
    """

    checkpoint_metric = None  # selecting on clustering accuracy reads the labels: keep the newest

    def __init__(
        self,
        num_clusters: int | None = None,
        name_clusters_with_labels: bool = False,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        decay_norm_and_bias: bool = True,
        scheduler: SchedulerName = "constant",
        **kwargs,
    ):
        self.num_clusters = check_range("num_clusters", num_clusters, AT_LEAST_ONE) or required_num_classes(kwargs.get("num_classes"))
        super().__init__(
            optimizer=optimizer, lr=lr, weight_decay=weight_decay, decay_norm_and_bias=decay_norm_and_bias, scheduler=scheduler, **kwargs
        )
        self.val_metrics = ClusteringMetrics(self.num_clusters, self.num_classes)
        self.test_metrics = ClusteringMetrics(self.num_clusters, self.num_classes)

    def _identity(self) -> dict:
        return {**super()._identity(), "num_clusters": self.num_clusters}

    def _evaluate(self, batch: dict, metrics, prefix: str) -> torch.Tensor:
        logits = self.eval_logits(batch["x"])
        metrics.update(logits.float().softmax(dim=1), batch["y"])
        return logits

    def _log_clustering(self, metrics: ClusteringMetrics, prefix: str) -> dict:
        metrics.cluster_to_class = self.labeled_cluster_map() if self.hparams.name_clusters_with_labels else None
        values = metrics.compute()
        confusion = values.pop("confusion")
        suffix = "" if metrics.mapping == "one_to_one" else "_many_to_one"
        self.log(f"{prefix}cluster_acc{suffix}", values.pop("cluster_acc"), prog_bar=True)
        if "cluster_acc_top5" in values:
            self.log(f"{prefix}cluster_acc_top5{suffix}", values.pop("cluster_acc_top5"))
        self.log_dict({f"{prefix}{name}": value for name, value in values.items()})
        metrics.reset()
        return {"confusion": confusion.tolist(), "mapping": metrics.mapping}

    def on_validation_epoch_end(self) -> None:
        self._log_clustering(self.val_metrics, "val/")

    def on_test_epoch_end(self) -> None:
        report = self._log_clustering(self.test_metrics, "test/")
        self.write_run_file("test_confusion.json", {"rows": "clusters", "columns": "classes", **report})

    @torch.no_grad()
    def labeled_cluster_map(self) -> torch.Tensor:
        """Cluster -> class map from the labeled split of the training pool (summed over processes)."""
        loader = self.trainer.datamodule.labeled_dataloader("eval")
        counts = torch.zeros(self.num_clusters, self.num_classes, dtype=torch.long, device=self.device)
        for batch in loader:
            preds = self.eval_logits(batch["x"].to(self.device)).argmax(dim=1)
            counts += confusion_counts(preds, batch["y"].to(self.device), self.num_clusters, self.num_classes)
        if world_size() > 1:
            torch.distributed.all_reduce(counts)
        return cluster_to_class_map(counts)
