"""torchrun on 127.0.0.1 (CPU, gloo): one 'node' x 2 processes and 2 'nodes' x 1 process.

Both layouts train the runs of tests/torchrun_fit.py (FixMatch, Suave, and a BatchNorm FixMatch
with and without synced BatchNorm) with the same per-rank data, so they must give the same
weights. Against one process with the global batch:
  - FixMatch on `tiny_mlp` is per-sample math (a mean loss over the global batch): equal.
  - Suave is not, in three places: MixUp/CutMix pair images of the *local* batch (flip(0)) with
    per-rank draws; the projector's BatchNorm normalises each process's rows; and the queue is
    filled in all-gather (rank) order. Its Sinkhorn is all-reduced, so the codes of N processes are
    those of one process over the concatenated batch (the queue counted once, by shards). So
    `suave_per_sample` (no mixing, synced BatchNorm) must equal one process, the queue as a set of
    rows; the full Suave is only checked between the two layouts of the same world size.
  - A BatchNorm backbone equals one process only with synced BatchNorm, also across a resume.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddp
import tiny
import torchrun_fit

SCRIPT = Path(__file__).with_name("torchrun_fit.py")
ROOT = Path(__file__).resolve().parent.parent
SAME_LAYOUT_RUNS = ["fixmatch", "suave"]
# Sinkhorn (1 / eps = 20) and the prototype temperature (1 / T = 10) amplify float32 reordering.
SUAVE_ATOL = 5e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nnodes: int, nproc: int, node_rank: int, port: int, data: Path, out: Path, runs: list[str], log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", str(nnodes), "--nproc-per-node", str(nproc), "--node-rank", str(node_rank),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
        str(SCRIPT), "--data", str(data), "--out", str(out), "--runs", *runs,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    """Both layouts at once (their imports overlap): {"data", "1x2", "2x1"} output folders."""
    tmp = tmp_path_factory.mktemp("torchrun")
    data = tiny.tiny_npz(tmp)
    out = {"1x2": tmp / "1x2", "2x1": tmp / "2x1"}
    port_1x2, port_2x1 = _free_port(), _free_port()
    launchers = [
        _torchrun(1, 2, 0, port_1x2, data, out["1x2"], list(torchrun_fit.RUNS), tmp / "1x2.log"),
        _torchrun(2, 1, 0, port_2x1, data, out["2x1"], SAME_LAYOUT_RUNS, tmp / "2x1_node0.log"),
        _torchrun(2, 1, 1, port_2x1, data, out["2x1"], SAME_LAYOUT_RUNS, tmp / "2x1_node1.log"),
    ]
    failed = []
    for launcher in launchers:
        try:
            launcher.wait(timeout=600)
        except subprocess.TimeoutExpired:
            launcher.kill()
        failed += [launcher] if launcher.returncode != 0 else []
    if failed:
        logs = "\n".join(f"--- {log.name}\n" + log.read_text()[-3000:] for log in sorted(tmp.glob("*.log")))
        pytest.fail(f"torchrun failed:\n{logs}")
    return {"data": data, **out}


def _saved(folder: Path, name: str) -> dict:
    return torch.load(folder / f"{name}.pt", weights_only=True)


def _one_process(tmp_path, data: Path, name: str, **options) -> dict:
    method, _ = torchrun_fit.train(name, data, tmp_path, world_size=1, **options)
    return tiny.weights(method)


@pytest.mark.parametrize("name", SAME_LAYOUT_RUNS)
def test_two_nodes_of_one_process_equal_one_node_of_two(launched, name):
    ddp.assert_same_weights(_saved(launched["1x2"], name), _saved(launched["2x1"], name), atol=1e-6)


def test_fixmatch_under_torchrun_equals_one_process(launched, tmp_path):
    single = _one_process(tmp_path, launched["data"], "fixmatch")
    ddp.assert_same_weights(single, _saved(launched["2x1"], "fixmatch"), atol=1e-5)
    assert int(single["ema.num_updates"]) == torchrun_fit.MAX_STEPS


def test_suave_without_batch_dependent_pieces_equals_one_process(launched, tmp_path):
    single, double = _one_process(tmp_path, launched["data"], "suave_per_sample"), _saved(launched["1x2"], "suave_per_sample")
    # The queue holds the same rows in another order (all-gathered rank by rank); Sinkhorn sums over them.
    sort_rows = lambda items: items[torch.argsort(items[:, 0, 0])]  # noqa: E731
    torch.testing.assert_close(sort_rows(double.pop("queue.items")), sort_rows(single.pop("queue.items")), atol=SUAVE_ATOL, rtol=0)
    ddp.assert_same_weights(single, double, atol=SUAVE_ATOL)
    # ...and the full method does not (mixing within the local batch, per-process BatchNorm).
    full_single = _one_process(tmp_path, launched["data"], "suave")
    assert (full_single["network.head.hidden.0.weight"] - _saved(launched["1x2"], "suave")["network.head.hidden.0.weight"]).abs().max() > 1e-3


def test_synced_batchnorm_equals_one_process_through_a_resume_and_the_ema(launched, tmp_path):
    """tiny_wrn's BatchNorm: FixMatch's one forward over [labeled; weak; strong] makes one BN batch,
    so synced statistics over 2 processes are those of 1 process with the global batch. The
    converted layers keep BatchNorm's state-dict keys (the saved weights load into a plain model),
    the EMA copy (converted too, evaluated in eval mode) keeps updating, and a resume is exact."""
    synced = _saved(launched["1x2"], "fixmatch_wrn_sync")
    single = _one_process(tmp_path, launched["data"], "fixmatch_wrn_sync", max_steps=torchrun_fit.RESUMED_STEPS)
    ddp.assert_same_weights(single, synced, atol=1e-5)
    assert int(synced["ema.num_updates"]) == torchrun_fit.RESUMED_STEPS
    assert any(key.startswith("ema.") and key.endswith("running_var") for key in synced)
    torchrun_fit.fixmatch_wrn().load_state_dict(synced)  # strict: same keys as plain BatchNorm

    unsynced = _saved(launched["1x2"], "fixmatch_wrn")
    single = _one_process(tmp_path / "unsynced", launched["data"], "fixmatch_wrn")
    worst = max((single[k] - unsynced[k]).abs().max().item() for k in single if single[k].is_floating_point())
    assert worst > 1e-3, "per-process BatchNorm should not equal one process with the global batch"
