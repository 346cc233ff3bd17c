"""Training throughput of FixMatch (WRN-28-2) vs a bare step through the same network.

For each batch size (the paper's 64 labeled + mu=7 -> 960 images/step, and a small
CPU-friendly one), on the SAME pre-built random batch tensors:

  (a) "fixmatch": `method.training_step(batch, 0)` + backward + SGD (Nesterov, the method's
      param groups and LR schedule) + `method.ema.update(method.network)`;
  (b) "bare":     forward of the same concatenated batch through `method.network`,
      cross-entropy on random labels, backward, the same optimizer step (no EMA).

(a) and (b) are alternated step by step (a, b, a, b, ...) after warm-up, so that load from
other processes on the machine hits both alike; the ratio is median(a) / median(b).
Optionally (c) the same two measurements with `torch.channels_last` (network and inputs).

    python experiments/benchmarks/train_throughput.py [--out experiments/benchmarks/train_throughput.json]
        [--sizes 64:2:3,8:3:10] [--mu 7] [--threads 2] [--no-channels-last]

`--sizes` is a comma list of batch:warmup:timed. Each (size, memory format) is measured in a fresh
child process, so that memory kept by the allocator from one measurement does not inflate the next.
Memory: peak RSS (sampled every 5 ms from /proc/self/statm by a background thread) per phase, and
the child's ru_maxrss; on CUDA also torch.cuda.max_memory_allocated.
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

import torch
import torch.nn.functional as F

from benchmark_common import MB, REPO, RSSPeak, current_rss_bytes, machine_info, max_rss_mb, run_child, step_time_summary, sync

sys.path.insert(0, str(REPO))

from sslzoo.methods import FixMatch  # noqa: E402
from sslzoo.methods.optim import build_optimizer, build_scheduler, param_groups  # noqa: E402

NOMINAL_TOTAL_STEPS = 2**20  # the schedule's horizon; irrelevant for timing


def make_batch(batch_size: int, mu: int, num_classes: int, generator: torch.Generator, channels_last: bool) -> dict:
    """The dict the datamodule's CombinedLoader yields for FixMatch's views."""

    def images(n):
        x = torch.randn(n, 3, 32, 32, generator=generator)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    n_u = batch_size * mu
    return {
        "labeled": {
            "x": images(batch_size),
            "y": torch.randint(0, num_classes, (batch_size,), generator=generator),
            "idx": torch.arange(batch_size),
        },
        "unlabeled": {
            "x": [images(n_u), images(n_u)],  # [weak, strong]
            "y_hidden": torch.randint(0, num_classes, (n_u,), generator=generator),
            "idx": torch.arange(n_u),
        },
    }


def build(channels_last: bool):
    torch.manual_seed(0)
    method = FixMatch(num_classes=10, backbone="wrn_28_2")
    # training_step calls self.log, which needs an attached Trainer; for timing it is a no-op.
    method.log = lambda *args, **kwargs: None
    if channels_last:
        method.network.to(memory_format=torch.channels_last)
        method.ema.module.to(memory_format=torch.channels_last)
    method.train()
    hp = method.hparams
    optimizer = build_optimizer(param_groups(method.trainable_modules(), hp.weight_decay), hp.optimizer, hp.lr, hp.momentum, hp.nesterov)
    scheduler = build_scheduler(optimizer, hp.scheduler, NOMINAL_TOTAL_STEPS)
    return method, optimizer, scheduler


def fixmatch_step(method, optimizer, scheduler, batch, timings: dict | None = None):
    t0 = time.perf_counter()
    loss = method.training_step(batch, 0)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    t3 = time.perf_counter()
    method.ema.update(method.network)
    t4 = time.perf_counter()
    if timings is not None:
        for key, value in (("forward_and_loss", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2), ("ema_update", t4 - t3)):
            timings.setdefault(key, []).append(value)


def bare_step(network, optimizer, x, y):
    loss = F.cross_entropy(network(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(batch_size: int, mu: int, warmup: int, timed: int, channels_last: bool) -> dict:
    method, optimizer, scheduler = build(channels_last)
    batch = make_batch(batch_size, mu, 10, torch.Generator().manual_seed(batch_size), channels_last)
    # (b) runs on the same tensors, concatenated the way FixMatch's training_step does.
    x_all = torch.cat([batch["labeled"]["x"], *batch["unlabeled"]["x"]])
    if channels_last:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    y_all = torch.randint(0, 10, (len(x_all),), generator=torch.Generator().manual_seed(1))
    images = len(x_all)

    rss_before = current_rss_bytes()
    maxrss_before = max_rss_mb()
    result = {"labeled_batch": batch_size, "mu": mu, "images_per_step": images, "warmup_steps": warmup, "timed_steps": timed,
              "channels_last": channels_last}
    peaks = {}
    # Warm-up, each phase under its own RSS probe (the first steps allocate the most).
    with RSSPeak() as probe:
        for _ in range(warmup):
            bare_step(method.network, optimizer, x_all, y_all)
    peaks["bare"] = probe.peak
    with RSSPeak() as probe:
        for _ in range(warmup):
            fixmatch_step(method, optimizer, scheduler, batch)
    peaks["fixmatch"] = probe.peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    times = {"fixmatch": [], "bare": []}
    breakdown: dict[str, list] = {}
    load_start = os.getloadavg()
    for _ in range(timed):
        with RSSPeak() as probe:
            sync()
            t0 = time.perf_counter()
            fixmatch_step(method, optimizer, scheduler, batch, breakdown)
            sync()
            times["fixmatch"].append(time.perf_counter() - t0)
        peaks["fixmatch"] = max(peaks["fixmatch"], probe.peak)
        with RSSPeak() as probe:
            sync()
            t0 = time.perf_counter()
            bare_step(method.network, optimizer, x_all, y_all)
            sync()
            times["bare"].append(time.perf_counter() - t0)
        peaks["bare"] = max(peaks["bare"], probe.peak)

    for name in ("fixmatch", "bare"):
        result[name] = {
            **step_time_summary(times[name], images),
            "peak_rss_mb": round(peaks[name] / MB, 1),
            "peak_rss_above_start_mb": round((peaks[name] - rss_before) / MB, 1),
        }
    result["fixmatch"]["breakdown_median_s"] = {k: round(statistics.median(v), 5) for k, v in breakdown.items()}
    result["ratio_fixmatch_over_bare"] = round(result["fixmatch"]["median_step_s"] / result["bare"]["median_step_s"], 4)
    result["ratio_of_min_times"] = round(result["fixmatch"]["min_step_s"] / result["bare"]["min_step_s"], 4)
    result["ratio_target_max"] = 1.3
    result["meets_target"] = result["ratio_fixmatch_over_bare"] <= 1.3
    result["rss_at_start_mb"] = round(rss_before / MB, 1)
    result["ru_maxrss_mb_after"] = round(max_rss_mb(), 1)
    result["ru_maxrss_delta_mb"] = round(max_rss_mb() - maxrss_before, 1)
    result["load_average_during"] = [load_start, os.getloadavg()]
    if torch.cuda.is_available():
        result["cuda_max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / MB, 1)
    del method, optimizer, scheduler, batch, x_all
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).with_name("train_throughput.json")))
    parser.add_argument("--sizes", default="64:2:3,8:3:10", help="comma list of labeled_batch:warmup:timed")
    parser.add_argument("--mu", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-channels-last", action="store_true", help="skip the optional channels_last measurements")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: batch:warmup:timed:channels_last
    parser.add_argument("--result-file", help=argparse.SUPPRESS)  # internal: where the child writes its result
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.child:
        batch_size, warmup, timed, channels_last = args.child.split(":", 3)
        result = measure(int(batch_size), args.mu, int(warmup), int(timed), channels_last == "1")
        result["child_ru_maxrss_mb"] = result.pop("ru_maxrss_mb_after")
        Path(args.result_file).write_text(json.dumps(result))
        return
    report = {
        "benchmark": "FixMatch training step vs bare forward+backward+SGD step, WRN-28-2, 3x32x32 random normal input",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "notes": [
            "(a) fixmatch = method.training_step(batch, 0) + loss.backward() + SGD step (Nesterov, the method's "
            "param_groups: no weight decay on BN/bias; fixmatch_cosine LambdaLR stepped) + zero_grad(set_to_none) "
            "+ method.ema.update(method.network).",
            "method.log is monkeypatched to a no-op (training_step calls self.log, which needs an attached Trainer); "
            "the Lightning loop itself (hooks, logging, CombinedLoader, data loading) is NOT timed.",
            "(b) bare = F.cross_entropy(method.network(x), random y) on the same concatenated tensor "
            "(labeled + weak + strong) + backward + the same optimizer step + zero_grad; no EMA.",
            "Both share one model and optimizer; steps are alternated a, b, a, b after warm-up; times are medians.",
            "Each (size, memory format) runs in a fresh child process. Peak RSS per phase is sampled from "
            "/proc/self/statm every 5 ms (includes the model, the batch and allocator caching from the other "
            "phase of the same child); child_ru_maxrss_mb is the child's process-wide peak.",
            "The machine is shared with other jobs (see load averages); absolute times are noisy, the ratio less so.",
        ],
        "results": [],
    }
    variants = [False] if args.no_channels_last else [False, True]
    for spec in args.sizes.split(","):
        batch_size, warmup, timed = (int(v) for v in spec.split(":"))
        for channels_last in variants:
            print(f"batch {batch_size} mu {args.mu} channels_last={channels_last}: {warmup} warm-up + {timed} timed steps ...", flush=True)
            result = run_child(__file__, ["--mu", str(args.mu), "--threads", str(args.threads),
                                          "--child", f"{batch_size}:{warmup}:{timed}:{int(channels_last)}"])
            fm, bare = result["fixmatch"], result["bare"]
            print(
                f"  fixmatch {fm['median_step_s']:.3f} s/step ({fm['images_per_s']:.1f} img/s), "
                f"bare {bare['median_step_s']:.3f} s/step ({bare['images_per_s']:.1f} img/s), "
                f"ratio {result['ratio_fixmatch_over_bare']:.3f}, peak RSS {fm['peak_rss_mb']:.0f}/{bare['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            report["results"].append(result)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
