"""Per-method overhead: each method's full training step against a bare step of the same images
through the same backbone.

For every method, with one backbone for all (default WRN-28-2) and CIFAR-10-shaped data:
  - the method is built with its paper recipe (model options and views from the YAML under
    experiments/ named in RECIPES; backbone, classes and checkpoint paths left out) plus the
    steady-state settings listed there, so that every per-step part (LC loss, SimMatch's bank,
    queues, ...) is active from the first step;
  - one real training batch is built by the real datamodule pipeline (ArrayDataModule on a fake
    uint8 CIFAR-shaped .npz in a temp dir, the method's views, `--labeled-batch` B and
    unlabeled batch B x `--mu`) and is then served again at every step, already on the device;
  - a real Trainer runs the method (`trainer.fit`), so (a) "method step" is Lightning's whole
    step: on_train_batch_start, training_step, backward, optimizer step, `after_optimizer_step`
    (EMA, queues, banks, centres) and logging; Boosted SSL's manual steps likewise;
  - (b) "bare step": the same images, concatenated per resolution (one backbone pass each, as the
    multi-crop methods run), through `method.network.backbone` + a linear head, cross-entropy on
    random labels, backward and an optimizer of the method's kind and settings, at lr 0 (the same
    arithmetic, but the weights stay the method's).
(a) and (b) alternate step by step after `--warmup` steps of each; figures are medians of
`--timed` steps. Every method runs in a fresh child process. Peak RSS is sampled per phase every
5 ms; on CUDA also torch.cuda.max_memory_allocated per phase. Data loading is NOT timed.

    python experiments/benchmarks/method_overhead.py [--methods FixMatch,Suave] [--backbone wrn_28_2]
        [--labeled-batch 8] [--mu 7] [--warmup 1] [--timed 5] [--precision 32-true|bf16-mixed]
        [--threads 2] [--out experiments/benchmarks/method_overhead.json]
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from benchmark_common import MB, REPO, RSSPeak, current_rss_bytes, machine_info, max_rss_mb, run_child, step_time_summary, sync
from step_parts import op_categories

sys.path.insert(0, str(REPO))

import sslzoo.methods as methods  # noqa: E402
from datamodules import ArrayDataModule  # noqa: E402
from sslzoo.methods.boosted import BoostedSSL  # noqa: E402
from sslzoo.methods.optim import build_optimizer, param_groups  # noqa: E402

EXPERIMENTS = REPO / "experiments"
# Recipe options that belong to one run, not to the method: the benchmark sets them itself.
RUN_SPECIFIC = {"num_classes", "num_clusters", "backbone", "backbone_options", "init_from", "init_parts", "pretext", "neighbours_file"}
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class Entry:
    """How one benchmarked method is built.

    cls: the class in sslzoo.methods. recipe: YAML under experiments/ with its model options
    and views. overrides: steady-state option values (why: in RECIPES). boosted_recipe: for a
    Boosted SSL class on another base method, the YAML its Boosted options come from.
    views_recipe: take the views from this YAML instead. phase: pin Boosted SSL's phase.
    """

    cls: str
    recipe: str | None
    overrides: dict = field(default_factory=dict)
    boosted_recipe: str | None = None
    views_recipe: str | None = None
    phase: str | None = None


RECIPES: dict[str, Entry] = {
    "Supervised": Entry("Supervised", "supervised/cifar10_40.yaml"),
    "FixMatch": Entry("FixMatch", "fixmatch/cifar10_40.yaml"),
    "MeanTeacher": Entry("MeanTeacher", "meanteacher/cifar10_4000.yaml"),
    # LC switches on after epoch 600 in the recipe; -1 turns it on from the first step.
    "LCMeanTeacher": Entry("LCMeanTeacher", "lc_meanteacher/cifar10_4000.yaml", {"lc_start_epoch": -1}),
    # The bank's label propagation is skipped during its 1 warm-up epoch.
    "SimMatch": Entry("SimMatch", "simmatch/cifar10_40.yaml", {"bank_warmup_epochs": 0}),
    # The queue (filled with random unit vectors before the first step) is used from the first step;
    # frozen prototypes (first 390 steps) would skip their optimizer update.
    "SwAV": Entry("SwAV", "swav/cifar100.yaml", {"queue_start_epoch": 0, "freeze_prototypes_steps": 0}),
    "Suave": Entry("Suave", "suave/cifar100_400.yaml"),
    # No DINO recipe in experiments/: the class defaults (out_dim 65536) with SwAV's CIFAR multi-crop.
    "DINO": Entry("DINO", None, views_recipe="swav/cifar100.yaml"),
    "Daino": Entry("Daino", "daino/cifar100_400.yaml"),
    "SimCLR": Entry("SimCLR", "scan/cifar10_simclr.yaml"),
    # The neighbour table is filled with random pool indices (mining is not part of a step); the head is
    # chosen by the training loss, so no validation neighbours are mined (they only serve validation).
    "SCAN": Entry("SCAN", "scan/cifar10_scan.yaml", {"head_selection": "train_loss"}),
    # At threshold 0.99 an untrained network has no confident sample and skips backward and step.
    "SCANSelfLabel": Entry("SCANSelfLabel", "scan/cifar10_selflabel.yaml", {"threshold": 0.0}),
    # Boosted SSL in its SSL epochs (10 of every 12); warm-up 0 makes epoch 0 an SSL epoch.
    "BoostedFixMatch": Entry("BoostedFixMatch", "boosted/cifar10_40.yaml", {"warmup_epochs": 0}),
    "BoostedMeanTeacher": Entry("BoostedMeanTeacher", "meanteacher/cifar10_4000.yaml", {"warmup_epochs": 0}, "boosted/cifar10_40.yaml"),
    "BoostedSimMatch": Entry("BoostedSimMatch", "simmatch/cifar10_40.yaml", {"warmup_epochs": 0, "bank_warmup_epochs": 0},
                             "boosted/cifar10_40.yaml"),
    # Boosted SSL's own steps, phase pinned; their batch is B x mu unlabeled images like the SSL step's.
    "BoostedFixMatch/clustering": Entry("BoostedFixMatch", "boosted/cifar10_40.yaml", {"warmup_epochs": 0}, phase="clustering"),
    "BoostedFixMatch/rotnet": Entry("BoostedFixMatch", "boosted/cifar10_40.yaml", {"warmup_epochs": 0}, phase="rotnet"),
}


@dataclass
class Settings:
    backbone: str = "wrn_28_2"
    backbone_options: dict = field(default_factory=dict)
    labeled_batch: int = 8
    mu: int = 7
    warmup: int = 1
    timed: int = 5
    precision: str = "32-true"
    profile: bool = False
    num_labels: int = 40
    num_classes: int = 10
    image_size: int = 32

    @property
    def unlabeled_batch(self) -> int:
        return self.labeled_batch * self.mu


# ---- methods --------------------------------------------------------------------------------
def read_recipe(relative: str) -> dict:
    path = EXPERIMENTS / relative
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} not found; fix RECIPES in {Path(__file__).name}")
    return yaml.safe_load(path.read_text())


def recipe_options(relative: str | None) -> dict:
    if relative is None:
        return {}
    model = read_recipe(relative)["model"].get("init_args", {})
    return {k: v for k, v in model.items() if k not in RUN_SPECIFIC}


def recipe_views(relative: str | None) -> dict:
    """The recipe's explicit views (None where the method's own `views` apply)."""
    data = read_recipe(relative).get("data", {}).get("init_args", {}) if relative else {}
    return {"labeled_views": data.get("labeled_views"), "unlabeled_views": data.get("unlabeled_views")}


def method_options(entry: Entry, settings: Settings) -> dict:
    options = recipe_options(entry.recipe)
    if entry.boosted_recipe:
        boosted_keys = set(inspect.signature(BoostedSSL.__init__).parameters) - {"self", "kwargs"}
        options.update({k: v for k, v in recipe_options(entry.boosted_recipe).items() if k in boosted_keys})
    options.update(entry.overrides)
    if entry.phase is not None:
        options["clustering_batch_size"] = settings.unlabeled_batch
    return options


def pin_phase(cls: type, phase: str) -> type:
    """`cls` with Boosted SSL's phase fixed (its clustering and RotNet steps on their own)."""
    return type(f"{cls.__name__}_{phase}", (cls,), {"phase": lambda self, epoch=None: (phase, 0)})


def build_method(name: str, settings: Settings) -> methods.SSLMethod:
    if name not in RECIPES:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(RECIPES)}")
    entry = RECIPES[name]
    cls = getattr(methods, entry.cls)
    if entry.phase is not None:
        cls = pin_phase(cls, entry.phase)
    method = cls(num_classes=settings.num_classes, backbone=settings.backbone, backbone_options=settings.backbone_options,
                 **method_options(entry, settings))
    return method


def fill_per_run_state(method: methods.SSLMethod, datamodule: ArrayDataModule) -> None:
    """What a long run has by the time it is in steady state: a full queue, a neighbour table."""
    queue = getattr(method, "queue", None)
    if queue is not None and not queue.full:
        queue.push(F.normalize(torch.randn(queue.length, *queue.items.shape[1:], generator=torch.Generator().manual_seed(0)), dim=-1))
    table = getattr(method, "neighbour_table", None)
    if table is not None and len(table) == 0:
        anchors = torch.as_tensor(datamodule.unlabeled_indices)
        others = anchors[torch.randint(len(anchors), (len(anchors), table.num_candidates - 1), generator=torch.Generator().manual_seed(0))]
        table.fill(anchors, torch.cat([anchors[:, None], others], dim=1))


# ---- data -----------------------------------------------------------------------------------
def write_fake_cifar(path: Path, settings: Settings, num_train: int = 50_000, num_test: int = 100) -> Path:
    """A CIFAR-10-shaped .npz of random uint8 images (the pool size matters to SCAN's and Boosted SSL's tables)."""
    rng = np.random.default_rng(0)
    shape = (settings.image_size, settings.image_size, 3)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (num_train, *shape), dtype=np.uint8),
        y_train=np.arange(num_train) % settings.num_classes,
        x_test=rng.integers(0, 256, (num_test, *shape), dtype=np.uint8),
        y_test=np.arange(num_test) % settings.num_classes,
    )
    return path


class Repeat:
    """One item served `times` times (Lightning treats it as one iterable, not a collection)."""

    def __init__(self, item, times: int):
        self.item, self.times = item, times

    def __iter__(self):
        return itertools.repeat(self.item, self.times)

    def __len__(self) -> int:
        return self.times


class ReplayDataModule(ArrayDataModule):
    """The real datamodule, whose training loader serves its first batch at every step, already
    on the device (so neither data loading nor the host-to-device copy is timed)."""

    def __init__(self, path: str, steps: int, **kwargs):
        super().__init__(path, steps_per_epoch=steps, num_workers=0, shuffle_seed=0, **kwargs)
        self.steps = steps
        self.batch = None

    def first_batch(self):
        batch, _, _ = next(iter(super().train_dataloader()))
        return batch

    def train_dataloader(self):
        if self.batch is None:
            self.batch = move_data_to_device(self.first_batch(), self.trainer.strategy.root_device)
        return Repeat(self.batch, self.steps)


def datamodule_for(name: str, data_file: Path, settings: Settings) -> ReplayDataModule:
    entry = RECIPES[name]
    views = {} if entry.phase is not None else recipe_views(entry.views_recipe or entry.recipe)
    return ReplayDataModule(str(data_file), settings.warmup + settings.timed + int(settings.profile), num_labels=settings.num_labels,
                            batch_size=settings.labeled_batch, unlabeled_ratio=settings.mu, **views)


def image_tensors(batch) -> list[torch.Tensor]:
    """Every image tensor in a training batch; a stack [B, k, C, H, W] (RotNet) counts as B*k images."""
    found = []

    def visit(value):
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and value.dim() >= 4:
                found.append(value.flatten(0, value.dim() - 4))
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(batch)
    return found


def bare_inputs(batch) -> list[torch.Tensor]:
    """The batch's images concatenated per resolution, largest first (one backbone pass each)."""
    by_size: dict[tuple, list[torch.Tensor]] = {}
    for x in image_tensors(batch):
        by_size.setdefault(tuple(x.shape[-2:]), []).append(x)
    return [torch.cat(by_size[size]) for size in sorted(by_size, reverse=True)]


def batch_structure(batch, prefix: str = "") -> dict[str, list[int]]:
    """{"labeled.x": [8, 3, 32, 32], "unlabeled.x[0]": [...], ...}: the shapes of the batch's tensors."""
    if isinstance(batch, torch.Tensor):
        return {prefix: list(batch.shape)}
    if isinstance(batch, Mapping):
        return {k: v for key, item in batch.items() for k, v in batch_structure(item, f"{prefix}.{key}" if prefix else str(key)).items()}
    if isinstance(batch, (list, tuple)):
        return {k: v for i, item in enumerate(batch) for k, v in batch_structure(item, f"{prefix}[{i}]").items()}
    return {}


# ---- the two steps --------------------------------------------------------------------------
class BareStep:
    """Backbone + linear head over the batch's images, cross-entropy on random labels, backward and
    an optimizer of the method's kind and settings at lr 0 (same arithmetic, weights unchanged)."""

    def __init__(self, method: methods.SSLMethod, batch, precision: str):
        backbone = method.network.backbone
        device = next(backbone.parameters()).device
        self.network = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, method.num_classes)).to(device)
        hp = method.hparams
        groups = param_groups([self.network], hp.weight_decay, hp.decay_norm_and_bias)
        self.optimizer = build_optimizer(groups, hp.optimizer, 0.0, hp.momentum, hp.nesterov)
        self.inputs = bare_inputs(batch)
        generator = torch.Generator().manual_seed(0)
        self.labels = [torch.randint(method.num_classes, (len(x),), generator=generator).to(device) for x in self.inputs]
        self.device_type, self.autocast = device.type, precision == "bf16-mixed"

    @property
    def images(self) -> int:
        return sum(len(x) for x in self.inputs)

    def __call__(self) -> None:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = sum(F.cross_entropy(self.network(x), y) for x, y in zip(self.inputs, self.labels))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class PhaseMemory:
    """Peak RSS (and CUDA allocation) of one phase over all its steps."""

    def __init__(self):
        self.peak_rss, self.cuda_peak, self._probe = 0, 0, None

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._probe = RSSPeak().__enter__()
        return self

    def __exit__(self, *exc):
        self._probe.__exit__(*exc)
        self.peak_rss = max(self.peak_rss, self._probe.peak)
        if torch.cuda.is_available():
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())


class ForwardedPixels:
    """Pixels (images x height x width) the method sends through its backbones in one step: with
    gradient (the trained network, forward + backward) and without (a teacher, a no-grad pass)."""

    def __init__(self, method: methods.SSLMethod):
        self.counting, self.with_grad, self.without_grad = False, 0, 0
        teacher = getattr(getattr(method, "ema", None), "module", None)
        backbones = {id(m): m for m in (method.network.backbone, getattr(teacher, "backbone", None)) if m is not None}
        for backbone in backbones.values():
            backbone.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        x = args[0]
        if self.counting and isinstance(x, torch.Tensor) and x.dim() == 4:
            pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
            if torch.is_grad_enabled():
                self.with_grad += pixels
            else:
                self.without_grad += pixels


class AlternatingTimer(L.Callback):
    """Times Lightning's whole training step of the method, then runs and times one bare step."""

    def __init__(self, warmup: int, precision: str, profile_batch: int | None = None):
        self.warmup, self.precision, self.profile_batch = warmup, precision, profile_batch
        self.profiles: dict[str, dict] = {}
        self._profiler = None
        self.times: dict[str, list[float]] = {"method": [], "bare": []}
        self.parts: dict[str, list[float]] = {}
        self.memory = {"method": PhaseMemory(), "bare": PhaseMemory()}
        self.bare: BareStep | None = None

    def on_train_start(self, trainer, pl_module):
        self.bare = BareStep(pl_module, trainer.datamodule.batch, self.precision)
        self.pixels = ForwardedPixels(pl_module)
        self.pixels.counting = True  # the first step only (every step forwards the same)

    def _mark(self, name: str) -> None:
        sync()
        self.marks.setdefault(name, time.perf_counter())

    def _profiled(self, step) -> dict:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            step()
        return op_categories(profiler)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.profile_batch:  # one extra, untimed step: where the method's time goes, by operator
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]).__enter__()
            return
        self.memory["method"].__enter__()
        self.marks: dict[str, float] = {}
        self._mark("start")

    def on_before_backward(self, trainer, pl_module, loss):
        if self._profiler is None:
            self._mark("forward_done")

    def on_after_backward(self, trainer, pl_module):
        if self._profiler is None:
            self._mark("backward_done")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.pixels.counting = False
        if batch_idx == self.profile_batch:
            self._profiler.__exit__(None, None, None)
            self.profiles = {"method": op_categories(self._profiler), "bare": self._profiled(self.bare)}
            self._profiler = None
            return
        self._mark("end")
        self.memory["method"].__exit__(None, None, None)
        with self.memory["bare"]:
            sync()
            start = time.perf_counter()
            self.bare()
            sync()
            bare_time = time.perf_counter() - start
        if batch_idx < self.warmup:
            return
        marks = self.marks
        self.times["method"].append(marks["end"] - marks["start"])
        self.times["bare"].append(bare_time)
        if "forward_done" in marks and "backward_done" in marks:
            for part, (begin, end) in {"forward_and_loss": ("start", "forward_done"), "backward": ("forward_done", "backward_done"),
                                       "optimizer_state_and_logging": ("backward_done", "end")}.items():
                self.parts.setdefault(part, []).append(marks[end] - marks[begin])


def work_normalised(record: dict, pixels: ForwardedPixels, bare: BareStep) -> dict:
    """The ratio per unit of backbone work: a pixel with gradient costs forward + backward (about 3
    forwards), a no-grad (teacher) pixel one forward; the bare step forwards each batch pixel once
    with gradient. Above 1 here is overhead outside the backbone passes the algorithm asks for."""
    bare_pixels = sum(x.shape[0] * x.shape[-2] * x.shape[-1] for x in bare.inputs)
    work = (3 * pixels.with_grad + pixels.without_grad) / (3 * bare_pixels)
    return {
        "backbone_pixels_per_step": {"with_grad": pixels.with_grad, "without_grad": pixels.without_grad, "bare": bare_pixels},
        "backbone_work_over_bare": round(work, 4),
        "ratio_per_backbone_work": round(record["ratio_method_over_bare"] / work, 4) if work else None,
    }


def count_parameters(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def measure_method(name: str, data_file: Path, settings: Settings) -> dict:
    """Build `name`, run warm-up + timed steps with a real Trainer and return its record."""
    if settings.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {settings.precision!r}")
    L.seed_everything(0, verbose=False)
    method = build_method(name, settings)
    datamodule = datamodule_for(name, data_file, settings)
    datamodule.setup("fit")
    fill_per_run_state(method, datamodule)
    steps = settings.warmup + settings.timed
    timer = AlternatingTimer(settings.warmup, settings.precision, profile_batch=steps if settings.profile else None)
    steps += int(settings.profile)
    trainer = L.Trainer(
        accelerator="auto", devices=1, precision=settings.precision, max_steps=steps, max_epochs=1,
        reload_dataloaders_every_n_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    rss_start, maxrss_start = current_rss_bytes(), max_rss_mb()
    load_start = os.getloadavg()
    trainer.fit(method, datamodule=datamodule)
    if trainer.global_step != steps or len(timer.times["method"]) != settings.timed:
        raise RuntimeError(f"{name}: expected {steps} optimizer steps and {settings.timed} timed ones, got "
                           f"{trainer.global_step} and {len(timer.times['method'])}")
    batch, bare = datamodule.batch, timer.bare
    images = sum(len(x) for x in image_tensors(batch))
    record = {
        "method": name,
        "class": RECIPES[name].cls,
        "recipe": RECIPES[name].recipe,
        "phase": RECIPES[name].phase,
        "options": method_options(RECIPES[name], settings),
        "views": method.trainer.datamodule.stream_views(),
        "batch_structure": batch_structure(batch),
        "images_per_step": images,
        "images_by_resolution": {f"{x.shape[-2]}x{x.shape[-1]}": len(x) for x in bare.inputs},
        "trainable_parameters": {"method": count_parameters(*method.trainable_modules()), "bare": count_parameters(bare.network)},
    }
    for phase, times in timer.times.items():
        memory = timer.memory[phase]
        record[f"{phase}_step"] = {
            **step_time_summary(times, images),
            "peak_rss_mb": round(memory.peak_rss / MB, 1),
            "peak_rss_above_start_mb": round((memory.peak_rss - rss_start) / MB, 1),
        }
        if torch.cuda.is_available():
            record[f"{phase}_step"]["cuda_max_memory_allocated_mb"] = round(memory.cuda_peak / MB, 1)
    record["method_step"]["parts_median_s"] = {k: round(float(np.median(v)), 5) for k, v in timer.parts.items()}
    record["ratio_method_over_bare"] = round(record["method_step"]["median_step_s"] / record["bare_step"]["median_step_s"], 4)
    record["ratio_of_min_times"] = round(record["method_step"]["min_step_s"] / record["bare_step"]["min_step_s"], 4)
    record["rss_at_start_mb"] = round(rss_start / MB, 1)
    record["ru_maxrss_delta_mb"] = round(max_rss_mb() - maxrss_start, 1)
    record["load_average_during"] = [load_start, os.getloadavg()]
    if timer.profiles:
        record["profiled_operator_categories_s"] = timer.profiles
    record.update(work_normalised(record, timer.pixels, bare))
    return record


# ---- command line ---------------------------------------------------------------------------
NOTES = [
    "method_step = Lightning's whole training step (trainer.fit on a real Trainer, logger off): on_train_batch_start, "
    "training_step, backward, optimizer step and LR schedule, after_optimizer_step (EMA/queues/banks/centres) and "
    "self.log; Boosted SSL's manual steps likewise. The batch is built once by the real datamodule pipeline "
    "(ArrayDataModule on random uint8 CIFAR-shaped images, the recipe's views) and served again, already on the device: "
    "data loading and host-to-device copies are not timed.",
    "bare_step = the batch's images concatenated per resolution, through method.network.backbone + a linear head, "
    "cross-entropy on random labels, backward and an optimizer of the method's kind and settings at lr 0 (the same "
    "arithmetic; the weights stay the method's). Its optimizer covers backbone + linear head only, so a method's "
    "extra heads count as its overhead.",
    "Steps alternate method, bare, method, bare after the warm-up steps of each; times are medians; every method runs "
    "in a fresh child process. Peak RSS per phase is sampled every 5 ms (it includes the 150 MB fake dataset and the "
    "model); peak_rss_above_start_mb is relative to the RSS before trainer.fit.",
    "Method options are the recipe's (experiments/<recipe>) minus backbone, classes and checkpoint paths, plus the "
    "steady-state overrides listed per record (see RECIPES in the script for why each is there).",
]


def parse_settings(args) -> Settings:
    return Settings(backbone=args.backbone, backbone_options=json.loads(args.backbone_options), labeled_batch=args.labeled_batch,
                    mu=args.mu, warmup=args.warmup, timed=args.timed, precision=args.precision, num_labels=args.num_labels,
                    profile=args.profile)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("method_overhead.json")))
    parser.add_argument("--methods", default=",".join(RECIPES), help=f"comma list from: {', '.join(RECIPES)}")
    parser.add_argument("--backbone", default="wrn_28_2")
    parser.add_argument("--backbone-options", default="{}", help='JSON, e.g. \'{"depth": 10, "widen_factor": 1}\' with --backbone wide_resnet')
    parser.add_argument("--labeled-batch", type=int, default=8, help="labeled images per step (B)")
    parser.add_argument("--mu", type=int, default=7, help="unlabeled images per labeled image (the unlabeled batch is B x mu)")
    parser.add_argument("--num-labels", type=int, default=40)
    parser.add_argument("--pool-size", type=int, default=50_000, help="training images of the fake CIFAR-10 (the real one has 50,000)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each kind first")
    parser.add_argument("--timed", type=int, default=5, help="timed steps of each kind")
    parser.add_argument("--precision", default="32-true", choices=PRECISIONS)
    parser.add_argument("--profile", action="store_true", help="one extra step of each kind under torch.profiler: self CPU seconds by operator category")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: the method to measure in this process
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = parse_settings(args)
    if args.child:
        Path(args.result_file).write_text(json.dumps(measure_method(args.child, Path(args.data_file), settings)))
        return
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if settings.warmup < 0 or settings.timed < 1:
        parser.error("--warmup must be >= 0 and --timed >= 1")
    report = {
        "benchmark": "per-method training step vs a bare forward+backward+optimizer step of the same images through the same backbone",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {**machine_info(), "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "settings": asdict(settings),
        "notes": NOTES,
        "results": [],
    }
    passthrough = ["--backbone", args.backbone, "--backbone-options", args.backbone_options, "--labeled-batch", str(args.labeled_batch),
                   "--mu", str(args.mu), "--num-labels", str(args.num_labels), "--warmup", str(args.warmup), "--timed", str(args.timed),
                   "--precision", args.precision, "--threads", str(args.threads)] + (["--profile"] if args.profile else [])
    with tempfile.TemporaryDirectory() as tmp:
        data_file = write_fake_cifar(Path(tmp) / "fake_cifar10.npz", settings, num_train=args.pool_size)
        for name in names:
            print(f"{name}: {settings.warmup} warm-up + {settings.timed} timed steps of each kind ...", flush=True)
            record = run_child(__file__, [*passthrough, "--child", name, "--data-file", str(data_file)])
            method, bare = record["method_step"], record["bare_step"]
            print(f"  {record['images_per_step']} images/step: method {method['median_step_s']:.3f} s ({method['images_per_s']:.1f} img/s), "
                  f"bare {bare['median_step_s']:.3f} s ({bare['images_per_s']:.1f} img/s), ratio {record['ratio_method_over_bare']:.3f}, "
                  f"peak RSS {method['peak_rss_mb']:.0f}/{bare['peak_rss_mb']:.0f} MB", flush=True)
            report["results"].append(record)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(markdown_table(report["results"]))


def markdown_table(records: list[dict]) -> str:
    rows = ["| method | images/step | method s/step | bare s/step | ratio | method img/s | bare img/s | peak RSS method/bare MB |",
            "|---|---|---|---|---|---|---|---|"]
    for r in records:
        m, b = r["method_step"], r["bare_step"]
        rows.append(f"| {r['method']} | {r['images_per_step']} | {m['median_step_s']:.3f} | {b['median_step_s']:.3f} | "
                    f"{r['ratio_method_over_bare']:.2f} | {m['images_per_s']:.1f} | {b['images_per_s']:.1f} | "
                    f"{m['peak_rss_mb']:.0f}/{b['peak_rss_mb']:.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
