"""A reusable harness: train the same method in 1 process and in N CPU processes (gloo).

Where a method's math is per-sample (no BatchNorm over the batch, losses that are
means over the global batch), N processes with batch B/N must give the weights
of 1 process with batch B: the samplers hand rank r the stream positions
r, r+N, ... so the union of the per-rank batches is the single-process batch,
with the same per-item augmentation seeds.
"""
from __future__ import annotations

import lightning as L

import tiny


def fit_weights(tmp_path, make_method, make_datamodule, world_size: int, max_steps: int) -> dict:
    L.seed_everything(0)
    method, datamodule = make_method(), make_datamodule(world_size)
    strategy = "ddp_spawn" if world_size > 1 else "auto"
    trainer = tiny.tiny_trainer(tmp_path, devices=world_size, strategy=strategy, max_steps=max_steps, deterministic=False)
    trainer.fit(method, datamodule=datamodule)
    return tiny.weights(method)


def assert_same_weights(expected: dict, actual: dict, atol: float) -> None:
    import torch

    assert expected.keys() == actual.keys()
    for name in expected:
        if expected[name].is_floating_point():
            torch.testing.assert_close(actual[name], expected[name], atol=atol, rtol=0, msg=name)
        else:
            assert torch.equal(actual[name], expected[name]), name


def one_vs_two_processes(tmp_path, make_method, make_datamodule, max_steps: int, atol: float = 1e-5) -> tuple[dict, dict]:
    """Train in 1 and in 2 processes and assert equal weights (float32 all-reduce only reorders sums)."""
    single = fit_weights(tmp_path / "one", make_method, make_datamodule, world_size=1, max_steps=max_steps)
    double = fit_weights(tmp_path / "two", make_method, make_datamodule, world_size=2, max_steps=max_steps)
    assert_same_weights(single, double, atol=atol)
    return single, double
