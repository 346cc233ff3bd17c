"""Can the data pipeline feed the accelerator? Training images/s against the images/s the views supply.

    python experiments/benchmarks/gpu_throughput.py                 # one GPU, under 8 minutes
    python experiments/benchmarks/gpu_throughput.py --device cpu --quick --out /tmp/gpu_throughput_cpu.json

Training: FixMatch's whole step (WRN-28-2, 64 labeled + mu=7: 960 images; training_step, backward,
SGD, schedule, EMA) on a batch replayed on the device, for each precision (bf16-mixed, 32-true),
memory layout (channels-last on/off) and `torch.compile` of the backbone (off/on): images/s
after warm-up (compile time reported apart). Every other method's step on the GPU, multi-crop
included, is `method_overhead.py --precision bf16-mixed`.

Supply: images/s the training views deliver for each of weak, strong (FixMatch RandAugment +
Cutout) and multicrop, (a) today's per-item path in N DataLoader workers (`augment_on: workers`)
and (b) `augment_on: device`: the workers only draw each image's parameters (`View.plan`),
measured with the same N, and the device finishes batches of 448 (`View.apply_batch`). The
device path supplies min(plan rate, finish rate). Images are the real CIFAR-10 subset when
`../shared/data/cifar10_subset.npz` is there, else random. Writes one JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader, Dataset

from benchmark_common import REPO, machine_info

sys.path.insert(0, str(REPO))

from datamodules.info import CIFAR10  # noqa: E402
from datamodules.views import build_views  # noqa: E402
from sslzoo.methods import FixMatch  # noqa: E402
from sslzoo.methods.optim import build_optimizer, build_scheduler, param_groups  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cifar10_subset.npz"
VIEWS = {"weak": "weak", "strong": "strong", "multicrop": {"name": "multicrop"}}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_images(count: int) -> torch.Tensor:
    """uint8 (count, 3, 32, 32): the real subset's first images of a shuffled order, else random."""
    if DATA.is_file():
        x = np.load(DATA)["x_train"]
        order = np.random.default_rng(0).permutation(len(x))[:count]
        return torch.from_numpy(x[order]).permute(0, 3, 1, 2).contiguous()
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


# ---- training ------------------------------------------------------------------------------
def replayed_batch(device: torch.device, labeled: int, unlabeled: int) -> dict:
    """FixMatch's batch: labeled weak, unlabeled [weak, strong]."""
    g = torch.Generator().manual_seed(0)

    def images(n):
        return torch.randn(n, 3, 32, 32, generator=g).to(device)

    unlabeled_x = [images(unlabeled), images(unlabeled)]
    return {
        "labeled": {"x": images(labeled), "y": torch.randint(0, 10, (labeled,), generator=g).to(device),
                    "idx": torch.arange(labeled, device=device)},
        "unlabeled": {"x": unlabeled_x, "y_hidden": torch.randint(0, 10, (unlabeled,), generator=g).to(device),
                      "idx": torch.arange(unlabeled, device=device)},
    }


def train_rate(device: torch.device, precision: str, channels_last: bool, compile_backbone: bool,
               labeled: int, mu: int, warmup: int, timed: int) -> dict:
    torch.manual_seed(0)
    method = FixMatch(num_classes=10, backbone="wrn_28_2", channels_last=channels_last, compile=compile_backbone)
    method.log = lambda *args, **kwargs: None  # training_step logs; without a Trainer that is a no-op here
    if channels_last:
        method.to(memory_format=torch.channels_last)
    method.to(device).train()
    hp = method.hparams
    optimizer = build_optimizer(param_groups(method.trainable_modules(), hp.weight_decay), hp.optimizer, hp.lr, hp.momentum, hp.nesterov)
    scheduler = build_scheduler(optimizer, hp.scheduler, 2**20)
    batch = replayed_batch(device, labeled, labeled * mu)
    images = labeled + 2 * labeled * mu
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def step():
        with autocast:
            loss = method.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        method.after_optimizer_step()

    start = time.perf_counter()
    step()
    synchronize(device)
    first_step_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(timed):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"method": "FixMatch", "precision": precision, "channels_last": channels_last, "compile": compile_backbone,
            "images_per_step": images, "median_step_s": median, "train_images_per_s": images / median,
            "first_step_s_incl_compile": first_step_s}


# ---- supply --------------------------------------------------------------------------------
class ViewDataset(Dataset):
    def __init__(self, images: torch.Tensor, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        torch.manual_seed(i)  # a per-item seed, as StreamSampler gives
        return self.transform(self.images[i])


def loader_rate(dataset: Dataset, workers: int, batch: int, seconds: float) -> float:
    """Images/s through a DataLoader with `workers` workers, after its first batch."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False, persistent_workers=False)
    iterator, count = iter(loader), 0
    next(iterator)
    start = time.perf_counter()
    for _ in iterator:
        count += batch
        if time.perf_counter() - start > seconds:
            break
    return count / (time.perf_counter() - start)


def finish_rate(views, planned_batch, batch: int, device: torch.device, repeats: int) -> float:
    """Source images/s of `MultiView.finish_batch` on the device for one collated planned batch of `batch` images."""
    moved = move_data_to_device(planned_batch, device)
    views.finish_batch(moved)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        views.finish_batch(moved)
    synchronize(device)
    return repeats * batch / (time.perf_counter() - start)


def supply_rates(view: str, images: torch.Tensor, device: torch.device, workers: list[int], batch: int, seconds: float) -> dict:
    views = build_views([VIEWS[view]], CIFAR10)
    result = {"view": view, "batch": batch, "per_item_workers": {}, "plan_only_workers": {}}
    for n in workers:
        result["per_item_workers"][n] = loader_rate(ViewDataset(images, views), n, batch, seconds)
        result["plan_only_workers"][n] = loader_rate(ViewDataset(images, views.plan), n, batch, seconds)
    planned = next(iter(DataLoader(ViewDataset(images, views.plan), batch_size=batch)))
    result["device_finish_images_per_s"] = finish_rate(views, planned, batch, device, repeats=5)
    result["device_path_supply"] = {n: min(rate, result["device_finish_images_per_s"]) for n, rate in result["plan_only_workers"].items()}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="a few steps at a small batch (a check of the script, e.g. on CPU)")
    p.add_argument("--workers", default="4,8,16", help="DataLoader worker counts to measure (capped at the CPU count)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument("--supply-only", action="store_true", help="only the views' images/s (e.g. per core on a CPU machine)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process (the device path's finishing on a CPU)")
    p.add_argument("--out", default=str(Path(__file__).with_name("gpu_throughput.json")))
    args = p.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    labeled, warmup, timed = (4, 1, 2) if args.quick else (64, 5, 20)
    workers = sorted({min(int(n), os.cpu_count() or 1) for n in args.workers.split(",")})
    report = {"benchmark": __doc__.split("\n\n")[0], "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "machine": machine_info(),
              "torch_threads": torch.get_num_threads(), "train": [], "supply": []}

    def save():
        report["wall_s"] = round(time.perf_counter() - started, 1)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")

    precisions = ["bf16-mixed", "32-true"]
    variants = [(p_, cl, False) for p_ in precisions for cl in (True, False)]
    if not args.no_compile:
        variants += [("bf16-mixed", True, True), ("bf16-mixed", False, True)]
    for precision, channels_last, compile_backbone in [] if args.supply_only else variants:
        row = train_rate(device, precision, channels_last, compile_backbone, labeled, 7, warmup, timed)
        print(f"FixMatch {precision} channels_last={channels_last} compile={compile_backbone}: {row['train_images_per_s']:.0f} img/s", flush=True)
        report["train"].append(row)
        save()
    images = cifar_images(2048 if args.quick else 20000)
    for view in VIEWS:
        row = supply_rates(view, images, device, workers, 64 if args.quick else 448, 1.0 if args.quick else 6.0)
        print(f"{view}: per-item {row['per_item_workers']} plan-only {row['plan_only_workers']} "
              f"device finish {row['device_finish_images_per_s']:.0f} img/s", flush=True)
        report["supply"].append(row)
        save()
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
