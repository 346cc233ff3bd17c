"""Every data mistake a user can make ends in one clear line: an SSLZooError (the `sslzoo`
command prints it as `sslzoo: error: <message>`) that says what is wrong and what to do."""
import logging
import urllib.error

import numpy as np
import pytest

import fakes
from datamodules import ArrayDataModule, CIFAR10DataModule, ImageFolderDataModule, ImageNetDataModule, STL10DataModule, SVHNDataModule
from datamodules import verify
from datamodules.sources import check_targets
from sslzoo.errors import ConfigError, DataError, DataFileNotFound, ResumeRefused, SSLZooError

COMMON = dict(batch_size=4, unlabeled_ratio=2, eval_batch_size=8, num_workers=0, shuffle_seed=0)


def _one_line(err: BaseException) -> str:
    message = str(err)
    assert isinstance(err, SSLZooError) and "\n" not in message, message
    return message


# ---- array files ------------------------------------------------------------

def test_a_text_file_named_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("x_train,y_train\n1,2\n")
    for call in (lambda dm: dm.peek_info(), lambda dm: dm.setup()):
        with pytest.raises(DataError, match=r"data.npz is not an .npz archive \(a zip of .npy arrays\) or is cut short; write it with np.savez") as err:
            call(ArrayDataModule(str(path), **COMMON))
        assert "allow_pickle" not in _one_line(err.value)


def test_a_missing_npz_is_a_data_file_not_found(tmp_path):
    with pytest.raises(DataFileNotFound, match=r"array file .*none.npz not found; give the path of an .npz x_train=") as err:
        ArrayDataModule(str(tmp_path / "none.npz"), **COMMON).peek_info()
    _one_line(err.value)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = fakes.write_npz(tmp_path / "obj.npz", classes=np.array(["a", "b", "c", "d"], dtype=object))
    with pytest.raises(DataError, match="classes is an array of Python objects.*np.array\\(names, dtype=str\\)"):
        ArrayDataModule(str(path), **COMMON).peek_info()


def _labels(values, n=40):
    return np.resize(np.asarray(values), n)


@pytest.mark.parametrize(
    "y_train, message",
    [
        (_labels([1, 2, 3, 4]), r"class id 0 has no training image \(y_train holds ids 1, 2, 3, 4\); relabel the classes 0..C-1"),
        (_labels([0, 5, 9]), r"class ids 1, 2, 3, 4, 6, 7, 8 have no training image .* or add a classes array naming every class"),
    ],
    ids=["labels-1-to-C", "sparse-ids"],
)
def test_labels_with_gaps_are_refused_without_a_class_list(tmp_path, y_train, message):
    path = fakes.write_npz(tmp_path / "gaps.npz", y_train=y_train, y_test=np.full(20, y_train[0]), classes=None)
    with pytest.raises(DataError, match=message) as err:
        ArrayDataModule(str(path), **COMMON).peek_info()
    _one_line(err.value)


def test_a_class_missing_from_the_test_split_only_is_fine(tmp_path):
    path = fakes.write_npz(tmp_path / "rare.npz", y_train=_labels([0, 1, 2, 3]), y_test=_labels([0, 1, 2], 20), classes=None)
    dm = ArrayDataModule(str(path), num_labels=8, **COMMON)
    assert dm.peek_info().num_classes == 4
    dm.setup()
    assert dm.num_classes == 4


def test_labels_beyond_the_class_list(tmp_path):
    path = fakes.write_npz(tmp_path / "beyond.npz", y_test=_labels([0, 1, 4], 20))
    with pytest.raises(DataError, match=r"y_test label 4 at index 2 is outside \[0, 4\) \(6 such labels\), the ids of the file's 4 classes"):
        ArrayDataModule(str(path), **COMMON).peek_info()


def test_negative_labels_name_the_unlabeled_flag(tmp_path):
    y = _labels([0, 1, 2, 3])
    y[[5, 9]] = -1
    path = fakes.write_npz(tmp_path / "neg.npz", y_train=y)
    with pytest.raises(DataError, match=r"y_train holds a negative label -1 at index 5 \(2 such labels\); .* set unlabeled_label: -1") as err:
        ArrayDataModule(str(path), **COMMON).setup()
    _one_line(err.value)
    y[7] = -2
    path = fakes.write_npz(tmp_path / "neg2.npz", y_train=y)
    with pytest.raises(DataError, match=r"label -2 at index 7 .* only unlabeled_label=-1 marks an unlabeled image"):
        ArrayDataModule(str(path), unlabeled_label=-1, **COMMON).setup()


def test_unlabeled_label_images_join_only_the_unlabeled_pool(tmp_path):
    y = _labels([0, 1, 2, 3])
    unlabeled = np.arange(20, 40)
    y[unlabeled] = -1
    path = fakes.write_npz(tmp_path / "partial.npz", y_train=y)
    dm = ArrayDataModule(str(path), num_labels=8, unlabeled_label=-1, **COMMON)
    dm.setup()
    assert not set(dm.labeled_indices) & set(unlabeled)
    assert set(unlabeled) <= set(dm.unlabeled_indices)
    everything = ArrayDataModule(str(path), unlabeled_label=-1, **COMMON)
    everything.setup()  # num_labels None labels every image whose label is known
    assert everything.labeled_indices.tolist() == list(range(20))
    y_test = _labels([0, 1, 2, 3], 20)
    y_test[3] = -1
    path = fakes.write_npz(tmp_path / "test_unlabeled.npz", y_train=y, y_test=y_test)
    with pytest.raises(DataError, match=r"y_test holds the unlabeled_label -1 \(label -1 at index 3\); the test split must be labeled"):
        ArrayDataModule(str(path), unlabeled_label=-1, **COMMON).peek_info()


def test_check_targets_refuses_unknown_labels_unless_the_pool_has_them():
    with pytest.raises(DataError, match=r"label -1 at index 1 is outside \[0, 3\)"):
        check_targets(np.array([0, -1, 2]), 3, "training labels")
    assert check_targets(np.array([0, -1, 2]), 3, "training labels", allow_unknown=True).tolist() == [0, -1, 2]


# ---- a class without (enough) training images ----------------------------------

def test_a_class_without_training_images_is_named(tmp_path):
    y = _labels([0, 1, 3])  # class 2 (named "class2") has no image
    path = fakes.write_npz(tmp_path / "missing.npz", y_train=y)
    with pytest.raises(DataError, match=r"class 2 \(class2\) has no training images available \(num_labels asks for 2 per class\); give every class training images") as err:
        ArrayDataModule(str(path), num_labels=8, **COMMON).setup()
    assert "at most 0" not in _one_line(err.value)


def test_too_few_images_in_a_class_says_how_many(tmp_path):
    y = _labels([0, 1, 2, 3])
    y[[2, 6, 10, 14, 18, 22, 26]] = 3  # class 2 keeps 3 images
    path = fakes.write_npz(tmp_path / "few.npz", y_train=y)
    with pytest.raises(ConfigError, match=r"class 2 \(class2\) has only 3 images available but 4 per class were asked for by num_labels \(1 of the 4 classes have fewer\); lower num_labels to at most 12"):
        ArrayDataModule(str(path), num_labels=16, **COMMON).setup()
    with pytest.raises(ConfigError, match=r"were asked for by num_val"):
        ArrayDataModule(str(path), num_labels=8, num_val=8, **COMMON).setup()


# ---- downloads without internet -----------------------------------------------

def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(
    "module, make, url",
    [
        ("torchvision.datasets.cifar.download_and_extract_archive", lambda root: CIFAR10DataModule(str(root), download=True, **COMMON), "cifar-10-python.tar.gz"),
        ("torchvision.datasets.svhn.download_url", lambda root: SVHNDataModule(str(root), download=True, **COMMON), "train_32x32.mat"),
        ("torchvision.datasets.stl10.download_and_extract_archive", lambda root: STL10DataModule(str(root), download=True, **COMMON), "stl10_binary.tar.gz"),
        ("datamodules.folder.download_url", lambda root: ImageNetDataModule(str(root), label_subset="1percent", download=True, **COMMON), "1percent.txt"),
    ],
    ids=["cifar10", "svhn", "stl10", "imagenet-subset"],
)
def test_download_offline_names_dataset_url_and_folder(tmp_path, monkeypatch, module, make, url):
    monkeypatch.setattr(module, _offline)
    root = tmp_path / "data"
    with pytest.raises(DataError, match=rf"cannot download .* from \S*{url} into {root} \(\[Errno -3\] Temporary failure in name resolution\); download that file by hand into {root} .* set download: false") as err:
        make(root).prepare_data()
    _one_line(err.value)


# ---- image folders: corrupt and odd-sized files ---------------------------------

def _corrupt(paths):
    for path in paths:
        path.write_bytes(b"<html>404 not found</html>")


def test_verification_lists_every_bad_file_once(tmp_path, caplog):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    bad = sorted((root / "train" / "n01").iterdir())[:5]
    _corrupt(bad)
    truncated = root / "test" / "n02" / "n02_test0.JPEG"
    truncated.write_bytes(truncated.read_bytes()[:300])
    with caplog.at_level(logging.INFO), pytest.raises(DataError) as err:
        ImageFolderDataModule(str(root), image_size=32, **COMMON).setup()
    message = _one_line(err.value)
    assert message.startswith(f"6 of the 24 images of {root} cannot be used: {bad[0]} cannot be decoded (cannot identify image file)")
    assert message.endswith("; and 3 more; replace or delete them")
    assert "verified the 24 images" in caplog.text and "verify_images: false skips this" in caplog.text
    # Forced off, setup passes (the file is named when read); automatic above the limit too.
    ImageFolderDataModule(str(root), image_size=32, verify_images=False, **COMMON).setup()


def test_automatic_verification_depends_on_the_folder_size(tmp_path, monkeypatch):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    _corrupt([root / "train" / "n03" / "n03_train2.JPEG"])
    monkeypatch.setattr(verify, "AUTO_VERIFY_LIMIT", 23)
    ImageFolderDataModule(str(root), image_size=32, **COMMON).setup()  # 24 images: not verified
    with pytest.raises(DataError, match="n03_train2.JPEG cannot be decoded"):
        ImageFolderDataModule(str(root), image_size=32, verify_images=True, **COMMON).setup()
    monkeypatch.setattr(verify, "AUTO_VERIFY_LIMIT", 24)
    with pytest.raises(DataError, match="1 of the 24 images"):
        ImageFolderDataModule(str(root), image_size=32, **COMMON).setup()


def test_fixed_size_folder_with_an_odd_image(tmp_path):
    root = fakes.write_fixed_size_folder(tmp_path / "data", size=16)
    odd = fakes.write_image_files(root / "train" / "b", 1, size=(20, 16), prefix="odd")[0]
    with pytest.raises(DataError, match=rf"1 of the 13 images of {root} cannot be used: {odd} is 20x16 pixels, not 16x16; .*set fixed_size: false") as err:
        ImageFolderDataModule(str(root), image_size=16, fixed_size=True, **COMMON).setup()
    _one_line(err.value)
    # Unverified, the item that would break the batch stack names the file instead.
    dm = ImageFolderDataModule(str(root), image_size=16, fixed_size=True, verify_images=False, **COMMON)
    dm.setup()
    with pytest.raises(DataError, match=rf"{odd} is 20x16 pixels, not 16x16 \(fixed_size: true expects image_size x image_size pixels\)"):
        dm.pool.train.image(dm.pool.train.paths.index(str(odd)))
    ImageFolderDataModule(str(root), image_size=16, verify_images=True, **COMMON).setup()  # resized: any size is fine


# ---- views and other options: refused at construction -------------------------------

@pytest.mark.parametrize(
    "views, message",
    [
        (dict(unlabeled_views=["weak", "stong"]), r"unlabeled_views: unknown view 'stong'; available views: .*strong.*weak"),
        (dict(labeled_views=[{"name": "weka"}]), r"labeled_views: unknown view 'weka'; available views: .*eval"),
        (dict(labeled_views="weka"), r"labeled_views: unknown view 'weka'"),
        (dict(unlabeled_views=[{"name": "multicrop", "num_locals": 3}]), r"unlabeled_views: bad options for view 'multicrop': .*num_locals"),
        (dict(labeled_views=[{"size": 3}]), r"labeled_views: a view spec is a name or a mapping with a 'name' key"),
    ],
)
def test_unknown_views_fail_at_construction(tmp_path, views, message):
    with pytest.raises(ConfigError, match=message) as err:
        ArrayDataModule(str(tmp_path / "not-read.npz"), **views, **COMMON)
    _one_line(err.value)


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="batch_size and eval_batch_size must be positive"):
        ArrayDataModule("x.npz", batch_size=0)
    with pytest.raises(ConfigError, match="num_workers must be >= 0"):
        ArrayDataModule("x.npz", num_workers=-1)
    with pytest.raises(ConfigError, match="STL-10 has folds 0..9, got fold=10"):
        STL10DataModule(str(tmp_path), fold=10)
    with pytest.raises(ConfigError, match=r"predict_split 'tset' is neither one of test, val, labeled, unlabeled, train nor an existing folder"):
        ArrayDataModule("x.npz", predict_split="tset")
    path = fakes.write_npz(tmp_path / "toy.npz")
    with pytest.raises(ConfigError, match="num_labels=6 must be a positive multiple of the number of classes"):
        ArrayDataModule(str(path), num_labels=6, **COMMON).setup()


def test_missing_files_are_data_file_not_found(tmp_path):
    for make in (
        lambda: CIFAR10DataModule(str(tmp_path), **COMMON),
        lambda: SVHNDataModule(str(tmp_path), **COMMON),
        lambda: ImageFolderDataModule(str(tmp_path), **COMMON),
        lambda: ImageNetDataModule(str(tmp_path), **COMMON),
    ):
        with pytest.raises(DataFileNotFound) as err:
            make().setup()
        _one_line(err.value)


def test_a_split_file_of_other_data_is_a_data_error(tmp_path):
    root = fakes.write_cifar10(tmp_path / "c10")
    split = tmp_path / "split.json"
    CIFAR10DataModule(str(root), num_labels=20, split_file=str(split), **COMMON).setup()
    other = fakes.write_svhn(tmp_path / "svhn")
    with pytest.raises(DataError, match="made for dataset 'cifar10', not 'svhn'"):
        SVHNDataModule(str(other), num_labels=20, split_file=str(split), **COMMON).setup()


def test_resuming_on_other_data_is_resume_refused(tmp_path, fake_trainer):
    from types import SimpleNamespace

    first = ArrayDataModule(str(fakes.write_npz(tmp_path / "a.npz", seed=0)), num_labels=8, **COMMON)
    first.setup()
    saved = first.state_dict()
    other = ArrayDataModule(str(fakes.write_npz(tmp_path / "b.npz", seed=1)), num_labels=8, **COMMON)
    other.trainer = SimpleNamespace(state=SimpleNamespace(fn="fit"), ckpt_path="run.ckpt", global_rank=0, world_size=1, lightning_module=None)
    other.setup()
    with pytest.raises(ResumeRefused, match="run.ckpt was trained on other data"):
        other.load_state_dict(saved)


def test_peek_refuses_a_folder_whose_classes_disagree(tmp_path):
    root = fakes.write_image_folder(tmp_path / "data", splits=("train", "test"))
    (root / "test" / "n09").mkdir()
    with pytest.raises(DataError, match=r"test has classes \['n09'\] that the training folder does not"):
        ImageFolderDataModule(str(root), **COMMON).peek_info()
    with pytest.raises(DataError, match=r"1 of the 2 chosen classes are not class folders .*first: 'n07'"):
        ImageFolderDataModule(str(root), classes=["n01", "n07"], **COMMON).peek_info()
