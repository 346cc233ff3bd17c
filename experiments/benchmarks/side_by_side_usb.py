"""Training speed of sslzoo against USB (microsoft/Semi-supervised-learning) on the same work, in one run.

    bash ../shared/peer_usb/setup.sh <USB snapshot git dir>     # once: /tmp/peers/usb + /tmp/peers/usbvenv
    python experiments/benchmarks/side_by_side_usb.py            # ~20 minutes on 2 idle cores

Same config on both sides (that of `../shared/peer_usb/side_by_side.sh`): WRN-28-2, SGD lr 0.03
momentum 0.9 Nesterov, wd 5e-4 (not on BN/bias), cosine 7pi/16, EMA 0.999, fp32, 2 torch threads,
seed 0, 250 labels of `../shared/data/cifar10_subset.npz`; USB's loader workers (1 labeled + 2
unlabeled), sslzoo `num_workers 2`. Runs alternate USB, sslzoo, USB, sslzoo; before each run a gate
waits for an idle machine, and a run during which other processes used more than `--contended`
cores is repeated. s/step is `run_usb.py`'s definition (mean over steps 4..N of data wait + step
compute, evaluation and checkpointing excluded), and every run also splits its steps into parts
(`step_parts.py`: forward, backward, optimizer, scheduler, EMA, other, data; plus one profiled step's
operator categories). Writes one JSON: every run, and per config the s/step of each side, the
ratio USB / sslzoo (above 1: sslzoo is faster) and both sides' parts tables.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHARED = ROOT.parent / "shared"

# name -> (USB algorithm, sslzoo method, labeled batch, mu, which step budget, sslzoo extra arguments)
CONFIGS = {
    "fixmatch_b16_mu2": ("fixmatch", "FixMatch", 16, 2, "small", ["--model.threshold", "0.95", "--model.lambda_u", "1.0"]),
    "fixmatch_b64_mu7": ("fixmatch", "FixMatch", 64, 7, "paper", ["--model.threshold", "0.95", "--model.lambda_u", "1.0"]),
    # USB's MeanTeacher config: uratio 1, lambda_u 50; sslzoo's consistency_weight set to the same 50.
    "meanteacher_b16_mu1": ("meanteacher", "MeanTeacher", 16, 1, "small", ["--model.consistency_weight", "50"]),
    "simmatch_b16_mu2": ("simmatch", "SimMatch", 16, 2, "small", []),
}


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--repeats", type=int, default=2, help="USB/sslzoo pairs per small-batch config (the paper batch runs once)")
    p.add_argument("--steps-small", type=int, default=23, help="steps per small-batch run (3 skipped)")
    p.add_argument("--steps-paper", type=int, default=9, help="steps per paper-batch run (3 skipped)")
    p.add_argument("--profile-step", type=int, default=5, help="the step run under torch.profiler (left out of the means)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=str(SHARED / "data" / "cifar10_subset.npz"))
    p.add_argument("--usb-python", default=f"{os.environ.get('TMPDIR', '/tmp')}/peers/usbvenv/bin/python")
    p.add_argument("--usb-root", default=f"{os.environ.get('TMPDIR', '/tmp')}/peers/usb")
    p.add_argument("--harness", default=str(SHARED / "peer_usb"), help="folder of run_usb.py and sslzoo_step_timer.py")
    p.add_argument("--sslzoo", default=str(ROOT / ".venv" / "bin" / "sslzoo"), help="the sslzoo console script")
    p.add_argument("--sslzoo-extra", default="", help="extra sslzoo arguments for every run (e.g. '--model.channels_last false')")
    p.add_argument("--gate-cores", type=float, default=0.3, help="the machine counts as idle below this many busy cores")
    p.add_argument("--gate-max-wait", type=float, default=300)
    p.add_argument("--contended", type=float, default=0.3, help="repeat a run when others used more cores than this on average")
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--run-dir", default=None, help="where every run's files go (default: a temporary folder)")
    p.add_argument("--out", default=str(HERE / "side_by_side_usb.json"))
    return p.parse_args()


def busy_cores(seconds: float = 3.0) -> float:
    def busy() -> int:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]) - (v[3] + v[4])

    before = busy()
    time.sleep(seconds)
    return (busy() - before) / os.sysconf("SC_CLK_TCK") / seconds


def wait_for_idle(limit: float, max_wait: float) -> dict:
    start, quiet, cores = time.time(), 0, None
    while quiet < 2 and time.time() - start <= max_wait:
        cores = busy_cores()
        quiet = quiet + 1 if cores < limit else 0
    return {"waited_s": round(time.time() - start, 1), "busy_cores_last_3s": round(cores, 3), "idle_reached": quiet >= 2}


def usb_command(args, algorithm: str, batch: int, mu: int, steps: int, run: Path) -> list[str]:
    return [
        args.usb_python, "-W", "ignore", str(HERE / "usb_step_parts.py"), "--parts-out", str(run / "parts.json"),
        "--profile-step", str(args.profile_step), "--harness", args.harness, "--",
        "--algorithm", algorithm, "--net", "wrn_28_2", "--num-labels", "250", "--batch-size", str(batch), "--uratio", str(mu),
        "--iters", str(steps), "--seed", "0", "--threads", str(args.threads), "--grad-check-steps=", "--test-subset", "1000",
        "--data", args.data, "--usb-root", args.usb_root, "--save-dir", str(run / "usb"), "--out", str(run / "timer.json"),
    ]


def sslzoo_command(args, method: str, batch: int, mu: int, steps: int, run: Path, extra: list[str]) -> list[str]:
    return [
        args.sslzoo, "fit", "--seed_everything", "0", "--model", method, "--model.backbone", "wrn_28_2",
        "--model.optimizer", "sgd", "--model.lr", "0.03", "--model.momentum", "0.9", "--model.nesterov", "true",
        "--model.weight_decay", "0.0005", "--model.scheduler", "fixmatch_cosine", "--model.ema_decay", "0.999", *extra,
        *args.sslzoo_extra.split(),
        "--data", "ArrayDataModule", "--data.path", args.data, "--data.num_labels", "250", "--data.split_seed", "0",
        "--data.batch_size", str(batch), "--data.unlabeled_ratio", str(mu), "--data.eval_batch_size", "256",
        "--data.num_workers", "2", "--data.steps_per_epoch", str(steps),
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "32-true", "--trainer.max_steps", str(steps),
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false", "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(run / "sslzoo"),
        "--trainer.callbacks+=sslzoo_step_timer.StepTimer", "--trainer.callbacks.out", str(run / "timer.json"),
        "--trainer.callbacks.threads", str(args.threads), "--trainer.callbacks.label", run.name,
        "--trainer.callbacks+=sslzoo_step_parts.StepParts", "--trainer.callbacks.out", str(run / "parts.json"),
        "--trainer.callbacks.threads", str(args.threads), "--trainer.callbacks.profile_step", str(args.profile_step),
    ]


def run_once(args, side: str, command: list[str], run: Path) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "PYTHONPATH": os.pathsep.join([str(HERE), args.harness, str(ROOT)])}
    gate = wait_for_idle(args.gate_cores, args.gate_max_wait)
    start = time.time()
    with open(run / "log.txt", "w") as log:
        rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd="/tmp").returncode
    record = {"side": side, "run": run.name, "rc": rc, "gate": gate, "process_wall_s": round(time.time() - start, 1)}
    try:
        timer = json.loads((run / "timer.json").read_text())
        parts = json.loads((run / "parts.json").read_text())
    except (OSError, ValueError) as err:
        return {**record, "ok": False, "error": repr(err), "log_tail": (run / "log.txt").read_text()[-2000:]}
    contention = timer["env"].get("contention_during_train") or {}
    return {
        **record,
        "ok": rc == 0,
        "s_per_step": timer["timing"]["s_per_step"],
        "data_wait_share": timer["timing"]["data_wait_share"],
        "foreign_cores_mean": contention.get("foreign_cores_mean"),
        "parts_s_per_step": parts["parts_s_per_step"],
        "parts_s_per_step_total": parts["s_per_step"],
        "profiled_step_operator_categories_s": parts["profiled_step_operator_categories_s"],
        "per_step_s": [round(r["step_s"], 4) for r in timer["trace"]],
    }


def measure(args, side: str, command_for, run_base: Path) -> list[dict]:
    """Attempts until one is not contended (at most `max_attempts`); all are kept, the last is used."""
    attempts = []
    for attempt in range(1, args.max_attempts + 1):
        run = run_base.with_name(f"{run_base.name}.a{attempt}")
        result = run_once(args, side, command_for(run), run)
        attempts.append(result)
        foreign = result.get("foreign_cores_mean")
        print(f"[{datetime.datetime.now():%H:%M:%S}] {run.name}: s/step {result.get('s_per_step')} foreign cores {foreign}", flush=True)
        result["accepted"] = bool(result["ok"] and foreign is not None and foreign <= args.contended)
        if result["accepted"]:
            break
    return attempts


def mean_parts(runs: list[dict]) -> dict | None:
    runs = [r for r in runs if r.get("parts_s_per_step")]
    if not runs:
        return None
    return {part: statistics.fmean(r["parts_s_per_step"][part] for r in runs) for part in runs[0]["parts_s_per_step"]}


def summarise(config: str, usb_runs: list[dict], zoo_runs: list[dict]) -> dict:
    usb = [r["s_per_step"] for r in usb_runs if r.get("s_per_step")]
    zoo = [r["s_per_step"] for r in zoo_runs if r.get("s_per_step")]
    entry = {
        "usb_s_per_step": usb,
        "sslzoo_s_per_step": zoo,
        "usb_accepted": [r.get("accepted") for r in usb_runs],
        "sslzoo_accepted": [r.get("accepted") for r in zoo_runs],
        "usb_parts_s_per_step": mean_parts(usb_runs),
        "sslzoo_parts_s_per_step": mean_parts(zoo_runs),
        "usb_operator_categories_s": next((r["profiled_step_operator_categories_s"] for r in usb_runs if r.get("ok")), None),
        "sslzoo_operator_categories_s": next((r["profiled_step_operator_categories_s"] for r in zoo_runs if r.get("ok")), None),
    }
    if usb and zoo:
        entry["ratio_usb_over_sslzoo"] = statistics.fmean(usb) / statistics.fmean(zoo)
        entry["ratio_per_pair"] = [u / z for u, z in zip(usb, zoo)]
    return entry


def git_head(path) -> str | None:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def main() -> None:
    args = arguments()
    for needed in (args.usb_python, args.sslzoo, args.data, Path(args.harness) / "run_usb.py"):
        if not Path(needed).exists():
            sys.exit(f"side_by_side_usb: {needed} is missing; run ../shared/peer_usb/setup.sh and `make test` first (see this file's docstring)")
    run_dir = Path(args.run_dir or f"/tmp/side_by_side_usb_{datetime.datetime.now():%Y%m%d_%H%M%S}")
    started, all_runs, summary = time.time(), [], {}
    for config in [c for c in args.configs.split(",") if c]:
        algorithm, method, batch, mu, budget, extra = CONFIGS[config]
        steps = args.steps_paper if budget == "paper" else args.steps_small
        repeats = 1 if budget == "paper" else args.repeats
        used = {"usb": [], "sslzoo": []}
        for repeat in range(1, repeats + 1):
            usb = measure(args, "usb", lambda run: usb_command(args, algorithm, batch, mu, steps, run), run_dir / f"{config}_usb_r{repeat}")
            zoo = measure(args, "sslzoo", lambda run: sslzoo_command(args, method, batch, mu, steps, run, extra),
                          run_dir / f"{config}_sslzoo_r{repeat}")
            all_runs += [{"config": config, **r} for r in usb + zoo]
            used["usb"].append(usb[-1])
            used["sslzoo"].append(zoo[-1])
        summary[config] = summarise(config, used["usb"], used["sslzoo"])
        print(f"{config}: USB {summary[config]['usb_s_per_step']} sslzoo {summary[config]['sslzoo_s_per_step']} "
              f"ratio {summary[config].get('ratio_usb_over_sslzoo')}", flush=True)
    result = {
        "what": "training s/step of USB (semilearn) and sslzoo on the same config, CPU; ratio above 1: sslzoo is faster",
        "date": datetime.date.today().isoformat(),
        "usb_commit": (Path(args.usb_root) / ".peer_commit").read_text().strip() if (Path(args.usb_root) / ".peer_commit").exists() else None,
        "sslzoo_commit": git_head(ROOT),
        "threads": args.threads,
        "sslzoo_extra": args.sslzoo_extra,
        "cpu_count": os.cpu_count(),
        "wall_s": round(time.time() - started),
        "summary": summary,
        "runs": all_runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
