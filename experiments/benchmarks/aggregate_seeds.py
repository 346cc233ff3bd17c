"""Mean and spread over seeds of `fixed_budget_accuracy.py` runs (one JSON per seed).

    python experiments/benchmarks/aggregate_seeds.py experiments/benchmarks/fixed_budget_accuracy_10000steps_seed*.json \
        --out experiments/benchmarks/fixed_budget_accuracy_10000steps.json

Per method: the test accuracy at the best held-out validation point (the selection the runs
report), the median over the last evaluations (FixMatch's protocol) and the final one, each
as mean, sample standard deviation and the per-seed values; the fit wall time; the mask rate and
pseudo-label accuracy curves per seed. Prints a markdown table for the benchmarks README.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

CURVE_KEYS = ("mask_rate", "pseudo_acc_masked", "pseudo_acc_all", "loss_sup", "loss_unsup")


def spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
        "per_seed": values,
    }


def median_key(result: dict) -> str | None:
    return next((k for k in result if k.startswith("test_acc_median_last_")), None)


def aggregate(reports: list[dict]) -> dict:
    methods: dict[str, list[tuple[int, dict]]] = {}
    for report in reports:
        for name, result in report["results"].items():
            methods.setdefault(name, []).append((report["config"]["seed"], result))
    combined = {}
    for name, runs in methods.items():
        runs.sort(key=lambda run: run[0])
        results = [r for _, r in runs]
        entry = {"seeds": [seed for seed, _ in runs], "steps": [r["steps"] for r in results]}
        if all("test_acc_at_best_val" in r for r in results):
            entry["test_acc_at_best_val"] = spread([r["test_acc_at_best_val"] for r in results])
            entry["best_val_step"] = [r["best_val_step"] for r in results]
        if all(median_key(r) for r in results):
            entry[median_key(results[0])] = spread([r[median_key(r)] for r in results])
        entry["test_acc_final"] = spread([r["test_acc"] for r in results])
        entry["wall_time_fit_s"] = spread([r["wall_time_fit_s"] for r in results])
        entry["curves"] = {
            f"seed_{seed}": [{k: v for k, v in point.items() if k == "steps" or k in CURVE_KEYS} for point in r["train_curve"]]
            for seed, r in runs
        }
        combined[name] = entry
    return combined


def markdown(combined: dict) -> str:
    def cell(entry: dict | None) -> str:
        if entry is None:
            return "–"
        std = f" ± {100 * entry['std']:.2f}" if entry["std"] is not None else ""
        return f"{100 * entry['mean']:.2f}{std}"

    lines = ["| method | seeds | steps | test acc at best val | median last 20 evals | final | fit wall time (s, mean) |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in combined.items():
        median = next((v for k, v in entry.items() if k.startswith("test_acc_median_last_")), None)
        lines.append(f"| {name} | {len(entry['seeds'])} | {entry['steps'][0]} | {cell(entry.get('test_acc_at_best_val'))} | "
                     f"{cell(median)} | {cell(entry['test_acc_final'])} | {entry['wall_time_fit_s']['mean']:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="per-seed JSON files of fixed_budget_accuracy.py")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    reports = [json.loads(Path(path).read_text()) for path in args.runs]
    combined = aggregate(reports)
    out = {"benchmark": reports[0]["benchmark"] + ", aggregated over seeds", "runs": args.runs,
           "config": {k: v for k, v in reports[0]["config"].items() if k not in ("seed", "split_seed")},
           "seed_and_split_seed": [r["config"]["seed"] for r in reports], "results": combined}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(combined))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
