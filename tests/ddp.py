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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli_jobs(jobs: dict[str, list[str]], tmp, layout: str = "1x2", timeout: float = 600) -> dict[str, dict]:
    """Launch torchrun once in `layout` ("1x2": 1 node x 2 processes; "2x1": 2 nodes x 1 process, on
    127.0.0.1, CPU, gloo) and run every job's CLI fit in turn in that worker pair (tests/torchrun_cli.py):
    {name: result}; a run that raised gives {"error": ...}, one never reached {"error": "not reached", "log": ...}."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    out, port = tmp / "results", free_port()
    nnodes, nproc = (int(n) for n in layout.split("x"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launchers = []
    for node in range(nnodes):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc), "--node-rank", str(node),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
            str(Path(__file__).with_name("torchrun_cli.py")), "--jobs", str(tmp / "jobs.json"), "--out", str(out),
        ]  # fmt: skip
        log = (tmp / f"torchrun_node{node}.log").open("w")
        launchers.append(subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log, stderr=subprocess.STDOUT))
    for launcher in launchers:
        try:
            launcher.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            launcher.kill()
    logs = "\n".join(path.read_text()[-3000:] for path in sorted(tmp.glob("torchrun_node*.log")))
    results = {}
    for name in jobs:
        path = out / f"{name}.json"
        results[name] = json.loads(path.read_text()) if path.is_file() else {"error": "not reached", "log": logs}
        results[name]["weights_file"] = str(out / f"{name}.pt")
    return results
