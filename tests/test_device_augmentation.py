"""`augment_on: device`: the workers draw each image's parameters from its own seed and the
device applies them to the batch after the transfer. The batches, and so whole runs, equal
those of `augment_on: workers`: bit for bit for the uint8 views (FixMatch's weak and strong),
to float rounding for the float views (multi-crop), in one process and under 2-process DDP."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import ddp
import tiny
from sslzoo.cli import build_cli
from sslzoo.errors import ConfigError

FIXMATCH_VIEWS = dict(labeled_views=["weak"], unlabeled_views=["weak", {"name": "strong", "cutout": 4}])
MULTICROP_VIEWS = dict(labeled_views=["weak"], unlabeled_views=[{"name": "multicrop", "num_global": 2, "num_local": 3, "local_size": 8}])


def _first_batch(path, augment_on: str, num_workers: int = 0, **views):
    dm = tiny.tiny_datamodule(path, augment_on=augment_on, num_workers=num_workers, **views)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, lightning_module=None, training=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))[0]
    return dm.on_after_batch_transfer(batch, 0)


def _tensors(batch) -> list[torch.Tensor]:
    out = []
    for stream in ("labeled", "unlabeled"):
        x = batch[stream]["x"]
        out.extend(x if isinstance(x, list) else [x])
    return out


@pytest.mark.parametrize("channels", [3, 1])
def test_fixmatch_views_on_the_device_equal_the_workers_bit_for_bit(tmp_path, channels):
    import fakes

    path = fakes.write_npz(tmp_path / "data.npz", num_train=64, num_test=8, size=16, channels=channels)
    on_workers = _first_batch(path, "workers", **FIXMATCH_VIEWS)
    on_device = _first_batch(path, "device", num_workers=2, **FIXMATCH_VIEWS)
    for a, b in zip(_tensors(on_workers), _tensors(on_device), strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert torch.equal(a, b)


def test_multicrop_on_the_device_equals_the_workers(tmp_path):
    path = tiny.tiny_npz(tmp_path, size=16)
    on_workers = _first_batch(path, "workers", **MULTICROP_VIEWS)
    on_device = _first_batch(path, "device", **MULTICROP_VIEWS)
    tensors = list(zip(_tensors(on_workers), _tensors(on_device), strict=True))
    assert [a.shape[-1] for a, _ in tensors] == [16, 16, 16, 8, 8, 8]
    for a, b in tensors:
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


@pytest.mark.parametrize("views", [FIXMATCH_VIEWS, MULTICROP_VIEWS], ids=["fixmatch", "multicrop"])
def test_images_of_different_sizes_are_cropped_per_item_and_finished_on_the_device(tmp_path, views):
    import fakes
    from datamodules import ImageFolderDataModule

    root = fakes.write_image_folder(tmp_path / "pets", splits=("train", "test"), classes=("cat", "dog"), per_class=(12, 2), size=20)
    batches = []
    for augment_on in ("workers", "device"):
        dm = ImageFolderDataModule(str(root), image_size=16, num_labels=4, batch_size=2, unlabeled_ratio=2, num_workers=0, shuffle_seed=0,
                                   augment_on=augment_on, **views)
        dm.trainer = SimpleNamespace(global_rank=0, world_size=1, lightning_module=None, training=True)
        dm.setup("fit")
        batches.append(dm.on_after_batch_transfer(next(iter(dm.train_dataloader()))[0], 0))
    for a, b in zip(_tensors(batches[0]), _tensors(batches[1]), strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


def test_the_device_receives_uint8_images_and_their_draws(tmp_path):
    dm = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, size=16), augment_on="device", **FIXMATCH_VIEWS)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, lightning_module=None, training=True)
    dm.setup("fit")
    planned = next(iter(dm.train_dataloader()))[0]["unlabeled"]["x"]
    assert [item["image"].dtype for item in planned] == [torch.uint8, torch.uint8]
    assert all(item["params"].dtype == torch.float64 and len(item["params"]) == dm.unlabeled_batch() for item in planned)


def test_augment_on_is_a_choice():
    with pytest.raises(ConfigError, match="augment_on must be one of 'workers', 'device'"):
        tiny.tiny_datamodule("unused.npz", augment_on="gpu")


def _fit_weights(tmp_path, *extra) -> dict:
    args = ["fit", *tiny.toy_cli_args(tmp_path, "--seed_everything", "0", "--trainer.logger", "false", "--trainer.max_steps", "3",
                                      "--trainer.limit_val_batches", "0", "--model.backbone", "tiny_conv", *extra)]
    cli = build_cli(args)
    return tiny.weights(cli.model)


def test_a_cli_fit_with_device_augmentation_equals_one_with_worker_augmentation(tmp_path):
    workers = _fit_weights(tmp_path / "workers")
    device = _fit_weights(tmp_path / "device", "--data.augment_on", "device", "--data.num_workers", "1")
    assert workers.keys() == device.keys()
    for name in workers:
        assert torch.equal(workers[name], device[name]), name


@pytest.mark.slow
def test_two_process_ddp_with_device_augmentation_equals_worker_augmentation(tmp_path):
    path = tiny.tiny_npz(tmp_path, size=8)
    common = [
        "--seed_everything", "0", "--model", "FixMatch", "--model.num_classes", "4", "--model.backbone", "tiny_conv",
        "--data", "ArrayDataModule", "--data.path", str(path), "--data.num_labels", "8", "--data.batch_size", "2",
        "--data.unlabeled_ratio", "2", "--data.num_workers", "0", "--data.steps_per_epoch", "3",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "3",
        "--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    jobs = {
        "workers": [*common, "--trainer.default_root_dir", str(tmp_path / "w")],
        "device": [*common, "--data.augment_on", "device", "--trainer.default_root_dir", str(tmp_path / "d")],
    }
    results = ddp.run_cli_jobs(jobs, tmp_path / "ddp")
    for name, result in results.items():
        assert "error" not in result, result
        assert result["world_size"] == 2 and result["global_step"] == 3
    workers = torch.load(results["workers"]["weights_file"], weights_only=True)
    device = torch.load(results["device"]["weights_file"], weights_only=True)
    for name in workers:
        assert torch.equal(workers[name], device[name]), name
