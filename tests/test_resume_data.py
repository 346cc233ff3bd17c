"""Resume checks the data (a changed split or dataset is refused) and extending max_steps
continues the same data stream."""
import copy
import shutil

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import fakes
import tiny
from datamodules import ArrayDataModule, CIFAR100DataModule, ImageFolderDataModule, ImageNetDataModule, STL10DataModule, SVHNDataModule
from datamodules.fingerprint import FINGERPRINT_KEY
from sslzoo.checkpointing.cut_epoch import reopen_cut_epoch
from sslzoo.cli import build_cli
from sslzoo.methods import FixMatch

STEPS_PER_EPOCH = 4


def _fit(root, max_steps, npz=None, ckpt=None, callbacks=(), datamodule_cls=ArrayDataModule, **data):
    L.seed_everything(0)
    npz = npz or tiny.tiny_npz(root)
    options = dict(num_labels=8, batch_size=4, unlabeled_ratio=2, num_workers=0, shuffle_seed=0, steps_per_epoch=STEPS_PER_EPOCH)
    datamodule = datamodule_cls(str(npz), **{**options, **data})
    method = FixMatch(num_classes=4, backbone="tiny_mlp", scheduler="constant")
    trainer = tiny.tiny_trainer(root, max_steps=max_steps, callbacks=list(callbacks), enable_checkpointing=bool(callbacks))
    trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt)
    return method, trainer


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped after 2 steps, saved after fit, with its data file."""
    root = tmp_path_factory.mktemp("stopped")
    _, trainer = _fit(root, 2)
    trainer.save_checkpoint(root / "stopped.ckpt")
    return root / "tiny.npz", root / "stopped.ckpt"


# ---- the data check --------------------------------------------------------------------------


def test_checkpoint_stores_the_data_fingerprint(stopped_run):
    _, ckpt = stopped_run
    saved = torch.load(ckpt, weights_only=True)["ArrayDataModule"][FINGERPRINT_KEY]
    assert saved["num_labels"] == saved["labeled_count"] == 8 and saved["split_seed"] == 0
    assert saved["train_items"] == 64 and saved["datamodule"] == "ArrayDataModule"


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(num_labels=12), r"num_labels: checkpoint 8 vs this run 12.*resume with --data.init_args.num_labels 8"),
        (dict(split_seed=3), r"split_seed: checkpoint 0 vs this run 3.*resume with --data.init_args.split_seed 0"),
        (dict(npz_seed=1), r"training labels differ.*point the datamodule at the data the run was trained on \(it was read from .*tiny.npz\)"),
    ],
    ids=["num_labels", "split_seed", "dataset-file"],
)
def test_resume_on_other_data_is_refused(tmp_path, stopped_run, change, expected):
    _, ckpt = stopped_run
    npz = fakes.write_npz(tmp_path / "other.npz", num_train=64, num_test=16, size=8, seed=change.pop("npz_seed", 0))
    with pytest.raises(ValueError, match=expected) as refused:
        _fit(tmp_path, 4, npz=npz, ckpt=ckpt, **change)
    assert "start a new run in another default_root_dir" in str(refused.value)


def test_resume_from_a_moved_dataset_is_accepted(tmp_path, stopped_run):
    npz, ckpt = stopped_run
    moved = tmp_path / "elsewhere" / "renamed.npz"
    moved.parent.mkdir()
    shutil.copy(npz, moved)
    _, trainer = _fit(tmp_path, 4, npz=moved, ckpt=ckpt)
    assert trainer.global_step == 4


def test_checkpoint_without_fingerprint_resumes_with_a_warning(tmp_path, stopped_run):
    _, ckpt = stopped_run
    checkpoint = torch.load(ckpt, weights_only=True)
    del checkpoint["ArrayDataModule"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.warns(UserWarning, match="holds no data fingerprint"):
        _, trainer = _fit(tmp_path, 4, ckpt=tmp_path / "old.ckpt")
    assert trainer.global_step == 4


class RenamedArrayDataModule(ArrayDataModule):
    pass


def test_checkpoint_of_another_datamodule_class_is_refused(tmp_path, stopped_run):
    """Lightning stores the datamodule's state under its class name, so another class never sees it."""
    npz, ckpt = stopped_run
    with pytest.raises(ValueError, match="datamodule class: checkpoint 'ArrayDataModule' vs this run 'RenamedArrayDataModule'"):
        _fit(tmp_path, 4, npz=npz, ckpt=ckpt, datamodule_cls=RenamedArrayDataModule)


def test_evaluating_a_checkpoint_on_other_data_is_allowed(tmp_path, stopped_run):
    _, ckpt = stopped_run
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), num_labels=12)
    method = FixMatch(num_classes=4, backbone="tiny_mlp")
    results = tiny.tiny_trainer(tmp_path).test(method, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    assert "test/acc" in results[0]


def test_cli_refuses_resuming_with_other_num_labels(tmp_path):
    build_cli(["fit", *tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "1")])
    with pytest.raises(ValueError, match="num_labels: checkpoint 8 vs this run 12.*--data.init_args.num_labels 8"):
        build_cli(["fit", *tiny.toy_cli_args(tmp_path, "--trainer.max_epochs", "2", "--data.num_labels", "12"), "--ckpt_path", "last"])


# ---- what the fingerprint sees, per dataset ------------------------------------------------


def _fingerprint(datamodule, trainer=None):
    datamodule.trainer = trainer
    datamodule.setup("fit")
    return datamodule.fingerprint()


def _differences(a: dict, b: dict) -> set:
    return {k for k in a if a[k] != b[k]} - {"data_location"}


def test_fingerprint_is_content_not_location(tmp_path):
    first = fakes.write_image_folder(tmp_path / "a", splits=("train", "val"))
    moved = shutil.copytree(first, tmp_path / "b" / "moved")
    make = lambda root, **kw: ImageFolderDataModule(str(root), test_dir="val", num_labels=6, num_workers=0, name="folder", **kw)
    assert _differences(_fingerprint(make(first)), _fingerprint(make(moved))) == set()
    (moved / "train" / "n01" / "n01_train0.JPEG").rename(moved / "train" / "n01" / "n01_renamed.JPEG")
    assert "train_content" in _differences(_fingerprint(make(first)), _fingerprint(make(moved)))
    assert _differences(_fingerprint(make(first)), _fingerprint(make(first, classes=["n01", "n02"]))) >= {"train_items", "train_labels"}


def test_fingerprint_sees_each_datasets_split_options(tmp_path):
    stl = fakes.write_stl10(tmp_path / "stl")
    fold0, fold1, no_unlabeled = (
        _fingerprint(STL10DataModule(str(stl), num_workers=0, **kw)) for kw in (dict(fold=0), dict(fold=1), dict(fold=0, use_unlabeled_split=False))
    )
    assert _differences(fold0, fold1) == {"fold", "labeled"}
    assert _differences(fold0, no_unlabeled) >= {"use_unlabeled_split", "train_items", "train_content"}

    svhn = fakes.write_svhn(tmp_path / "svhn")
    plain, extra = (_fingerprint(SVHNDataModule(str(svhn), num_labels=10, num_workers=0, extra=e)) for e in (False, True))
    assert _differences(plain, extra) >= {"extra", "train_items", "unlabeled"} and plain["labeled"] == extra["labeled"]

    cifar = fakes.write_cifar100(tmp_path / "cifar")
    fine, coarse = (_fingerprint(CIFAR100DataModule(str(cifar), num_workers=0, superclasses=s)) for s in (False, True))
    assert _differences(fine, coarse) >= {"superclasses", "num_classes", "train_labels", "dataset"}

    imagenet = fakes.write_image_folder(tmp_path / "imagenet")
    for name, files in (("one.txt", ["n01_train0.JPEG", "n02_train1.JPEG", "n03_train2.JPEG"]), ("two.txt", ["n01_train1.JPEG", "n02_train1.JPEG", "n03_train2.JPEG"])):
        (tmp_path / name).write_text("\n".join(files) + "\n")
    listed = [_fingerprint(ImageNetDataModule(str(imagenet), label_subset=str(tmp_path / n), num_workers=0)) for n in ("one.txt", "two.txt")]
    assert _differences(*listed) == {"labeled"}


def test_fingerprint_does_not_depend_on_rank_or_world_size(tmp_path, fake_trainer):
    npz = tiny.tiny_npz(tmp_path)
    prints = [_fingerprint(tiny.tiny_datamodule(npz), fake_trainer(rank, world)) for rank, world in ((0, 1), (0, 2), (1, 2))]
    assert prints[0] == prints[1] == prints[2]


# ---- extending a run: stopped at max_steps mid-epoch, resumed with a larger max_steps -------


def _last_checkpoint(root):
    return ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True, save_top_k=0)


@pytest.mark.parametrize("saved_by", ["save_checkpoint-after-fit", "ModelCheckpoint-last"])
def test_extending_max_steps_continues_the_data_stream(tmp_path, saved_by):
    """Constant lr, so only the data order and the counters can make the runs differ."""
    full, full_trainer = _fit(tmp_path / "full", 10)
    if saved_by == "ModelCheckpoint-last":
        _fit(tmp_path / "short", 6, callbacks=[_last_checkpoint(tmp_path / "short")])
        ckpt = tmp_path / "short" / "checkpoints" / "last.ckpt"
    else:
        _, short_trainer = _fit(tmp_path / "short", 6)
        ckpt = tmp_path / "short.ckpt"
        short_trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 6  # stopped 2 steps into epoch 1
    extended, extended_trainer = _fit(tmp_path / "extended", 10, ckpt=ckpt)
    assert extended_trainer.global_step == 10 and extended_trainer.current_epoch == full_trainer.current_epoch
    expected, actual = tiny.weights(full), tiny.weights(extended)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_cli_extends_a_run_stopped_mid_epoch_exactly(tmp_path):
    """The user's path: `--trainer.max_steps 4` (3 steps per epoch), then `--trainer.max_steps 8 --ckpt_path last`."""
    common = ("--seed_everything", "0", "--trainer.logger", "false", "--trainer.limit_val_batches", "0", "--model.scheduler", "constant")
    build_cli(["fit", *tiny.toy_cli_args(tmp_path / "short", *common, "--trainer.max_steps", "4")])
    extended = build_cli(["fit", *tiny.toy_cli_args(tmp_path / "short", *common, "--trainer.max_steps", "8"), "--ckpt_path", "last"])
    full = build_cli(["fit", *tiny.toy_cli_args(tmp_path / "full", *common, "--trainer.max_steps", "8")])
    assert extended.trainer.global_step == 8 and extended.trainer.current_epoch == full.trainer.current_epoch
    expected, actual = tiny.weights(full.model), tiny.weights(extended.model)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def _fit_loop_state(epochs, epochs_done, batches_in_epoch, is_last_batch):
    counts = lambda n, done: {"ready": n, "started": n, "processed": done, "completed": done}
    return {
        "epoch_progress": {"total": counts(epochs, epochs_done), "current": counts(epochs, epochs_done)},
        "epoch_loop.batch_progress": {"current": counts(batches_in_epoch, batches_in_epoch), "is_last_batch": is_last_batch},
    }


def test_only_an_epoch_cut_short_is_reopened():
    cut = _fit_loop_state(epochs=2, epochs_done=2, batches_in_epoch=2, is_last_batch=False)
    assert reopen_cut_epoch(cut) and cut["epoch_progress"]["total"] == {"ready": 2, "started": 2, "processed": 1, "completed": 1}
    assert not reopen_cut_epoch(copy.deepcopy(cut)), "reopening twice"
    finished = _fit_loop_state(epochs=2, epochs_done=2, batches_in_epoch=4, is_last_batch=True)
    mid_epoch = _fit_loop_state(epochs=2, epochs_done=1, batches_in_epoch=2, is_last_batch=False)
    for state in (finished, mid_epoch):
        before = copy.deepcopy(state)
        assert not reopen_cut_epoch(state) and state == before
