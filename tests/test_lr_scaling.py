"""Learning-rate scaling with the global batch: the rule, what the optimizers get, what is logged."""
import math

import lightning as L
import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger, Logger

import tiny
from sslzoo.methods import BoostedFixMatch, FixMatch
from sslzoo.methods.optim import scaled_lr


def test_the_rule_by_hand():
    assert scaled_lr(0.03, "none", 512, None) == 0.03
    assert scaled_lr(0.03, "none", None, None) == 0.03  # no scaling needs no batch
    assert scaled_lr(0.03, "linear", 256, 64) == pytest.approx(0.12)
    assert scaled_lr(0.03, "linear", 32, 64) == pytest.approx(0.015)
    assert scaled_lr(0.03, "sqrt", 256, 64) == pytest.approx(0.06)
    assert scaled_lr(0.1, "sqrt", 128, 64) == pytest.approx(0.1 * math.sqrt(2))


def test_scaling_without_a_reference_batch_or_with_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="lr_reference_batch"):
        scaled_lr(0.03, "linear", 256, None)
    with pytest.raises(ValueError, match="lr_reference_batch"):
        FixMatch(num_classes=4, backbone="tiny_mlp", lr_scaling="sqrt")
    with pytest.raises(ValueError, match="lr_scaling must be one of"):
        FixMatch(num_classes=4, backbone="tiny_mlp", lr_scaling="quadratic", lr_reference_batch=64)
    with pytest.raises(ValueError, match="global batch"):
        scaled_lr(0.03, "linear", None, 64)


class RecordingLogger(Logger):
    def __init__(self):
        super().__init__()
        self.hyperparameters: dict = {}

    name, version = "recording", 0

    def log_hyperparams(self, params, *args, **kwargs):
        self.hyperparameters.update(params if isinstance(params, dict) else vars(params))

    def log_metrics(self, metrics, step=None):
        pass


def _fit(tmp_path, method, **trainer_options):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), batch_size=4, steps_per_epoch=2)
    trainer = tiny.tiny_trainer(tmp_path, **trainer_options)
    trainer.fit(method, datamodule=dm)
    return trainer


def test_linear_scaling_doubles_the_lr_for_twice_the_reference_batch_and_every_logger_gets_it(tmp_path):
    """Global batch = 4 per process x 1 process x 2 accumulated = 8, reference 4: lr x 2. The schedule
    advances once per optimizer step (not per accumulated micro-batch)."""
    L.seed_everything(0)
    method = FixMatch(num_classes=4, backbone="tiny_mlp", lr=0.1, lr_scaling="linear", lr_reference_batch=4)
    recording, csv = RecordingLogger(), CSVLogger(str(tmp_path / "csv"))
    trainer = _fit(tmp_path, method, max_steps=2, accumulate_grad_batches=2, logger=[recording, csv])
    optimizer = trainer.optimizers[0]
    assert [group["initial_lr"] for group in optimizer.param_groups] == [pytest.approx(0.2)] * 2
    assert trainer.global_step == 2 and trainer.lr_scheduler_configs[0].scheduler.last_epoch == 2
    expected = {"lr_scaling": "linear", "lr_reference_batch": 4, "global_batch": 8, "base_lr": 0.1, "effective_lr": pytest.approx(0.2)}
    assert {k: recording.hyperparameters[k] for k in expected} == expected
    written = yaml.safe_load((tmp_path / "csv" / "lightning_logs" / "version_0" / "hparams.yaml").read_text())
    assert {k: written[k] for k in expected} == expected


def test_no_scaling_is_logged_too(tmp_path):
    L.seed_everything(0)
    recording = RecordingLogger()
    trainer = _fit(tmp_path, FixMatch(num_classes=4, backbone="tiny_mlp", lr=0.1), max_steps=1, logger=recording)
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == 0.1
    assert recording.hyperparameters["lr_scaling"] == "none" and recording.hyperparameters["global_batch"] == 4
    assert recording.hyperparameters["base_lr"] == recording.hyperparameters["effective_lr"] == 0.1


def test_boosted_ssl_scales_both_of_its_optimizers(tmp_path):
    L.seed_everything(0)
    method = BoostedFixMatch(num_classes=4, backbone="tiny_mlp", warmup_epochs=1, ssl_epochs=1, clustering_batch_size=8,
                             lr=0.03, clustering_lr=0.01, lr_scaling="sqrt", lr_reference_batch=1)
    recording = RecordingLogger()
    trainer = _fit(tmp_path, method, max_epochs=1, limit_train_batches=1, reload_dataloaders_every_n_epochs=1, logger=recording)
    ssl, clustering = trainer.optimizers
    assert ssl.param_groups[0]["initial_lr"] == pytest.approx(0.06) and clustering.param_groups[0]["initial_lr"] == pytest.approx(0.02)
    assert recording.hyperparameters["effective_clustering_lr"] == pytest.approx(0.02)
    assert recording.hyperparameters["base_clustering_lr"] == 0.01
