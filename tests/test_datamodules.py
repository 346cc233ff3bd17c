import json

import numpy as np
import pytest
import torch

import fakes
from sslzoo.errors import DataError
from datamodules import (
    ArrayDataModule,
    CIFAR10DataModule,
    CIFAR100DataModule,
    ImageFolderDataModule,
    ImageNetDataModule,
    STL10DataModule,
    SVHNDataModule,
)
from datamodules.views import build_view

COMMON = dict(batch_size=4, unlabeled_ratio=2, eval_batch_size=8, num_workers=0, shuffle_seed=0)


def _first_batch(dm):
    return next(iter(dm.train_dataloader()))[0]


def _num_batches(dm):
    loader = dm.train_dataloader()
    iter(loader)
    return len(loader)


def test_cifar10_streams_items_and_views(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
    dm.setup("fit")
    assert dm.info.classes[0] == "airplane" and dm.num_classes == 10
    assert len(dm.labeled_indices) == 20 and len(dm.unlabeled_indices) == 100
    batch = _first_batch(dm)
    assert set(batch) == {"labeled", "unlabeled"}
    lab, unl = batch["labeled"], batch["unlabeled"]
    assert set(lab) == {"x", "y", "idx"} and set(unl) == {"x", "y_hidden", "idx"}
    assert lab["x"].shape == (4, 3, 32, 32) and lab["x"].dtype == torch.float32
    assert isinstance(unl["x"], list) and [v.shape for v in unl["x"]] == [(8, 3, 32, 32)] * 2
    assert set(lab["idx"].tolist()) <= set(dm.labeled_indices.tolist())
    targets = dm.pool.train.targets
    assert lab["y"].tolist() == targets[lab["idx"].numpy()].tolist()
    assert unl["y_hidden"].tolist() == targets[unl["idx"].numpy()].tolist()
    # one pass over the unlabeled set of 100 with unlabeled batch 8
    assert _num_batches(dm) == 12
    val = next(iter(dm.val_dataloader()))
    assert val["x"].shape == (8, 3, 32, 32) and set(val) == {"x", "y", "idx"}


def test_idx_reads_back_the_same_image(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, labeled_views=["eval"], unlabeled_views=["eval"], **COMMON)
    dm.setup()
    batch = _first_batch(dm)["unlabeled"]
    for x, idx in zip(batch["x"], batch["idx"]):
        from datamodules.views import build_view

        torch.testing.assert_close(x, build_view("eval", dm.info)(dm.pool.train.image(int(idx))))


def test_fixed_steps_per_epoch_and_labeled_only(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=10, steps_per_epoch=7, **COMMON)
    dm.setup()
    assert _num_batches(dm) == 7
    batches = list(dm.train_dataloader())
    assert len(batches) == 7 and all(b[0]["labeled"]["x"].shape[0] == 4 for b in batches)
    sup = CIFAR10DataModule(str(root), num_labels=20, unlabeled_views=[], **COMMON)
    sup.setup()
    batch = _first_batch(sup)
    assert set(batch) == {"labeled"} and _num_batches(sup) == 5


def test_exclude_labeled_from_unlabeled_and_validation_holdout(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, num_val=30, include_labeled_in_unlabeled=False, **COMMON)
    dm.setup()
    lab, val, unl = set(dm.labeled_indices), set(dm.val_indices), set(dm.unlabeled_indices)
    assert len(val) == 30 and not (lab & val) and not (unl & (lab | val)) and len(unl) == 50
    assert np.bincount(dm.pool.train.targets[dm.val_indices], minlength=10).tolist() == [3] * 10
    assert len(dm.val_dataloader().dataset) == 30 and len(dm.test_dataloader().dataset) == 30
    # The validation hold-out does not change the labeled split.
    plain = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
    plain.setup()
    assert lab == set(plain.labeled_indices)


def test_methods_declare_their_views(tmp_path, fake_trainer):
    from types import SimpleNamespace

    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
    method = SimpleNamespace(views={"labeled": ["eval"], "unlabeled": [{"name": "multicrop", "num_global": 2, "num_local": 2}]})
    dm.trainer = fake_trainer(lightning_module=method)
    dm.setup()
    batch = _first_batch(dm)
    assert batch["labeled"]["x"].shape == (4, 3, 32, 32)
    assert [v.shape[-1] for v in batch["unlabeled"]["x"]] == [32, 32, 18, 18]


def test_two_ranks_share_the_split_and_get_disjoint_unlabeled_shards(tmp_path, fake_trainer):
    root = fakes.write_cifar10(tmp_path)
    shards, splits = [], []
    for rank in range(2):
        torch.manual_seed(rank + 100)  # different training seeds per rank must not matter
        dm = CIFAR10DataModule(str(root), num_labels=20, unlabeled_views=["eval"], **COMMON)
        dm.trainer = fake_trainer(rank=rank, world_size=2)
        dm.setup()
        splits.append(dm.labeled_indices.tolist())
        assert _num_batches(dm) == 6  # 100 // (8 * 2)
        loader = dm.train_dataloader()
        shards.append(sum((b[0]["unlabeled"]["idx"].tolist() for b in loader), []))
    assert splits[0] == splits[1]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 48
    single = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
    single.setup()
    assert splits[0] == single.labeled_indices.tolist()
    evals = []
    for rank in range(2):
        dm = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
        dm.trainer = fake_trainer(rank=rank, world_size=2)
        dm.setup()
        evals.append(sum((b["idx"].tolist() for b in dm.test_dataloader()), []))
    assert sorted(evals[0] + evals[1]) == list(range(30))


def test_epochs_reshuffle_via_sampler_epoch(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, unlabeled_views=["eval"], **COMMON)
    dm.setup()
    loader = dm.train_dataloader()
    unlabeled_loader = loader.iterables["unlabeled"]
    order = lambda: [int(i) for b in unlabeled_loader for i in b["idx"]]
    first = order()
    unlabeled_loader.sampler.set_epoch(1)
    assert order() != first


def test_split_file_is_written_then_enforced(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    path = tmp_path / "split.json"
    dm = CIFAR10DataModule(str(root), num_labels=20, split_file=str(path), **COMMON)
    dm.setup()
    saved = json.loads(path.read_text())
    assert saved["dataset"] == "cifar10" and saved["num_train"] == 100 and len(saved["labeled_indices"]) == 20
    # Read back even with another split seed: the file wins.
    again = CIFAR10DataModule(str(root), num_labels=20, split_seed=9, split_file=str(path), **COMMON)
    again.setup()
    assert again.labeled_indices.tolist() == dm.labeled_indices.tolist()
    with pytest.raises(ValueError, match="holds 20 labeled images but num_labels=40"):
        CIFAR10DataModule(str(root), num_labels=40, split_file=str(path), **COMMON).setup()
    other = fakes.write_svhn(tmp_path / "svhn")
    with pytest.raises(ValueError, match="made for dataset 'cifar10', not 'svhn'"):
        SVHNDataModule(str(other), num_labels=20, split_file=str(path), **COMMON).setup()


def test_cifar100_and_superclasses(tmp_path):
    root = fakes.write_cifar100(tmp_path)
    fine = CIFAR100DataModule(str(root), num_labels=200, **COMMON)
    fine.setup()
    assert fine.num_classes == 100 and fine.pool.train.targets.max() == 99
    coarse = CIFAR100DataModule(str(root), superclasses=True, num_labels=40, **COMMON)
    coarse.setup()
    assert coarse.num_classes == 20 and coarse.info.name == "cifar100_20"
    np.testing.assert_array_equal(coarse.pool.train.targets, fine.pool.train.targets % 20)
    assert coarse.info.classes[3] == "coarse3"


def test_svhn_labels_and_extra(tmp_path):
    root = fakes.write_svhn(tmp_path)
    dm = SVHNDataModule(str(root), num_labels=20, **COMMON)
    dm.setup()
    assert dm.pool.train.targets.min() == 0 and dm.pool.train.targets.max() == 9  # digit 0 stored as 10
    assert len(dm.pool.train) == 60 and not dm.info.hflip
    extra = SVHNDataModule(str(root), num_labels=20, extra=True, **COMMON)
    extra.setup()
    assert len(extra.pool.train) == 100 and len(extra.unlabeled_indices) == 100
    assert extra.labeled_indices.max() < 60  # labels only from the train split
    assert extra.labeled_indices.tolist() == dm.labeled_indices.tolist()


def test_stl10_pool_folds_and_unknown_labels(tmp_path):
    root = fakes.write_stl10(tmp_path)
    dm = STL10DataModule(str(root), num_labels=20, **COMMON)
    dm.setup()
    assert len(dm.pool.train) == 80 and dm.info.image_size == 96
    assert (dm.pool.train.targets[50:] == -1).all() and dm.labeled_indices.max() < 50
    batch = _first_batch(dm)
    assert batch["labeled"]["x"].shape == (4, 3, 96, 96)
    assert (batch["labeled"]["y"] >= 0).all()
    fold = STL10DataModule(str(root), fold=3, **COMMON)
    fold.setup()
    lines = (root / "stl10_binary" / "fold_indices.txt").read_text().splitlines()
    assert fold.labeled_indices.tolist() == sorted(int(i) for i in lines[3].split())
    with pytest.raises(ValueError, match="conflicts with the predefined labeled set"):
        STL10DataModule(str(root), fold=3, num_labels=20, **COMMON).setup()
    # Images read through torchvision match the bytes we wrote (column-major on disk).
    raw = np.fromfile(root / "stl10_binary" / "test_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    assert torch.equal(dm.pool.test.image(5), torch.from_numpy(raw[5]))


def test_imagenet_folders_with_label_subset_file(tmp_path):
    root = fakes.write_image_folder(tmp_path / "imagenet")
    subset = tmp_path / "subset.txt"
    subset.write_text("n01_train0.JPEG\nn02_train3.JPEG\nn03_train5.JPEG\n")
    dm = ImageNetDataModule(str(root), label_subset=str(subset), image_size=32, **COMMON)
    dm.setup()
    assert dm.num_classes == 3 and dm.info.classes == ("n01", "n02", "n03")
    names = [dm.pool.train.paths[i].rsplit("/", 1)[-1] for i in dm.labeled_indices]
    assert names == ["n01_train0.JPEG", "n02_train3.JPEG", "n03_train5.JPEG"]
    batch = _first_batch(dm)
    assert batch["labeled"]["x"].shape == (4, 3, 32, 32)
    assert next(iter(dm.val_dataloader()))["x"].shape == (6, 3, 32, 32)
    subset.write_text("n01_train0.JPEG\nn09_missing.JPEG\n")
    with pytest.raises(ValueError, match=r"1 of the 2 images listed .* \(first: n09_missing.JPEG\)"):
        ImageNetDataModule(str(root), label_subset=str(subset), image_size=32, **COMMON).setup()
    with pytest.raises(FileNotFoundError, match="1percent.txt not found; pass download=True"):
        ImageNetDataModule(str(root), label_subset="1percent", image_size=32, **COMMON).setup()


def test_image_folder_png_fixed_size(tmp_path):
    root = fakes.write_image_folder(tmp_path / "custom", splits=("train", "test"), classes=("cat", "dog"), per_class=(4, 2), ext="png")
    dm = ImageFolderDataModule(str(root), image_size=40, num_labels=4, name="pets", **COMMON)
    dm.setup()
    assert dm.info.name == "pets" and dm.num_classes == 2 and len(dm.pool.train) == 8
    assert _first_batch(dm)["labeled"]["x"].shape == (4, 3, 40, 40)


def test_array_file(tmp_path):
    path = fakes.write_npz(tmp_path / "toy.npz", channels=1)
    dm = ArrayDataModule(str(path), num_labels=8, **COMMON)
    dm.setup()
    assert dm.info.name == "toy" and dm.num_classes == 4 and dm.info.image_size == 16
    assert len(dm.info.mean) == 1
    batch = _first_batch(dm)
    assert batch["labeled"]["x"].shape == (4, 1, 16, 16)


# ---- bad input -------------------------------------------------------------

def test_missing_root_names_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR10 not found: expected file .*cifar-10-batches-py/data_batch_1 .*download=True"):
        CIFAR10DataModule(str(tmp_path / "nowhere"), **COMMON).setup()
    with pytest.raises(FileNotFoundError, match=r"SVHN not found: expected file .*train_32x32.mat"):
        SVHNDataModule(str(tmp_path), **COMMON).setup()
    with pytest.raises(FileNotFoundError, match=r"STL-10 not found: expected file .*stl10_binary/train_X.bin"):
        STL10DataModule(str(tmp_path), **COMMON).setup()
    with pytest.raises(FileNotFoundError, match="image folder .*train does not exist"):
        ImageFolderDataModule(str(tmp_path), **COMMON).setup()
    with pytest.raises(FileNotFoundError, match="array file .*none.npz not found"):
        ArrayDataModule(str(tmp_path / "none.npz"), **COMMON).setup()


def test_impossible_num_labels(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        CIFAR10DataModule(str(root), num_labels=25, **COMMON).setup()
    with pytest.raises(ValueError, match=r"class 0 \(airplane\) has only 10 images available but 20 per class .* at most 100 in total"):
        CIFAR10DataModule(str(root), num_labels=200, **COMMON).setup()


def test_labels_out_of_range(tmp_path):
    y = np.arange(40) % 4
    y[7] = 9
    path = fakes.write_npz(tmp_path / "bad.npz", y_train=y)
    with pytest.raises(ValueError, match=r"label 9 at index 7 is outside \[0, 4\)"):
        ArrayDataModule(str(path), **COMMON).setup()
    y[7] = -3
    path = fakes.write_npz(tmp_path / "neg.npz", y_train=y)
    with pytest.raises(ValueError, match="label -3 at index 7"):
        ArrayDataModule(str(path), **COMMON).setup()


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(x_train=np.zeros((40, 16, 16, 3), dtype=np.float32)), "dtype float32; images must be uint8"),
        (dict(x_train=np.zeros((40, 3, 16, 16), dtype=np.uint8)), r"shape \(40, 3, 16, 16\); images must be \(N, H, W, C\)"),
        (dict(y_train=np.zeros(39, dtype=np.int64)), r"y_train must be 40 integer class ids"),
        (dict(y_test=None), r"lacks arrays \['y_test'\]"),
    ],
)
def test_bad_array_files(tmp_path, override, message):
    path = fakes.write_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(ValueError, match=message):
        ArrayDataModule(str(path), **COMMON).setup()


def test_empty_class_folder(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    (root / "train" / "n04").mkdir()
    (root / "test" / "n04").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*train/n04 holds no images"):
        ImageFolderDataModule(str(root), image_size=32, **COMMON).setup()


def test_flat_folder_without_classes(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train",), per_class=(2,))
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="holds no class sub-directories"):
        ImageNetDataModule(str(root), image_size=32, **COMMON).setup()


def test_corrupt_image_names_the_file(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    bad = root / "train" / "n02" / "n02_train1.JPEG"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    # Without the verification at setup, the file is named when it is first read.
    dm = ImageFolderDataModule(str(root), image_size=32, verify_images=False, labeled_views=["eval"], unlabeled_views=["eval"], **COMMON)
    dm.setup()
    index = dm.pool.train.paths.index(str(bad))
    with pytest.raises(DataError, match=r"cannot decode image file .*n02_train1.JPEG"):
        dm.pool.train.image(index)


def test_download_runs_torchvision_download_and_md5_check(tmp_path, monkeypatch):
    """The real download path (torchvision's download_and_extract_archive) against a loopback HTTP server."""
    import functools
    import hashlib
    import http.server
    import tarfile
    import threading

    from datamodules.cifar import _CIFAR10

    fakes.write_cifar10(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(_CIFAR10, "url", f"http://127.0.0.1:{server.server_address[1]}/{archive.name}")
    monkeypatch.setattr(_CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    dm = CIFAR10DataModule(str(tmp_path / "dl"), num_labels=20, download=True, **COMMON)
    dm.prepare_data()
    dm.setup()
    assert len(dm.pool.train) == 100
    monkeypatch.setattr(_CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(RuntimeError, match="not found or is corrupted|File not found or corrupted"):
        CIFAR10DataModule(str(tmp_path / "dl2"), download=True, **COMMON).prepare_data()
    server.shutdown()


# ---- peek_info: the dataset's facts before setup, cheaply ------------------------

@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda root: CIFAR10DataModule(root), ("cifar10", 10, 3, 32, True, True)),
        (lambda root: CIFAR100DataModule(root), ("cifar100", 100, 3, 32, True, True)),
        (lambda root: CIFAR100DataModule(root, superclasses=True), ("cifar100_20", 20, 3, 32, True, True)),
        (lambda root: SVHNDataModule(root), ("svhn", 10, 3, 32, True, False)),
        (lambda root: STL10DataModule(root), ("stl10", 10, 3, 96, True, True)),
        (lambda root: ImageNetDataModule(root), ("imagenet", 1000, 3, 224, False, True)),
        (lambda root: ImageNetDataModule(root, classes=["n01", "n02"]), ("imagenet", 2, 3, 224, False, True)),
    ],
    ids=["cifar10", "cifar100", "cifar100_20", "svhn", "stl10", "imagenet", "imagenet-classes"],
)
def test_builtin_datasets_peek_without_their_files(tmp_path, make, expected):
    info = make(str(tmp_path / "absent")).peek_info()
    assert (info.name, info.num_classes, info.channels, info.image_size, info.fixed_size, info.hflip) == expected
    assert not (tmp_path / "absent").exists()  # nothing downloaded or created


@pytest.mark.parametrize(
    "write, make",
    [
        (fakes.write_cifar10, lambda root: CIFAR10DataModule(root, **COMMON)),
        (fakes.write_cifar100, lambda root: CIFAR100DataModule(root, superclasses=True, **COMMON)),
        (fakes.write_stl10, lambda root: STL10DataModule(root, **COMMON)),
        (fakes.write_svhn, lambda root: SVHNDataModule(root, **COMMON)),
        (lambda root: fakes.write_image_folder(root, splits=("train", "val")), lambda root: ImageNetDataModule(root, classes=["n03", "n01"], image_size=32, **COMMON)),
    ],
    ids=["cifar10", "cifar100_20", "stl10", "svhn", "imagenet-folder"],
)
def test_peek_agrees_with_the_full_load(tmp_path, write, make):
    root = str(write(tmp_path / "data"))
    dm = make(root)
    peeked = dm.peek_info()
    dm.setup()
    for field in ("name", "num_classes", "channels", "image_size", "fixed_size", "hflip", "classes"):
        assert getattr(peeked, field) == getattr(dm.info, field), field
    assert dm.peek_info() is dm.info  # after setup, the real thing (with mean/std)


def test_array_peek_reads_labels_and_headers_only(tmp_path, monkeypatch):
    import datamodules.array as array_module

    path = fakes.write_npz(tmp_path / "gray.npz", num_classes=5, size=12, channels=1, num_train=50)
    read = []
    real = array_module.load_npz_array
    monkeypatch.setattr(array_module, "load_npz_array", lambda p, name: read.append(name) or real(p, name))
    dm = ArrayDataModule(str(path), name="gray", **COMMON)
    info = dm.peek_info()
    assert sorted(read) == ["classes", "y_test", "y_train"]  # never x_train / x_test
    assert (info.name, info.num_classes, info.channels, info.image_size) == ("gray", 5, 1, 12)
    assert info.classes == tuple(f"class{i}" for i in range(5)) and info.mean == (0.5,)
    assert dm.peek_info() is info and len(read) == 3  # cached
    dm.setup()
    assert dm.info.channels == 1 and dm.info.mean != (0.5,) and "x_train" in read


def test_setup_refuses_data_that_changed_since_the_peek(tmp_path):
    path = fakes.write_npz(tmp_path / "toy.npz", num_classes=4)
    dm = ArrayDataModule(str(path), **COMMON)
    assert dm.peek_info().num_classes == 4
    fakes.write_npz(path, num_classes=5)
    with pytest.raises(DataError, match=r"differs from what peek_info\(\) found before \(num_classes 4 -> 5, the class names\)"):
        dm.setup()


def test_folder_peek_lists_class_folders_and_honours_classes(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"), classes=("cat", "dog", "fox"))
    info = ImageFolderDataModule(str(root), image_size=40, name="pets", **COMMON).peek_info()
    assert (info.num_classes, info.classes, info.channels, info.image_size) == (3, ("cat", "dog", "fox"), 3, 40)
    chosen = ImageFolderDataModule(str(root), classes=["fox", "cat"], **COMMON).peek_info()
    assert chosen.classes == ("fox", "cat") and chosen.num_classes == 2


# ---- num_workers: sized to the machine by default -------------------------------

@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("local", [1, 2, 8])
def test_default_workers_never_trigger_lightnings_few_workers_warning(monkeypatch, cpus, local):
    import os

    from lightning.fabric.utilities.data import suggested_max_num_workers

    from datamodules.workers import default_num_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    workers = default_num_workers(local)
    assert 0 <= workers <= 8 and workers <= max(0, cpus // local - 1)
    # Lightning warns when num_workers < 2 while it suggests more than 1.
    assert not (workers < 2 and suggested_max_num_workers(local) > 1)


def test_num_workers_default_follows_local_world_size_and_zero_stays_zero(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    options = {k: v for k, v in COMMON.items() if k != "num_workers"}
    dm = CIFAR10DataModule(str(tmp_path), **options)
    assert dm.num_workers is None and dm.resolved_num_workers() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert dm.resolved_num_workers() == 3
    zero = CIFAR10DataModule(str(tmp_path), num_workers=0, **options)
    assert zero.resolved_num_workers() == 0 and zero._loader_options()["persistent_workers"] is False


# ---- predict_split: which images predict runs on -----------------------------------

def _predicted(dm):
    batches = list(dm.predict_dataloader())
    cat = lambda key: torch.cat([b[key] for b in batches])
    return cat("x"), cat("idx").tolist(), cat("y").tolist(), batches


@pytest.mark.parametrize("split", ["test", "val", "labeled", "unlabeled", "train"])
def test_predict_splits_of_an_array_file(tmp_path, split):
    path = fakes.write_npz(tmp_path / "toy.npz")
    dm = ArrayDataModule(str(path), num_labels=8, num_val=8, include_labeled_in_unlabeled=False, predict_split=split, **COMMON)
    dm.setup("predict")
    train = dm.pool.train.targets
    pool_indices = {
        "test": None, "val": dm.val_indices, "labeled": dm.labeled_indices, "unlabeled": dm.unlabeled_indices,
        "train": np.arange(len(train)),
    }[split]
    x, idx, y, batches = _predicted(dm)
    assert set(batches[0]) == {"x", "y", "idx"} and x.shape[1:] == (3, 16, 16)
    n = len(dm.pool.test) if pool_indices is None else len(pool_indices)
    assert sorted(idx) == list(range(n))  # positions in the split, each once
    if split == "test":
        assert y == dm.pool.test.targets.tolist()
        expected_x = build_view("eval", dm.info)(dm.pool.test.image(5))
    else:
        expected_x = build_view("eval", dm.info)(dm.pool.train.image(int(pool_indices[5])))
        if split == "unlabeled":
            shown = np.full(n, -1)  # the unlabeled pool's labels stay hidden
        elif split == "train":
            shown = np.where(np.isin(np.arange(n), np.union1d(dm.labeled_indices, dm.val_indices)), train, -1)
        else:
            shown = train[pool_indices]
        assert y == shown.tolist()
    torch.testing.assert_close(x[idx.index(5)], expected_x)
    assert dm.predict_item_names() is None  # arrays have no files


def test_predict_item_names_of_a_folder_dataset(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    dm = ImageFolderDataModule(str(root), image_size=32, num_labels=3, predict_split="labeled", **COMMON)
    dm.setup("predict")
    names = dm.predict_item_names()
    assert names == [dm.pool.train.paths[i] for i in dm.labeled_indices]
    x, idx, y, _ = _predicted(dm)
    assert y == dm.pool.train.targets[dm.labeled_indices].tolist() and idx == [0, 1, 2]
    test = ImageFolderDataModule(str(root), image_size=32, **COMMON)
    test.setup()
    assert test.predict_item_names() == test.pool.test.paths


def test_predict_a_folder_of_new_images(tmp_path):
    from PIL import Image

    new = tmp_path / "new"
    fakes.write_image_files(new, 2, size=(50, 30), ext="jpg")
    fakes.write_image_files(new / "deeper" / "still", 2, size=(33, 41), prefix="x")
    (new / "notes.txt").write_text("not an image")
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    dm = ImageFolderDataModule(str(root), image_size=24, predict_split=str(new), **COMMON)
    dm.setup("predict")
    names = dm.predict_item_names()
    assert names == sorted(str(p) for p in new.rglob("*") if p.suffix in (".jpg", ".png"))
    x, idx, y, _ = _predicted(dm)
    assert x.shape == (4, 3, 24, 24) and sorted(idx) == [0, 1, 2, 3] and y == [-1] * 4
    with Image.open(names[2]) as img:
        pixels = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    torch.testing.assert_close(x[idx.index(2)], build_view("eval", dm.info)(pixels))


def test_predict_a_new_folder_for_a_fixed_size_dataset(tmp_path):
    path = fakes.write_npz(tmp_path / "gray.npz", size=16, channels=1)
    new = tmp_path / "new"
    fakes.write_image_files(new, 3, size=(16, 16))
    dm = ArrayDataModule(str(path), predict_split=str(new), **COMMON)
    dm.setup("predict")
    x, idx, y, _ = _predicted(dm)
    assert x.shape == (3, 1, 16, 16) and y == [-1] * 3  # converted to the dataset's one channel
    odd = fakes.write_image_files(new, 1, size=(20, 20), prefix="odd")[0]
    dm = ArrayDataModule(str(path), predict_split=str(new), **COMMON)
    dm.setup("predict")
    with pytest.raises(DataError, match=rf"{odd} is 20x20 pixels, not 16x16"):
        dm.predict_dataloader()
    empty = tmp_path / "empty"
    empty.mkdir()
    dm = ArrayDataModule(str(path), predict_split=str(empty), **COMMON)
    dm.setup("predict")
    with pytest.raises(DataError, match="predict_split folder .*empty holds no images"):
        dm.predict_dataloader()


def test_worker_processes_do_not_change_the_training_stream(tmp_path):
    """Every item carries its own augmentation seed, so workers (the default now) give the batches
    of num_workers=0, and a loader resumed mid-epoch continues them exactly."""
    path = fakes.write_npz(tmp_path / "toy.npz")
    options = {**COMMON, "num_labels": 8, "steps_per_epoch": 4}

    def stream(workers, resume_at=None):
        dm = ArrayDataModule(str(path), **{**options, "num_workers": workers})
        dm.setup()
        loaders = dm.train_dataloader().iterables
        if resume_at is not None:
            for loader in loaders.values():
                loader.load_state_dict({"epoch": 0, "batches_done": resume_at})
        steps = zip(*(iter(loader) for loader in loaders.values()))  # (labeled, unlabeled) batches per step
        return [torch.cat([b["x"] if torch.is_tensor(b["x"]) else torch.cat(b["x"]) for b in step]) for step in steps]

    plain, with_workers = stream(0), stream(2)
    assert len(plain) == len(with_workers) == 4
    for a, b in zip(plain, with_workers):
        assert torch.equal(a, b)
    for a, b in zip(plain[2:], stream(2, resume_at=2)):
        assert torch.equal(a, b)
