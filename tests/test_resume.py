"""Stopping at any step and resuming from the checkpoint continues exactly."""
import lightning as L
import pytest
import torch

import tiny
from sslzoo.methods import Daino, FixMatch, LCMeanTeacher, MeanTeacher, SimMatch, Suave, Supervised

BACKBONE, BACKBONE_OPTIONS = tiny.TINY_BACKBONES["tiny_wrn"]


class StopAt(L.Callback):
    """Save a checkpoint after `step` optimizer steps and stop, like a pre-empted job."""

    def __init__(self, step: int, path):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


def _run(tmp_path, method_cls, total_steps, stop_at=None, ckpt=None, **method_kwargs):
    L.seed_everything(0)
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=4)
    method = method_cls(num_classes=4, backbone=BACKBONE, backbone_options=BACKBONE_OPTIONS, **method_kwargs)
    callbacks = [StopAt(stop_at, tmp_path / "stop.ckpt")] if stop_at else []
    trainer = tiny.tiny_trainer(tmp_path, max_steps=total_steps, callbacks=callbacks)
    trainer.fit(method, datamodule=dm, ckpt_path=ckpt)
    return method, trainer


SIMMATCH = dict(bank_warmup_epochs=1, da_length=3, threshold=0.5)  # bank and DA queue in use from epoch 1 (step 4)
LC_MT = dict(lc_start_epoch=0, lc_rampup_epochs=2, epsilon=5.0)
# Queue of 16 (full after 2 steps), momentum teacher, prototypes; mixing draws per step.
SUAVE = dict(queue_length=16, hidden_dim=16, projection_dim=8, momentum_teacher=True, ema_decay=0.9, ema_schedule="cosine")
DAINO = dict(hidden_dim=16, bottleneck_dim=8, teacher_temperature_warmup_epochs=3)  # centre, teacher, temperature warm-up


@pytest.mark.parametrize(
    "method_cls, stop_at, options",
    [(FixMatch, 3, {}), (FixMatch, 4, {}), (MeanTeacher, 6, {}), (SimMatch, 6, SIMMATCH), (LCMeanTeacher, 7, LC_MT),
     (Suave, 5, SUAVE), (Daino, 6, DAINO)],
    ids=["fixmatch-mid-epoch", "fixmatch-epoch-end", "meanteacher", "simmatch", "lc-meanteacher", "suave", "daino"],
)
def test_resume_equals_uninterrupted_run(tmp_path, method_cls, stop_at, options):
    """Bit-exact on CPU: params, EMA/teacher, banks and queues, optimizer and data order
    (mid-epoch and at an epoch end)."""
    full, full_trainer = _run(tmp_path / "a", method_cls, 10, **options)
    _run(tmp_path / "b", method_cls, 10, stop_at=stop_at, **options)
    resumed, resumed_trainer = _run(tmp_path / "c", method_cls, 10, ckpt=tmp_path / "b" / "stop.ckpt", **options)
    assert resumed_trainer.global_step == full_trainer.global_step == 10
    expected, actual = tiny.weights(full), tiny.weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    opt_full = full_trainer.optimizers[0].state_dict()["state"]
    opt_resumed = resumed_trainer.optimizers[0].state_dict()["state"]
    for key in opt_full:
        assert torch.equal(opt_full[key]["momentum_buffer"], opt_resumed[key]["momentum_buffer"])
    assert full_trainer.lr_scheduler_configs[0].scheduler.last_epoch == resumed_trainer.lr_scheduler_configs[0].scheduler.last_epoch


def test_checkpoints_load_weights_only(tmp_path):
    _run(tmp_path, FixMatch, 4, stop_at=2)
    checkpoint = torch.load(tmp_path / "stop.ckpt", weights_only=True)
    assert checkpoint["sslzoo"]["method"] == "FixMatch" and "ema.num_updates" in checkpoint["state_dict"]


def test_checkpoint_of_another_method_is_a_clear_error(tmp_path):
    _run(tmp_path / "a", FixMatch, 4, stop_at=2)
    with pytest.raises(ValueError, match="method: checkpoint 'FixMatch' vs this run 'Supervised'"):
        _run(tmp_path / "b", Supervised, 4, ckpt=tmp_path / "a" / "stop.ckpt")
