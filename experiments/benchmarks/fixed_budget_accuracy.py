"""Fixed-budget test accuracy on real CIFAR-10 images: Supervised vs FixMatch vs MeanTeacher.

Data: `<repo>/../shared/data/cifar10_subset.npz` (10,000 train / 5,000 test real CIFAR-10 images,
see its README), 250 labels (25 per class, split_seed 0), through `datamodules.ArrayDataModule`.
Every method gets the same backbone, the same number of optimizer steps, the same labeled batch,
the same LR schedule, the same EMA decay for evaluation and the same seed
(`lightning.seed_everything(seed)` before building each model and datamodule); test accuracy
is `trainer.test` on the 5,000 test images (evaluated on the EMA weights).

    python experiments/benchmarks/fixed_budget_accuracy.py [--out experiments/benchmarks/fixed_budget_accuracy.json]
        [--steps N] [--epochs E] [--batch-size 16] [--mu 4] [--depth 10] [--widen 2] [--methods supervised,fixmatch,meanteacher]

With `--num-val N --eval-every K`, N images (balanced) are held out of the training pool; every K
steps the evaluated weights are scored on them and on the test set, and the run reports the test
accuracy at the best validation point (selection never looks at the test set), the median test
accuracy over the last `--median-over` evaluations (FixMatch's protocol) and the final one.
`aggregate_seeds.py` combines runs of several seeds.

`--probe K` runs K steps of each method and prints the seconds per step (to choose --steps for a
wall-clock budget); it writes nothing. The defaults were chosen that way for ~25 minutes on
2 CPU cores; nothing was tuned on the test set.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from datamodules import ArrayDataModule  # noqa: E402
from sslzoo.methods import DINO, BoostedFixMatch, Daino, FixMatch, LCMeanTeacher, MeanTeacher, SimMatch, Suave, Supervised, SwAV  # noqa: E402

PRETEXTS = ("swav", "dino")  # trained for --pretext-steps; their checkpoints initialise PRETEXT_OF's methods
CLUSTERING = (*PRETEXTS, "suave", "suave_swav", "daino", "daino_dino")
PRETEXT_OF = {"suave_swav": "swav", "daino_dino": "dino"}  # initialised from the pretext run of this invocation

DATA = REPO.parent / "shared" / "data" / "cifar10_subset.npz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


class EvaluationRecorder(L.Callback):
    """At every validation: the validation accuracy (model selection) and the test accuracy of
    the same evaluated weights, so a run reports test accuracy at the best validation point and
    the median over the last evaluations (FixMatch's protocol) without keeping checkpoints."""

    def __init__(self, datamodule):
        self.datamodule, self.evaluations = datamodule, []

    @torch.no_grad()
    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        correct = total = 0
        for batch in self.datamodule.test_dataloader():
            logits = pl_module.eval_logits(batch["x"].to(pl_module.device))
            correct += int((logits.argmax(dim=1).cpu() == batch["y"]).sum())
            total += len(batch["y"])
        self.evaluations.append({"step": int(trainer.global_step), "val_acc": round(float(trainer.callback_metrics["val/acc"]), 4),
                                 "test_acc": round(correct / total, 4)})

    def summary(self, last: int) -> dict:
        if not self.evaluations:
            return {}
        best = max(self.evaluations, key=lambda e: e["val_acc"])  # the first of equal best
        tail = self.evaluations[-last:]
        return {
            "test_acc_at_best_val": best["test_acc"], "best_val_acc": best["val_acc"], "best_val_step": best["step"],
            f"test_acc_median_last_{len(tail)}_evals": statistics.median(e["test_acc"] for e in tail),
            "evaluations": self.evaluations,
        }


class StepRecorder(L.Callback):
    """Wall time per training step and the logged training metrics (mask rate, losses) per step."""

    KEYS = ("train/loss", "train/loss_sup", "train/loss_unsup", "train/loss_consistency", "train/mask_rate",
            "train/pseudo_acc_all", "train/pseudo_acc_masked", "train/consistency_weight", "train/lr",
            "train/lc_weight", "train/lc_epsilon", "train/lc_neighbour_fraction", "train/feature_var",
            "train/loss_swav", "train/loss_dino", "train/loss_mixed", "train/probe_backbone_acc", "train/queue_fill",
            "train/labeled_ce", "train/labeled_fit", "train/phase", "train/clustering_kept")

    def __init__(self):
        self.step_times, self.history = [], []
        self._t = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step_times.append(time.perf_counter() - self._t)
        metrics = trainer.callback_metrics
        self.history.append({k: float(metrics[k]) for k in self.KEYS if k in metrics})

    def mean_over_last(self, key: str, n: int) -> float | None:
        values = [h[key] for h in self.history[-n:] if key in h]
        return round(statistics.fmean(values), 4) if values else None


def build_method(name: str, args, steps_per_epoch: int):
    common = dict(
        num_classes=10,
        backbone="wide_resnet",
        backbone_options={"depth": args.depth, "widen_factor": args.widen, "bn_momentum": args.bn_momentum},
        lr=args.lr,
        weight_decay=args.weight_decay,
        scheduler="fixmatch_cosine",
        ema_decay=args.ema_decay,
    )
    if args.ema_buffers is not None and name != "meanteacher":  # Mean Teacher's teacher keeps its own BN statistics
        common["ema_buffers"] = args.ema_buffers
    if name == "supervised":
        return Supervised(**common)
    if name == "fixmatch":
        return FixMatch(threshold=args.threshold, lambda_u=args.lambda_u, **common)
    if name == "meanteacher":
        return MeanTeacher(consistency_weight=args.consistency_weight, rampup_epochs=args.rampup_epochs, **common)
    if name == "simmatch":
        # Paper values (lambda_in 1, t 0.1, alpha 0.9, DA 32 steps, bank momentum 0.7); the bank
        # warm-up is the first epoch, as in the official code.
        return SimMatch(threshold=args.threshold, lambda_u=args.lambda_u, bank_warmup_epochs=1, **common)
    if name == "lcmeanteacher":
        # LC switches on halfway (LC-MT: after MT has nearly converged, epoch 600 of 1200) with a
        # short ramp. The paper's eps (40-50) is on CNN-13's feature scale: with this backbone
        # either give eps directly or a quantile of the pair distances at LC start.
        return LCMeanTeacher(
            consistency_weight=args.consistency_weight, rampup_epochs=args.rampup_epochs,
            lc_weight=args.lc_weight, epsilon=args.lc_epsilon, epsilon_quantile=args.lc_epsilon_quantile,
            lc_start_epoch=args.epochs // 2,
            lc_rampup_epochs=max(1, round(0.1 * args.epochs)), **common,
        )
    if name == "boostedfixmatch":
        # Paper 000's schedule scaled to this budget: RotNet warm-up, then rounds of --boost-ssl-epochs
        # FixMatch epochs, one RotNet and one clustering epoch (every epoch has steps_per_epoch steps).
        return BoostedFixMatch(
            threshold=args.threshold, lambda_u=args.lambda_u, warmup_epochs=args.boost_warmup_epochs, ssl_epochs=args.boost_ssl_epochs,
            clustering_batch_size=args.batch_size * args.mu, clustering_milestones=[10**6], permutation_top_k=10, **common,
        )
    if name in CLUSTERING:
        return build_clustering_method(name, args, common, steps_per_epoch)
    raise ValueError(f"unknown method {name!r}")


def steps_of(name: str, args) -> int:
    return args.pretext_steps if name in PRETEXTS else args.steps


def build_clustering_method(name: str, args, common: dict, steps_per_epoch: int):
    """Suave/Daino and their pretexts with the paper's CIFAR-100 recipe (appendix A.2): LARS
    lr 2.8 (trust ratio and decay on every parameter, as SwAV's LARC), wd 3e-6, warm-up then cosine (5 of 100 epochs, final 0.001/0.4 of the peak, as
    in A.1), momentum encoder 0.99, label smoothing 0.01, T 0.1. Sinkhorn eps 0.05 is SwAV's
    (0.086 was chosen for 100 classes); queue 1024 here (the paper's 3840 is a third of this
    10k-image pool); the teacher temperature warm-up keeps Daino's 10/200-epoch proportion."""
    total = steps_of(name, args)
    common = dict(
        common, optimizer="lars", lr=args.lars_lr, weight_decay=args.lars_weight_decay, decay_norm_and_bias=True, scheduler="warmup_cosine",
        warmup_steps=max(1, total // 20), final_lr_fraction=0.0025,
    )
    if args.clustering_optimizer == "sgd":  # the core benchmark's SGD (lr, wd, no decay on BN/bias), same warm-up/cosine
        common.update(optimizer="sgd", lr=args.lr, weight_decay=args.weight_decay, decay_norm_and_bias=False)
    epochs = max(1, total // steps_per_epoch)
    if name in ("swav", "suave", "suave_swav"):
        options = dict(common, epsilon=args.sinkhorn_epsilon, queue_length=args.queue_length, hidden_dim=512)
        if name == "swav":
            options.update(ema_decay=None, num_prototypes=args.swav_prototypes, freeze_prototypes_steps=steps_per_epoch)
            return SwAV(**options)
        options.update(momentum_teacher=True, ema_decay=0.99, ema_schedule="cosine")
        return Suave(init_from=args.pretrained.get(name), **options)
    options = dict(common, hidden_dim=512, bottleneck_dim=128, ema_decay=0.99, teacher_temperature=0.07,
                   teacher_temperature_warmup_epochs=max(1, round(epochs * 10 / 200)))
    if name == "dino":
        # DINO's own recipe rather than Suave's LARS (which collapsed DINO to a uniform output here):
        # AdamW lr 5e-4, wd cosine 0.04 -> 0.4, teacher momentum 0.996 -> 1, frozen last-layer norm.
        options.update(optimizer="adamw", lr=args.dino_lr, weight_decay=0.04, weight_decay_end=0.4, decay_norm_and_bias=False,
                       ema_decay=0.996, warmup_steps=max(1, total // 10), final_lr_fraction=0.002)
        return DINO(out_dim=args.dino_out_dim, norm_last_layer=True, **options)
    return Daino(init_from=args.pretrained.get(name), **options)


def run(name: str, args, steps: int, probe: bool = False) -> dict:
    steps_per_epoch = max(1, steps // args.epochs)
    L.seed_everything(args.seed, workers=True, verbose=False)
    datamodule = ArrayDataModule(
        str(DATA),
        num_labels=args.num_labels,
        num_val=args.num_val,
        # SimMatch's CIFAR runs take "the rest of the training set" as unlabeled (paper 4.1).
        include_labeled_in_unlabeled=name != "simmatch",
        split_seed=args.split_seed,
        batch_size=args.batch_size,
        unlabeled_ratio=args.mu,
        steps_per_epoch=steps_per_epoch,
        num_workers=args.num_workers,
        eval_batch_size=500,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        unlabeled_views=[{"name": "multicrop", "num_local": args.num_local}] if name in CLUSTERING else None,
        unlabeled_batch_size=args.clustering_unlabeled_batch if name in CLUSTERING else None,
        labeled_views=[args.clustering_labeled_view] if name in CLUSTERING and args.clustering_labeled_view else None,
    )
    method = build_method(name, args, steps_per_epoch)
    recorder, evaluations = StepRecorder(), EvaluationRecorder(datamodule)
    evaluate = bool(args.eval_every and args.num_val and not probe)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=args.epochs if name == "boostedfixmatch" else None,
        reload_dataloaders_every_n_epochs=1 if name == "boostedfixmatch" else 0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1.0 if evaluate else 0,
        val_check_interval=args.eval_every if evaluate else None,
        check_val_every_n_epoch=None if evaluate else 1,
        num_sanity_val_steps=0,
        callbacks=[recorder, evaluations],
        deterministic=False,
    )
    load_before = os.getloadavg()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    trainer.fit(method, datamodule=datamodule)
    fit_seconds = time.perf_counter() - t0
    fit_cpu_seconds = time.process_time() - cpu0
    if name in PRETEXTS:
        path = Path(args.pretext_dir) / f"{name}.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(path)
        for method_name, pretext in PRETEXT_OF.items():
            if pretext == name:
                args.pretrained[method_name] = str(path)
    if probe:
        times = recorder.step_times[2:] or recorder.step_times
        return {"median_step_s": statistics.median(times), "fit_s": fit_seconds}
    final_train = {
        "mask_rate_last_step": recorder.history[-1].get("train/mask_rate") if recorder.history else None,
    }
    t1 = time.perf_counter()
    (test,) = trainer.test(method, datamodule=datamodule, verbose=False)
    test_seconds = time.perf_counter() - t1
    raw_test = None
    if method.ema is not None:  # the EMA lags the trained weights; with a cosine schedule to 1 it freezes near the end
        ema, method.ema = method.ema, None
        (raw_test,) = trainer.test(method, datamodule=datamodule, verbose=False)
        method.ema = ema
    last = max(1, steps // 10)
    result = {
        "test_acc": round(float(test["test/acc"]), 4),
        "test_balanced_acc": round(float(test["test/balanced_acc"]), 4),
        "test_acc_top5": round(float(test["test/acc_top5"]), 4) if "test/acc_top5" in test else None,
        "test_loss": round(float(test["test/loss"]), 4),
        "test_cluster_acc": round(float(test["test/cluster_acc"]), 4) if "test/cluster_acc" in test else None,
        "test_acc_raw_weights": round(float(raw_test["test/acc"]), 4) if raw_test is not None else None,
        "evaluated_on": ("online linear probe on the backbone" if isinstance(method, (SwAV, DINO))
                         else "EMA weights" if method.ema is not None else "raw weights"),
        "ema_updates": int(method.ema.num_updates) if method.ema is not None else None,
        **evaluations.summary(args.median_over),
        "steps": int(trainer.global_step),
        "epochs_run": int(trainer.current_epoch),
        "steps_per_epoch": steps_per_epoch,
        "wall_time_fit_s": round(fit_seconds, 1),
        "wall_time_test_s": round(test_seconds, 1),
        "cpu_time_fit_s_main_process": round(fit_cpu_seconds, 1),
        "load_average_before_and_after_fit": [load_before, os.getloadavg()],
        "median_step_s": round(statistics.median(recorder.step_times), 4),
        f"train_means_over_last_{last}_steps": {
            key.removeprefix("train/"): recorder.mean_over_last(key, last)
            for key in StepRecorder.KEYS
            if recorder.mean_over_last(key, last) is not None
        },
        # callback_metrics after fit: the value logged at the last training step (one batch).
        **{f"final_{k}": v for k, v in final_train.items() if v is not None},
    }
    # A coarse learning curve of the logged per-step training metrics (means over 10 windows).
    window = max(1, len(recorder.history) // 10)
    curve = []
    for start in range(0, len(recorder.history), window):
        chunk = recorder.history[start:start + window]
        entry = {"steps": f"{start}-{start + len(chunk) - 1}"}
        for key in ("train/loss_sup", "train/mask_rate", "train/pseudo_acc_masked", "train/pseudo_acc_all",
                    "train/consistency_weight", "train/lc_weight", "train/lc_neighbour_fraction", "train/feature_var",
                    "train/loss_swav", "train/loss_dino", "train/loss_unsup", "train/probe_backbone_acc",
                    "train/labeled_ce", "train/labeled_fit", "train/phase", "train/clustering_kept"):
            values = [h[key] for h in chunk if key in h]
            if values:
                entry[key.removeprefix("train/")] = round(statistics.fmean(values), 4)
        curve.append(entry)
    result["train_curve"] = curve
    if name == "boostedfixmatch":
        phases = ("warmup", "ssl", "rotnet", "clustering")
        per_phase = {}
        for seconds, entry in zip(recorder.step_times, recorder.history):
            phase = phases[int(entry.get("train/phase", 1))]
            per_phase.setdefault(phase, []).append(seconds)
        result["wall_time_by_phase_s"] = {p: round(sum(v), 1) for p, v in per_phase.items()}
        result["steps_by_phase"] = {p: len(v) for p, v in per_phase.items()}
        oracle = [k for k in test if k.startswith("test/oracle_top")]
        result.update({k.removeprefix("test/"): round(float(test[k]), 4) for k in oracle})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("fixed_budget_accuracy.json")))
    parser.add_argument("--methods", default="supervised,fixmatch,meanteacher")
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps per method")
    parser.add_argument("--epochs", type=int, default=20, help="the steps are split into this many epochs (MeanTeacher's rampup is in epochs)")
    parser.add_argument("--probe", type=int, default=0, help="only time K steps per method and print s/step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-labels", type=int, default=250)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--num-val", type=int, default=0, help="images held out of the training pool for model selection")
    parser.add_argument("--eval-every", type=int, default=0, help="validate (and record test accuracy) every N steps; needs --num-val")
    parser.add_argument("--median-over", type=int, default=20, help="report the median test accuracy of the last N evaluations")
    parser.add_argument("--ema-buffers", choices=("average", "copy", "own"), default=None,
                        help="EMA BatchNorm statistics of every method but Mean Teacher (default: each method's own)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mu", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--widen", type=int, default=2)
    parser.add_argument("--bn-momentum", type=float, default=0.01,
                        help="BatchNorm running-stat momentum; FixMatch's 0.001 leaves (1-0.001)^N of the initial "
                             "statistics after N steps, far too slow for a short run")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--lambda-u", type=float, default=1.0)
    parser.add_argument("--consistency-weight", type=float, default=100.0)
    parser.add_argument("--rampup-epochs", type=int, default=None, help="default: 40%% of --epochs")
    parser.add_argument("--lc-weight", type=float, default=10.0)
    parser.add_argument("--lc-epsilon", type=float, default=0.1)
    parser.add_argument("--pretext-steps", type=int, default=1000, help="steps of the SwAV/DINO pretraining runs")
    parser.add_argument("--pretext-dir", default="runs/benchmarks/pretext", help="where pretext checkpoints are written")
    parser.add_argument("--num-local", type=int, default=4, help="local crops (Suave/Daino CIFAR: 2 global + 4 local)")
    parser.add_argument("--lars-lr", type=float, default=2.8)
    parser.add_argument("--clustering-labeled-view", default=None,
                        help="labeled view of SwAV/DINO/Suave/Daino in place of the method's own (e.g. weak)")
    parser.add_argument("--clustering-optimizer", choices=("lars", "sgd"), default="lars",
                        help="sgd: the core benchmark's SGD (--lr, --weight-decay) in place of the paper's LARS")
    parser.add_argument("--lars-weight-decay", type=float, default=3e-6)
    parser.add_argument("--sinkhorn-epsilon", type=float, default=0.05)
    parser.add_argument("--queue-length", type=int, default=1024)
    parser.add_argument("--swav-prototypes", type=int, default=100)
    parser.add_argument("--dino-out-dim", type=int, default=1024)
    parser.add_argument("--dino-lr", type=float, default=5e-4)
    parser.add_argument("--clustering-unlabeled-batch", type=int, default=None,
                        help="unlabeled batch of SwAV/DINO/Suave/Daino (default batch-size x mu; Suave's CIFAR recipe is 1.28 x the labeled batch)")
    parser.add_argument("--init-from", action="append", default=[], metavar="METHOD=CKPT",
                        help="initialise suave_swav / daino_dino from an existing pretext checkpoint instead of running the pretext here")
    parser.add_argument("--boost-warmup-epochs", type=int, default=2, help="Boosted SSL: RotNet warm-up epochs")
    parser.add_argument("--boost-ssl-epochs", type=int, default=10, help="Boosted SSL: FixMatch epochs per round (then RotNet + clustering)")
    parser.add_argument("--lc-epsilon-quantile", type=float, default=None,
                        help="calibrate eps at LC start to this quantile of the batch's pair distances")
    args = parser.parse_args()
    args.pretrained = dict(item.split("=", 1) for item in args.init_from)
    if args.rampup_epochs is None:
        args.rampup_epochs = max(1, round(0.4 * args.epochs))

    if not DATA.is_file():
        sys.exit(f"error: {DATA} not found. This benchmark needs the real CIFAR-10 subset described in "
                 f"{DATA.parent / 'README.md'} (keys x_train, y_train, x_test, y_test, classes).")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*num_workers.*")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    if args.probe:
        for name in methods:
            r = run(name, args, args.probe, probe=True)
            print(f"{name}: {r['median_step_s']:.3f} s/step (fit {r['fit_s']:.1f} s for {args.probe} steps)", flush=True)
        return

    report = {
        "benchmark": "fixed-budget test accuracy, CIFAR-10 subset (real images), 250 labels",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": L.__version__,
            "torch_threads": args.threads,
            "load_average_at_start": os.getloadavg(),
        },
        "data": {
            "path": str(DATA),
            "train_pool": 10000,
            "num_val": args.num_val,
            "test_images": 5000,
            "num_labels": args.num_labels,
            "split_seed": args.split_seed,
            "mean": CIFAR10_MEAN,
            "std": CIFAR10_STD,
        },
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("out", "probe")},
            "steps_per_epoch": max(1, args.steps // args.epochs),
            "backbone": "wide_resnet",
            "backbone_options": {"depth": args.depth, "widen_factor": args.widen, "bn_momentum": args.bn_momentum},
            "backbone_note": f"depth {args.depth} = 6n+4 -> 3 stages of n={(args.depth - 4) // 6} pre-activation unit(s), "
                             f"channels {[16 * args.widen << s for s in range(3)]}",
            "optimizer": "SGD nesterov momentum 0.9, no decay on BN/bias",
            "scheduler": "fixmatch_cosine over max_steps",
            "images_per_step": {
                "supervised": args.batch_size,
                "fixmatch": args.batch_size * (1 + 2 * args.mu),
                "meanteacher": f"{args.batch_size * (1 + args.mu)} student + {args.batch_size * (1 + args.mu)} teacher (no grad)",
            },
            "views": {"supervised": "labeled weak", "fixmatch": "labeled weak; unlabeled weak+strong",
                      "meanteacher": "labeled weak x2; unlabeled weak x2 (student/teacher)"},
            "include_labeled_in_unlabeled": "every method but SimMatch (its CIFAR runs use the rest of the training set)",
            "ema_buffers": args.ema_buffers or "each method's default (FixMatch, Supervised, SimMatch: copy; Mean Teacher: own)",
        },
        "results": {},
    }
    out = Path(args.out)
    for name in methods:
        print(f"== {name}: {steps_of(name, args)} steps ...", flush=True)
        if name in PRETEXT_OF and name not in args.pretrained:
            sys.exit(f"error: {name} is initialised from the {PRETEXT_OF[name]} run: list {PRETEXT_OF[name]} before it in --methods")
        result = run(name, args, steps_of(name, args))
        if name in PRETEXT_OF:
            result["initialised_from"] = args.pretrained[name]
        report["results"][name] = result
        print(f"   test acc {result['test_acc']:.4f} (balanced {result['test_balanced_acc']:.4f}), "
              f"fit {result['wall_time_fit_s']:.0f} s", flush=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    results = report["results"]
    if "fixmatch" in results and "supervised" in results:
        report["gap_fixmatch_minus_supervised"] = round(results["fixmatch"]["test_acc"] - results["supervised"]["test_acc"], 4)
    if "meanteacher" in results and "supervised" in results:
        report["gap_meanteacher_minus_supervised"] = round(results["meanteacher"]["test_acc"] - results["supervised"]["test_acc"], 4)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["total_wall_time_s"] = round(sum(r["wall_time_fit_s"] + r["wall_time_test_s"] for r in results.values()), 1)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: {"test_acc": v["test_acc"], "balanced": v["test_balanced_acc"]} for k, v in results.items()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
