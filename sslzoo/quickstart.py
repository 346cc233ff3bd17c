"""Offline quick start: FixMatch against the supervised baseline on scikit-learn's
handwritten digits (1,797 8x8 images that ship inside scikit-learn), a few CPU minutes.

    make quickstart        # or: python -m sslzoo.quickstart
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "quickstart"
METHODS = ("supervised", "fixmatch")


def write_digits(path: Path, test_per_class: int = 50) -> Path:
    """digits -> uint8 (N, 8, 8, 1) array file with a class-balanced test split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise SystemExit("the quick start reads scikit-learn's digits: pip install scikit-learn") from err
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    from datamodules.splits import sample_balanced_indices

    test = sample_balanced_indices(labels, test_per_class, seed=0)
    train = np.setdiff1d(np.arange(len(labels)), test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test], classes=np.array([str(d) for d in range(10)]))
    return path


def run(method: str, extra_args: list[str]) -> dict:
    from sslzoo.cli import build_cli

    cli = build_cli(["--config", str(CONFIGS / f"{method}.yaml"), *extra_args], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not CONFIGS.is_dir():
        raise SystemExit(f"quick-start configs not found in {CONFIGS}; run this from a clone of the sslzoo repository")
    write_digits(Path("data/digits.npz"))
    results = {method: run(method, argv) for method in METHODS}
    print("\nTest accuracy on held-out digits (500 images), 30 labels:")
    print(f"  {'method':<12}{'top-1':>8}{'balanced':>10}")
    for method, metrics in results.items():
        print(f"  {method:<12}{100 * metrics['test/acc']:>7.1f}%{100 * metrics['test/balanced_acc']:>9.1f}%")


if __name__ == "__main__":
    main()
