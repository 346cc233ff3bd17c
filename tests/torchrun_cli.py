"""Runs CLI fits one after another in the same torchrun worker pair; the script that
tests/test_ddp_phases.py and tests/test_cli.py launch once each (CPU, gloo).

    python -m torch.distributed.run --nproc-per-node 2 ... tests/torchrun_cli.py --jobs jobs.json --out DIR

`jobs.json` maps a run's name to its CLI arguments (without the subcommand). Every run is
`build_cli(args)` + `trainer.fit`, the user's path, with whatever strategy the arguments give
(Lightning sees torchrun's environment and launches nothing). Rank 0 writes <out>/<name>.json
(and the final weights to <out>/<name>.pt): final global step and epoch, each step's epoch and logged scalars, whether the loss stayed
finite, the largest weight change, that the process group outlived the fit, or the error.
A run that raises on every process (a DDP error does) is recorded and the next one starts.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import tiny  # noqa: E402,F401  (registers the tiny backbones)
from sslzoo.cli import build_cli  # noqa: E402


class StepRecorder(L.Callback):
    """Each optimizer step's epoch and the scalars logged by then (phase, weight ramps, temperatures)."""

    def __init__(self):
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        scalars = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/") and v.numel() == 1}
        self.steps.append({"epoch": trainer.current_epoch, "global_step": trainer.global_step, **scalars})


def fit(args: list[str]) -> dict:
    cli = build_cli(args, run=False)
    recorder = StepRecorder()
    cli.trainer.callbacks.append(recorder)
    before = {k: v.detach().clone() for k, v in cli.model.state_dict().items() if v.is_floating_point()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    after = cli.model.state_dict()
    change = max(((after[k] - v).abs().max().item() for k, v in before.items() if after[k].shape == v.shape), default=0.0)
    losses = [step["train/loss"] for step in recorder.steps if "train/loss" in step]
    return {
        "global_step": cli.trainer.global_step,
        "epoch": cli.trainer.current_epoch,
        "world_size": cli.trainer.world_size,
        "strategy": type(cli.trainer.strategy).__name__,
        "precision": str(cli.trainer.precision),
        "steps": recorder.steps,
        "finite_loss": bool(losses) and all(math.isfinite(x) for x in losses),
        "max_weight_change": change,
        "process_group_alive": dist.is_available() and dist.is_initialized(),
        "weights": {k: v.detach().cpu().clone() for k, v in after.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name, args in json.loads(options.jobs.read_text()).items():
        start = time.perf_counter()
        try:
            result = fit(args)
        except (Exception, SystemExit) as error:  # noqa: BLE001  (recorded for the test, which names the run; SystemExit: bad arguments)
            result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:]}
        result["seconds"] = round(time.perf_counter() - start, 2)
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if rank == 0:
            if "weights" in result:
                torch.save(result.pop("weights"), options.out / f"{name}.pt")
            (options.out / f"{name}.json").write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
