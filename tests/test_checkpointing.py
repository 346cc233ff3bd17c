"""No finished work is lost: last.ckpt is always the newest state, written atomically; a
pre-emption signal saves and exits non-zero; a kill mid-write leaves a good checkpoint; resume
refuses what does not belong to the run. Runs go through the `sslzoo` command as users start it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tiny
from sslzoo.checkpointing import AtomicCheckpointIO, CheckpointWriteError
from sslzoo.checkpointing.resolve import find_resumable
from sslzoo.cli import build_cli, main

TESTS = Path(__file__).resolve().parent
COMMAND = [sys.executable, str(TESTS / "sslzoo_command.py")]  # the `sslzoo` entry point, with tests/tiny.py's backbones
NO_VAL = ("--trainer.limit_val_batches", "0")


def _args(tmp_path, *extra) -> list[str]:
    return ["fit", *tiny.toy_cli_args(tmp_path, "--seed_everything", "0", "--trainer.logger", "false", *extra)]


def _checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def _sslzoo(args: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*COMMAND, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **popen)


def _assert_same_state(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_last_checkpoint_is_the_final_state_when_the_metric_stalls(tmp_path):
    """The monitored metric (here the falling lr) is best at the first validation; last.ckpt
    still ends at the final step, mid-epoch too, with the final weights."""
    cli = build_cli(_args(tmp_path, "--trainer.max_steps", "8", "--checkpoint.monitor", "train/lr", "--last_checkpoint.every_n_train_steps", "null"))
    checkpoints = tmp_path / "run" / "checkpoints"
    best = [p for p in checkpoints.iterdir() if p.name.startswith("best-")]
    assert [p.name for p in best] == ["best-0-3.ckpt"]
    last = _checkpoint(checkpoints / "last.ckpt")
    assert last["global_step"] == cli.trainer.global_step == 8
    _assert_same_state(tiny.weights(cli.model), last["state_dict"])
    assert _checkpoint(checkpoints / "last-previous.ckpt")["global_step"] == 6  # the validation before


def test_last_checkpoint_on_a_step_interval(tmp_path):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "5", "--last_checkpoint.every_n_train_steps", "2"))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == 5
    assert _checkpoint(checkpoints / "last-previous.ckpt")["global_step"] == 4
    assert not list(checkpoints.glob(".*partial*")) and not (checkpoints / "last-staged.ckpt").exists()


@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_sigterm_saves_exits_non_zero_and_resumes_exactly(tmp_path, augment_on):
    """The signal reaches every process of the group, the loader workers too (without their
    ignoring it, a dead worker crashed the run with exit status 1 and nothing saved). With the
    views finished on the device the resumed run sees the same pixels too."""
    stopped = tmp_path / "stopped"
    signal_at = ["--trainer.callbacks+=cli_faults.SignalAtStep", "--trainer.callbacks.step", "4"]
    with_workers = ["--data.num_workers", "1", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
                    "--data.augment_on", augment_on]
    process = _sslzoo(_args(stopped, "--trainer.max_steps", "9", *with_workers, *signal_at))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM at step 4" in output and "--ckpt_path last" in output and "Traceback" not in output
    assert _checkpoint(stopped / "run" / "checkpoints" / "last.ckpt")["global_step"] == 4

    resumed = build_cli(_args(stopped, "--trainer.max_steps", "9", *with_workers, "--ckpt_path", "last"))
    uninterrupted = build_cli(_args(tmp_path / "full", "--trainer.max_steps", "9", *with_workers))
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 9
    _assert_same_state(tiny.weights(uninterrupted.model), tiny.weights(resumed.model))


@pytest.mark.slow
def test_sigterm_to_a_two_process_ddp_run(tmp_path):
    """`kill` reaches the launching process only; it passes the signal to the process it started,
    both stop after the same step, save once and exit non-zero; the run resumes from there."""
    run = tmp_path / "run"
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", "100000", "--last_checkpoint.every_n_train_steps", "1"]
    process = _sslzoo(_args(tmp_path, *NO_VAL, *ddp))
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert last.exists(), process.communicate()[0]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output
    assert "stopped by SIGTERM" in output
    stopped_at = _checkpoint(last)["global_step"]
    assert stopped_at >= 1
    resumed = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", str(stopped_at + 2), "--ckpt_path", "last"))
    assert resumed.trainer.global_step == stopped_at + 2


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    """A writer killed half-way (in place, the worst case) leaves last.ckpt as it was; resume works."""
    marker = tmp_path / "writing"
    slow_io = ["--trainer.plugins", "cli_faults.SlowCheckpointIO", "--trainer.plugins.marker", str(marker)]
    process = _sslzoo(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "9", "--last_checkpoint.every_n_train_steps", "2", *slow_io))
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), process.communicate()[0]
    process.kill()
    process.wait(timeout=60)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert Path(marker.read_text()) == checkpoints / "last-staged.ckpt"
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == 2
    resumed = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "3", "--ckpt_path", "last"))
    assert resumed.trainer.global_step == 3


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "4", "--last_checkpoint.every_n_train_steps", "2"))
    checkpoints = tmp_path / "run" / "checkpoints"
    data = (checkpoints / "last.ckpt").read_bytes()
    (checkpoints / "last.ckpt").write_bytes(data[: len(data) // 3])
    path, notes = find_resumable(checkpoints)
    assert path == checkpoints / "last-previous.ckpt" and "last.ckpt is unreadable" in notes[0]
    resumed = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "5", "--ckpt_path", "last"))
    assert resumed.trainer.global_step == 5  # from step 2


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)

    def full_disk(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous file of that name is untouched"):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_a_failed_periodic_write_warns_and_training_goes_on(tmp_path, monkeypatch):
    import sslzoo.checkpointing.atomic_io as atomic_io

    real_save, calls = torch.save, []

    def fail_second(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(atomic_io.torch, "save", fail_second)
    with pytest.warns(UserWarning, match="last.ckpt NOT updated at step 4"):
        cli = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "5", "--last_checkpoint.every_n_train_steps", "2"))
    assert cli.trainer.global_step == 5
    assert _checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 5
    assert _checkpoint(tmp_path / "run" / "checkpoints" / "last-previous.ckpt")["global_step"] == 2


def _error_line(capsys, args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_second_run_in_the_same_folder_is_refused(tmp_path, capsys):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "2"))
    line = _error_line(capsys, _args(tmp_path, *NO_VAL, "--trainer.max_steps", "2"))
    assert line.startswith("sslzoo: error:") and "already holds a run's checkpoints (last.ckpt)" in line
    assert "--ckpt_path last" in line and "--trainer.default_root_dir" in line


def test_nothing_to_resume_or_to_test_is_an_error(tmp_path, capsys):
    line = _error_line(capsys, _args(tmp_path, "--ckpt_path", "last"))
    assert "--ckpt_path last: nothing to resume" in line and "Drop --ckpt_path to start a new run" in line
    line = _error_line(capsys, ["test", *_args(tmp_path)[1:]])
    assert "`sslzoo test` needs --ckpt_path" in line
    # auto: a requeued job resumes when there is a checkpoint and starts when there is none
    first = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "2", "--ckpt_path", "auto"))
    assert first.trainer.ckpt_path is None and first.trainer.global_step == 2
    again = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "3", "--ckpt_path", "auto"))
    assert again.trainer.ckpt_path == str(tmp_path / "run" / "checkpoints" / "last.ckpt") and again.trainer.global_step == 3


def test_resume_refuses_another_method_or_changed_values(tmp_path, capsys):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "2"))
    last = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    resume = _args(tmp_path, *NO_VAL, "--trainer.max_steps", "3", "--ckpt_path", last)
    other_method = [a if a != "FixMatch" else "Supervised" for a in resume]
    assert "was trained by FixMatch, but this command builds Supervised" in _error_line(capsys, other_method)
    line = _error_line(capsys, [*resume, "--model.lr", "0.1", "--model.threshold", "0.8"])
    assert "lr: checkpoint 0.03 vs command line 0.1" in line and "threshold: checkpoint 0.95 vs command line 0.8" in line
    assert "--changed_hparams command_line" in line
    cli = build_cli([*resume, "--model.lr", "0.1", "--changed_hparams", "command_line", "--weights_only", "false"])
    assert cli.model.hparams.lr == 0.1 and cli.trainer.global_step == 3


def test_evaluation_rebuilds_the_checkpoints_network(tmp_path):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "2", "--model.threshold", "0.7"))
    last = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match="threshold: checkpoint 0.7 vs command line 0.95"):
        cli = build_cli(["test", *_args(tmp_path)[1:], "--ckpt_path", last])
    assert cli.model.hparams.threshold == 0.7 and "test/acc" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_slurm_script_requeues_on_the_time_limit_signal_and_the_requeued_job_resumes(tmp_path):
    """experiments/launch/slurm.sbatch as SLURM runs it (one task; srun and scontrol stand-ins on
    PATH): SIGUSR1 before the time limit saves, requeues the job and exits 128 + 10; the requeued
    job, the same script again, resumes from last.ckpt (--ckpt_path auto) and finishes."""
    import fakes

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    data = fakes.write_npz(tmp_path / "digits.npz", num_train=60, num_test=20, num_classes=10, size=8, channels=1)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "sslzoo", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
             "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
             "SLURM_NODELIST": "127.0.0.1"}  # fmt: skip
    env = {**os.environ, **slurm, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(TESTS),
           "OMP_NUM_THREADS": "1", "MASTER_PORT": "29731"}  # fmt: skip
    run = tmp_path / "run"
    args = ["--data.init_args.path", str(data), "--data.init_args.num_labels", "10", "--data.init_args.eval_batch_size", "20",
            "--trainer.default_root_dir", str(run), "--trainer.max_steps", "6", "--trainer.accelerator", "cpu",
            "--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--data.init_args.batch_size", "4", "--data.init_args.unlabeled_ratio", "2",
            "--model.init_args.backbone_options", "{depth: 10, widen_factor: 1, input_channels: 1}"]  # fmt: skip
    script = [str(Path(__file__).parents[1] / "experiments" / "launch" / "slurm.sbatch"), "experiments/quickstart/fixmatch.yaml"]
    signal_at = ["--trainer.callbacks+=cli_faults.SignalAtStep", "--trainer.callbacks.step", "3", "--trainer.callbacks.signal_name", "SIGUSR1",
                 "--trainer.callbacks.group", "false"]
    root = Path(__file__).parents[1]
    first = subprocess.run(["bash", *script, *args, *signal_at], cwd=root, env=env, capture_output=True, text=True, timeout=300,
                           start_new_session=True)
    assert first.returncode == 128 + signal.SIGUSR1, first.stdout + first.stderr
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert "SLURM job 4242 requeued" in first.stdout + first.stderr
    assert _checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 3
    requeued = subprocess.run(["bash", *script, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert requeued.returncode == 0, requeued.stdout + requeued.stderr
    assert "resuming from" in requeued.stdout + requeued.stderr
    assert _checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6


def test_extending_a_run_warns_that_whole_run_schedules_stretch(tmp_path):
    build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "4"))
    with pytest.warns(UserWarning, match="trained for 4 steps and now runs for 6 .* from step 4 on"):
        cli = build_cli(_args(tmp_path, *NO_VAL, "--trainer.max_steps", "6", "--ckpt_path", "last"))
    assert cli.trainer.global_step == 6 and cli.trainer.current_epoch == 2  # 3 steps per epoch: the data stream went on


def test_the_best_checkpoint_follows_the_methods_metric(tmp_path):
    from sslzoo.methods import SCAN

    cli = build_cli(tiny.toy_cli_args(tmp_path), run=False)
    callback = cli.trainer.checkpoint_callback
    assert callback.monitor == "auto"
    callback.setup(cli.trainer, cli.model, "fit")
    assert callback.monitor == "val/acc"
    assert SCAN.checkpoint_metric is None  # clustering accuracy would select on labels: keep the newest
