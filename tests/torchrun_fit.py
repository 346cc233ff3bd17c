"""Trains the runs of `RUNS` for a few steps on tiny data; the script torchrun launches in
tests/test_multinode.py (accelerator cpu, strategy ddp, gloo). Rank 0 saves each run's final
weights to <out>/<run>.pt. The same `RUNS` give the test its one-process references.

    python -m torch.distributed.run --nnodes N --nproc-per-node D ... tests/torchrun_fit.py --data tiny.npz --out DIR
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import lightning as L  # noqa: E402
import torch  # noqa: E402

import tiny  # noqa: E402
from sslzoo.methods import FixMatch, Suave  # noqa: E402
from sslzoo.modules.sync_batchnorm import SyncBatchNormAnyDevice  # noqa: E402
from test_resume import StopAt  # noqa: E402

GLOBAL_BATCH = 4  # labeled images per step over all processes (x 2 unlabeled)
MAX_STEPS = 3
MULTICROP = [{"name": "multicrop", "num_local": 2, "local_size": 4}]


def fixmatch() -> FixMatch:
    return FixMatch(num_classes=4, backbone="tiny_mlp", threshold=0.3, lr=0.1, ema_decay=0.9)


def suave(**options) -> Suave:
    # The queue (8 = one step of 8 unlabeled images) fills at step 0 and feeds Sinkhorn from step 1.
    return Suave(num_classes=4, backbone="tiny_conv", hidden_dim=16, projection_dim=8, queue_length=8, lr=0.1, **options)


def datamodule(path, world_size: int, **options):
    return tiny.tiny_datamodule(path, batch_size=GLOBAL_BATCH // world_size, steps_per_epoch=MAX_STEPS, **options)


SUAVE_DATA = dict(unlabeled_views=MULTICROP, labeled_views=["weak"])


def sync_batchnorm() -> dict:
    return {"sync_batchnorm": True, "plugins": [SyncBatchNormAnyDevice()]}


def fixmatch_wrn() -> FixMatch:
    backbone, options = tiny.TINY_BACKBONES["tiny_wrn"]
    return FixMatch(num_classes=4, backbone=backbone, backbone_options=options, threshold=0.3, lr=0.1, ema_decay=0.9)


# name -> (method factory, datamodule options, trainer options factory)
RUNS = {
    "fixmatch": (fixmatch, {}, dict),
    "suave": (suave, SUAVE_DATA, dict),
    # Suave without its batch-dependent pieces: no mixing (it pairs images of the local batch, with
    # per-rank draws), and the projector's BatchNorm synced over processes.
    "suave_per_sample": (functools.partial(suave, mixup_labeled=False, mixup_unlabeled=False), SUAVE_DATA, sync_batchnorm),
    # A BatchNorm backbone: per-process statistics, or synced ones (trained in two halves: a resume).
    "fixmatch_wrn": (fixmatch_wrn, {}, dict),
    "fixmatch_wrn_sync": (fixmatch_wrn, {}, sync_batchnorm),
}
RESUMED_AT = {"fixmatch_wrn_sync": 2}  # runs of RESUMED_STEPS that stop after this many steps and are resumed
RESUMED_STEPS = MAX_STEPS + 1


def train(name: str, data: Path, root: Path, world_size: int, max_steps: int | None = None, ckpt_path: str | None = None,
          **trainer_options) -> tuple[L.LightningModule, L.Trainer]:
    make_method, data_options, run_trainer_options = RUNS[name]
    L.seed_everything(0)
    method = make_method()
    options = {**run_trainer_options(), **trainer_options}
    trainer = tiny.tiny_trainer(root / name, max_steps=max_steps or MAX_STEPS, deterministic=False, **options)
    trainer.fit(method, datamodule=datamodule(data, world_size, **data_options), ckpt_path=ckpt_path)
    return method, trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", default=list(RUNS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    world_size = int(os.environ["WORLD_SIZE"])
    devices = int(os.environ["LOCAL_WORLD_SIZE"])
    layout = dict(strategy="ddp", num_nodes=world_size // devices, devices=devices)
    for name in args.runs:
        if name in RESUMED_AT:
            checkpoint = args.out / f"{name}_step{RESUMED_AT[name]}.ckpt"
            train(name, args.data, args.out, world_size, max_steps=RESUMED_STEPS, callbacks=[StopAt(RESUMED_AT[name], checkpoint)], **layout)
            method, trainer = train(name, args.data, args.out, world_size, max_steps=RESUMED_STEPS, ckpt_path=str(checkpoint), **layout)
        else:
            method, trainer = train(name, args.data, args.out, world_size, **layout)
        if trainer.is_global_zero:
            torch.save(tiny.weights(method), args.out / f"{name}.pt")


if __name__ == "__main__":
    main()
