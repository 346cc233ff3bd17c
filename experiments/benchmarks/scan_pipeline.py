"""SCAN's three stages on real CIFAR-10 images, labels used only for evaluation.

    python experiments/benchmarks/scan_pipeline.py [--out experiments/benchmarks/scan_pipeline.json]
        [--pretext-steps 1500] [--scan-steps 600] [--selflabel-steps 300] [--widen 2]

Data: `<repo>/../shared/data/cifar10_subset.npz` (10,000 train / 5,000 test real CIFAR-10 images). Stages:
  1. SimCLR pretext on the 10k training images (no labeled stream at all);
  2. neighbour mining (K=20, eval view), with purity at K=5 and K=20 and its wall time;
  3. SCAN (one head, entropy weight 5, Adam 1e-4) on the mined pairs;
  4. self-labeling (threshold 0.99, class-balanced CE).
After each stage: clustering accuracy (Hungarian), NMI and ARI on the 5,000 test images (for the pretext:
k-means with K=10 on its normalised projections, SCAN's baseline), and, for SCAN and self-labeling, the
accuracy when clusters are named from 40 labeled training images (4 per class). Also the mining time of
10k and 50k random 128-d vectors with the pure-torch search and with faiss (when installed). The backbone is
a small WRN (depth 10) instead of SCAN's ResNet-18 so that the whole run fits a 2-core CPU budget.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from datamodules import ArrayDataModule  # noqa: E402
from sslzoo.functional import mine_neighbours  # noqa: E402
from sslzoo.functional.cluster_metrics import adjusted_rand_index, normalized_mutual_info  # noqa: E402
from sslzoo.functional.clustering import confusion_counts, matched_accuracy_from_counts  # noqa: E402
from sslzoo.methods import SCAN, SCANSelfLabel, SimCLR  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cifar10_subset.npz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def datamodule(args, batch: int, steps_per_epoch: int, num_labels: int | None = None) -> ArrayDataModule:
    return ArrayDataModule(
        str(DATA), num_labels=num_labels, split_seed=0, batch_size=4, labeled_views=[], unlabeled_batch_size=batch,
        steps_per_epoch=steps_per_epoch, num_workers=args.num_workers, eval_batch_size=500, mean=CIFAR10_MEAN, std=CIFAR10_STD,
    )


def trainer(steps: int, root: Path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0, default_root_dir=str(root))


def kmeans(features: torch.Tensor, k: int, iterations: int = 50, seed: int = 0) -> torch.Tensor:
    """Spherical k-means (cosine) with k-means++ seeding; returns the cluster of each row."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(features, dim=1)
    centres = [x[torch.randint(len(x), (1,), generator=generator)].squeeze(0)]
    for _ in range(k - 1):
        distance = (1 - x @ torch.stack(centres).T).clamp_min(0).min(dim=1).values
        centres.append(x[torch.multinomial(distance + 1e-12, 1, generator=generator)].squeeze(0))
    centres = torch.stack(centres)
    for _ in range(iterations):
        assign = (x @ centres.T).argmax(dim=1)
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centres[c] = torch.nn.functional.normalize(members.mean(dim=0), dim=0)
    return (x @ centres.T).argmax(dim=1)


def clustering_scores(preds: torch.Tensor, targets: torch.Tensor, k: int) -> dict:
    counts = confusion_counts(preds, targets, k, k)
    return {"cluster_acc": round(matched_accuracy_from_counts(counts), 4),
            "nmi": round(normalized_mutual_info(counts), 4), "ari": round(adjusted_rand_index(counts), 4)}


def test_scores(method, dm, fit_trainer) -> dict:
    (metrics,) = fit_trainer.test(method, datamodule=dm, verbose=False)
    return {k.removeprefix("test/"): round(float(v), 4) for k, v in metrics.items()}


def mining_timings(sizes=(10_000, 50_000), dim: int = 128) -> dict:
    timings = {}
    for n in sizes:
        features = torch.nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(n)), dim=1)
        for backend in ("torch", "faiss"):
            try:
                start = time.perf_counter()
                mine_neighbours(features, 20, backend=backend)
                timings[f"{n}x{dim}_k20_{backend}_s"] = round(time.perf_counter() - start, 2)
            except ImportError as err:
                timings[f"{n}x{dim}_k20_{backend}_s"] = f"unavailable: {err}"
    return timings


def selflabel_stage(args, backbone: dict, work: Path, report: dict) -> None:
    L.seed_everything(0, verbose=False)
    self_label = SCANSelfLabel(num_classes=10, **backbone, init_from=str(work / "scan.ckpt"), name_clusters_with_labels=True)
    dm = datamodule(args, args.selflabel_batch, 10_000 // args.selflabel_batch, num_labels=40)
    fit = trainer(args.selflabel_steps, work / "selflabel")
    start = time.perf_counter()
    fit.fit(self_label, datamodule=dm)
    report["stages"]["selflabel"] = {"steps": args.selflabel_steps, "wall_time_s": round(time.perf_counter() - start, 1),
                                     "mask_rate_last_step": round(float(fit.callback_metrics["train/mask_rate"]), 4),
                                     "skipped_steps_last": int(fit.callback_metrics["train/empty_confident_set"]),
                                     **test_scores(self_label, dm, fit)}
    print("selflabel", report["stages"]["selflabel"], flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("scan_pipeline.json")))
    parser.add_argument("--pretext-steps", type=int, default=1500)
    parser.add_argument("--scan-steps", type=int, default=600)
    parser.add_argument("--selflabel-steps", type=int, default=300)
    parser.add_argument("--pretext-batch", type=int, default=128)
    parser.add_argument("--scan-batch", type=int, default=128)
    parser.add_argument("--selflabel-batch", type=int, default=256)
    parser.add_argument("--widen", type=int, default=2)
    parser.add_argument("--num-neighbours", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--workdir", default="runs/benchmarks/scan")
    parser.add_argument("--only-selflabel", action="store_true",
                        help="re-run only step 4 from <workdir>/scan.ckpt, keeping the other stages of --out")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"error: {DATA} not found; this benchmark needs the real CIFAR-10 subset ({DATA.parent / 'README.md'})")
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    backbone = dict(backbone="wide_resnet", backbone_options={"depth": 10, "widen_factor": args.widen})
    report = {
        "benchmark": "SCAN stages on the CIFAR-10 subset (labels for evaluation only)",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
        "config": {k: v for k, v in vars(args).items() if k != "out"} | backbone,
        "stages": {},
    }
    out = Path(args.out)

    def save():
        out.write_text(json.dumps(report, indent=2) + "\n")

    if args.only_selflabel:
        previous = json.loads(out.read_text())
        report["stages"] = {k: v for k, v in previous["stages"].items() if k != "selflabel"}
        report["mining_timings_random_vectors"] = previous.get("mining_timings_random_vectors")
        report["note"] = "self-labeling re-run on its own (steps without a confident sample are now skipped)"
        selflabel_stage(args, backbone, work, report)
        save()
        return

    # 1. pretext
    L.seed_everything(0, verbose=False)
    steps_per_epoch = 10_000 // args.pretext_batch
    simclr = SimCLR(num_classes=10, **backbone, hidden_dim=512, projection_dim=128, temperature=0.1, optimizer="sgd", nesterov=False,
                    lr=0.4 * args.pretext_batch / 512, weight_decay=1e-4, decay_norm_and_bias=True, scheduler="warmup_cosine",
                    final_lr_fraction=0.001)
    dm = datamodule(args, args.pretext_batch, steps_per_epoch)
    fit = trainer(args.pretext_steps, work / "simclr")
    start = time.perf_counter()
    fit.fit(simclr, datamodule=dm)
    pretext_seconds = time.perf_counter() - start
    pretext_ckpt = work / "simclr.ckpt"
    fit.save_checkpoint(pretext_ckpt)
    simclr.eval()
    features, targets = [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            features.append(simclr.embed(batch["x"]))
            targets.append(batch["y"])
    preds = kmeans(torch.cat(features), 10)
    report["stages"]["pretext"] = {"steps": args.pretext_steps, "wall_time_s": round(pretext_seconds, 1),
                                   "kmeans_on_test_projections": clustering_scores(preds, torch.cat(targets), 10)}
    print("pretext", report["stages"]["pretext"], flush=True)
    save()

    # 2 + 3. mining and SCAN
    L.seed_everything(0, verbose=False)
    scan = SCAN(num_classes=10, **backbone, init_from=str(pretext_ckpt), num_neighbours=args.num_neighbours,
                neighbours_file=str(work / "neighbours.npz"), name_clusters_with_labels=True)
    if (work / "neighbours.npz").exists():
        (work / "neighbours.npz").unlink()
    dm = datamodule(args, args.scan_batch, 10_000 // args.scan_batch, num_labels=40)
    fit = trainer(args.scan_steps, work / "scan")
    start = time.perf_counter()
    fit.fit(scan, datamodule=dm)
    scan_seconds = time.perf_counter() - start
    mining = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scan.mining_report.items()}
    report["stages"]["mining"] = mining
    report["stages"]["scan"] = {"steps": args.scan_steps, "wall_time_s_including_mining": round(scan_seconds, 1), **test_scores(scan, dm, fit)}
    scan_ckpt = work / "scan.ckpt"
    fit.save_checkpoint(scan_ckpt)
    print("mining", mining, "\nscan", report["stages"]["scan"], flush=True)
    save()

    # 4. self-labeling
    selflabel_stage(args, backbone, work, report)
    save()

    report["mining_timings_random_vectors"] = mining_timings()
    print(report["mining_timings_random_vectors"], flush=True)
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
