"""Data for SCAN: its strong view, anchor/neighbour pairs, the datamodule streams and the dataset subsets."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fakes
from datamodules import CIFAR10DataModule, CIFAR100DataModule, ImageFolderDataModule, ImageNetDataModule, STL10DataModule
from datamodules import info as infos
from datamodules.dataset import SSLDataset
from datamodules.neighbour_pairs import NeighbourPairs
from datamodules.sources import ArraySource
from datamodules.views import build_view
from datamodules.views.geometry import RandomHorizontalFlip
from datamodules.views.scan import SCAN_OP_NAMES, SCAN_OPS, ScanAugment, ScanCutout, scan_op_value

COMMON = dict(batch_size=4, unlabeled_ratio=2, eval_batch_size=8, num_workers=0, shuffle_seed=0)
SCAN_VIEWS = {"labeled": [], "unlabeled": ["scan_strong"]}


def _image(size=32, seed=0):
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _seeded(view, img, seed):
    torch.manual_seed(seed)
    return view(img)


# ---- the scan_strong view ----------------------------------------------------


def test_scan_strong_is_flip_four_scan_ops_always_then_normalise_and_random_cutout():
    ops = list(build_view("scan_strong", infos.CIFAR10).augmentations)
    assert isinstance(ops[0], RandomHorizontalFlip) and len(ops) == 2
    assert isinstance(ops[1], ScanAugment) and (ops[1].num_ops, ops[1].fill) == (4, 0)
    for info, options, side in ((infos.CIFAR10, {}, 16), (infos.STL10, {"cutout_max": 32}, 32), (infos.IMAGENET, {"cutout_max": 75}, 75)):
        cutout = build_view({"name": "scan_strong", **options}, info).normalize[-1]
        assert isinstance(cutout, ScanCutout) and cutout.max_length == side
    # ImageNet: SCAN's dataset resizes the short side to 256, then flip and RandomCrop(224).
    imagenet = [type(op).__name__ for op in build_view("scan_strong", infos.IMAGENET).augmentations]
    assert imagenet == ["Resize", "RandomHorizontalFlip", "RandomCrop", "ScanAugment"]
    resized = [type(op).__name__ for op in build_view({"name": "scan_strong", "crop_scale": [0.08, 1.0]}, infos.IMAGENET).augmentations]
    assert resized[0] == "RandomResizedCrop"
    with pytest.raises(ValueError, match="cutout_max must be >= 1"):
        build_view({"name": "scan_strong", "cutout_max": 0}, infos.CIFAR10)


def test_scan_op_values_span_the_official_ranges_at_max_magnitude():
    """data/augment.py augment_list: value = u * (high - low) + low, then random_mirror flips the
    sign of Rotate/Shear/Translate; shear and translate stop at 0.1 (FixMatch's reach 0.3 * 9/10)."""
    top = 1.0 - 2 ** -52  # the largest u random.random() returns
    expected = {"Rotate": 30.0, "Solarize": 256.0, "Color": 0.95, "Contrast": 0.95, "Brightness": 0.95, "Sharpness": 0.95,
                "ShearX": 0.1, "ShearY": 0.1, "TranslateX": 0.1, "TranslateY": 0.1}
    for name, value in expected.items():
        assert scan_op_value(name, top, 0.0) == pytest.approx(value)
    assert scan_op_value("Rotate", top, 0.9) == pytest.approx(-30.0)  # mirrored
    assert scan_op_value("Rotate", 0.0, 0.0) == -30.0 and scan_op_value("Rotate", 0.0, 0.9) == 30.0
    assert scan_op_value("Color", 0.0, 0.9) == 0.05  # colour ops are never mirrored
    assert int(scan_op_value("Posterize", top, 0.0)) == 7 and int(scan_op_value("Posterize", 0.0, 0.0)) == 4
    assert len(SCAN_OP_NAMES) == 14 and "Invert" not in SCAN_OP_NAMES
    # Sampled values never leave the ranges.
    values = {}
    augment = ScanAugment(num_ops=4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3000):
        for name, value in augment.sample(generator):
            values.setdefault(name, []).append(value)
    assert max(abs(v) for v in values["ShearX"]) <= 0.1 and max(abs(v) for v in values["TranslateY"]) <= 0.1
    assert max(abs(v) for v in values["Rotate"]) <= 30.0 and 0.05 <= min(values["Sharpness"]) <= max(values["Sharpness"]) <= 0.95


def test_scan_ops_at_max_magnitude_match_pil():
    """Each op at the edge of its range gives PIL's image (nearest sampling, black fill)."""
    from PIL import Image, ImageEnhance, ImageOps

    img = _image(32, seed=5)
    pil = Image.fromarray(img.permute(1, 2, 0).numpy())
    references = {
        ("TranslateX", 0.1): pil.transform(pil.size, Image.AFFINE, (1, 0, 0.1 * 32, 0, 1, 0)),
        ("TranslateY", -0.1): pil.transform(pil.size, Image.AFFINE, (1, 0, 0, 0, 1, -0.1 * 32)),
        ("ShearX", 0.1): pil.transform(pil.size, Image.AFFINE, (1, 0.1, 0, 0, 1, 0)),
        ("ShearY", -0.1): pil.transform(pil.size, Image.AFFINE, (1, 0, 0, -0.1, 1, 0)),
        ("Rotate", 29.7): pil.rotate(29.7),
        ("Solarize", 200.5): ImageOps.solarize(pil, 200.5),
        ("Posterize", 7.99): ImageOps.posterize(pil, 7),
        ("Color", 0.95): ImageEnhance.Color(pil).enhance(0.95),
        ("Sharpness", 0.05): ImageEnhance.Sharpness(pil).enhance(0.05),
    }
    for (name, value), reference in references.items():
        ours = SCAN_OPS[name][0](img, value, 0)
        assert torch.equal(ours, torch.from_numpy(np.array(reference)).permute(2, 0, 1)), name


@pytest.mark.parametrize("info, size", [(infos.CIFAR10, 32), (infos.STL10, 96), (infos.IMAGENET, 250)])
def test_scan_strong_shape_dtype_and_seed_determinism(info, size):
    view, img = build_view("scan_strong", info), _image(size)
    out = _seeded(view, img, 3)
    assert out.shape == (3, info.image_size, info.image_size) and out.dtype == torch.float32
    assert torch.equal(out, _seeded(view, img, 3))
    assert not torch.equal(out, _seeded(view, img, 4))


def test_scan_strong_cutout_is_a_square_of_mean_colour_after_normalisation():
    view, img = build_view("scan_strong", infos.CIFAR10), _image()
    for seed in range(20):
        out = _seeded(view, img, seed)
        torch.manual_seed(seed)  # the same draws without the cutout
        pre = img
        for op in view.augmentations:
            pre = op(pre)
        reference = view.normalize[0](pre)
        hole = (out != reference).any(0) | ((out == 0).all(0) & (reference != 0).any(0))
        if not hole.any():
            continue  # L = 1: SCAN's square [c - 0, c + 0) is empty
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert 1 <= max(height, width) <= 16 and int(hole.sum()) == height * width  # one filled (clipped) square
        assert (out[:, hole] == 0).all() and torch.equal(out[:, ~hole], reference[:, ~hole])


def test_scan_cutout_side_is_length_rounded_down_to_even():
    """data/augment.py Cutout: length ~ randint(1, 16), mask[y - length//2 : y + length//2]: sides
    0, 2, ..., 16 with probabilities 1/16, 2/16, ..., 2/16, 1/16 (squares off the border)."""
    cutout, img = ScanCutout(16), torch.ones(1, 128, 128)
    torch.manual_seed(0)
    sides = []
    while len(sides) < 3200:
        hole = (cutout(img)[0] == 0).nonzero()
        if len(hole) and (hole.min() == 0 or hole.max() == 127):
            continue  # clipped by the border
        side = 0 if not len(hole) else int(hole[:, 0].max() - hole[:, 0].min() + 1)
        assert len(hole) == side * side
        sides.append(side)
    counts = np.bincount(sides, minlength=17)
    assert counts[1::2].sum() == 0  # never odd
    assert 140 < counts[0] < 270 and 140 < counts[16] < 270  # ~200 each (L = 1; L = 16)
    assert all(330 < counts[s] < 480 for s in range(2, 16, 2))  # ~400 each (L = s, s + 1)


# ---- NeighbourPairs ----------------------------------------------------------


def _pairs_source(n=10):
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 4, axis=1).repeat(4, 2).repeat(3, 3)
    return ArraySource(images, np.arange(n) % 3)


def _noisy(img):
    """Identifies the image (its constant value) and the augmentation draw (the fraction)."""
    return img[0, 0, 0].float() + torch.rand(())


def _pairs(indices=(1, 3, 5, 7), anchors=None, neighbours=None, n=10):
    source = _pairs_source(n)
    anchors = np.arange(n) if anchors is None else anchors
    neighbours = np.stack([anchors, (anchors + 1) % n, (anchors + 2) % n], 1) if neighbours is None else neighbours
    dataset = SSLDataset(source, indices, _noisy, "y_hidden")
    return NeighbourPairs(dataset, anchors, neighbours), dataset


def test_neighbour_pairs_item_content():
    pairs, plain = _pairs()
    assert len(pairs) == 4
    item = pairs[(2, 12345)]
    assert set(item) == {"x", "neighbour_x", "idx", "neighbour_idx", "y_hidden", "neighbour_y_hidden"}
    assert item["idx"] == 5 and item["neighbour_idx"] in (5, 6, 7)
    assert int(item["x"]) == 5 and int(item["neighbour_x"]) == item["neighbour_idx"]
    assert item["y_hidden"] == 5 % 3 and item["neighbour_y_hidden"] == item["neighbour_idx"] % 3
    # The anchor is augmented as a plain item with the same key would be.
    assert torch.equal(item["x"], plain[(2, 12345)]["x"])


def test_neighbour_pairs_are_a_function_of_the_key_and_draw_uniformly():
    pairs, _ = _pairs()
    first = pairs[(1, 777)]
    torch.manual_seed(99)  # the global RNG does not matter
    again = pairs[(1, 777)]
    assert all(torch.equal(torch.as_tensor(first[k]), torch.as_tensor(again[k])) for k in first)
    columns = [pairs[(0, seed)]["neighbour_idx"] - 1 for seed in range(3000)]
    counts = np.bincount(columns, minlength=3)
    assert counts.min() > 850 and counts.max() < 1150
    # The anchor drawn as its own neighbour gets another augmentation.
    self_pairs = [pairs[(0, seed)] for seed in range(30)]
    self_pairs = [p for p in self_pairs if p["neighbour_idx"] == 1]
    assert self_pairs and all(not torch.equal(p["x"], p["neighbour_x"]) for p in self_pairs)
    # Plain positions draw from torch's RNG.
    torch.manual_seed(5)
    a = pairs[3]
    torch.manual_seed(5)
    b = pairs[3]
    assert a["neighbour_idx"] == b["neighbour_idx"] and torch.equal(a["neighbour_x"], b["neighbour_x"])
    assert {pairs[3]["neighbour_idx"] for _ in range(40)} == {7, 8, 9}


def test_neighbour_pairs_accept_tensors_and_unsorted_anchors():
    anchors = np.array([7, 1, 5, 3, 0])
    neighbours = np.stack([anchors, anchors], 1)
    pairs, _ = _pairs(anchors=torch.from_numpy(anchors), neighbours=torch.from_numpy(neighbours))
    assert [pairs[(i, 1)]["neighbour_idx"] for i in range(4)] == [1, 3, 5, 7]


def test_neighbour_pairs_reject_a_table_of_another_pool():
    with pytest.raises(ValueError, match=r"no row for 2 of the 4 training images \(first: pool index 5\).*re-mine the neighbours"):
        _pairs(anchors=np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\).*re-mine"):
        _pairs(anchors=np.arange(10), neighbours=np.stack([np.arange(10), np.arange(10) + 5], 1))
    with pytest.raises(ValueError, match="10 anchors but neighbours of shape"):
        _pairs(anchors=np.arange(10), neighbours=np.zeros((9, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="must be a 2-D integer array"):
        _pairs(anchors=np.arange(10), neighbours=np.zeros(10, dtype=np.int64))


# ---- the datamodule streams -------------------------------------------------------


def _table(anchors, k=3, n=100):
    anchors = torch.as_tensor(anchors)
    neighbours = torch.stack([anchors] + [(anchors + j) % n for j in range(1, k + 1)], 1)
    return SimpleNamespace(anchors=anchors, neighbours=neighbours)


def _scan_dm(root, fake_trainer, table, views=SCAN_VIEWS, **options):
    dm = CIFAR10DataModule(str(root), **{**dict(num_labels=20, **COMMON), **options})
    dm.trainer = fake_trainer(lightning_module=SimpleNamespace(views=views, neighbour_table=table))
    dm.setup()
    return dm


def test_scan_method_gets_only_neighbour_pairs(tmp_path, fake_trainer):
    root = fakes.write_cifar10(tmp_path)
    dm = _scan_dm(root, fake_trainer, _table(torch.arange(100)))
    loader = dm.train_dataloader()
    batches = [b[0] for b in loader]
    assert len(batches) == dm.steps_in_epoch() == 12  # 100 unlabeled // 8
    batch = batches[0]
    assert set(batch) == {"unlabeled"}
    unl = batch["unlabeled"]
    assert set(unl) == {"x", "neighbour_x", "idx", "neighbour_idx", "y_hidden", "neighbour_y_hidden"}
    assert unl["x"].shape == unl["neighbour_x"].shape == (8, 3, 32, 32)
    assert ((unl["neighbour_idx"] - unl["idx"]) % 100 <= 3).all()
    targets = torch.from_numpy(dm.pool.train.targets)
    assert torch.equal(unl["neighbour_y_hidden"], targets[unl["neighbour_idx"]])
    again = _scan_dm(root, fake_trainer, _table(torch.arange(100)))
    other = next(iter(again.train_dataloader()))[0]["unlabeled"]
    assert all(torch.equal(unl[k], other[k]) for k in unl)


def test_empty_table_gives_plain_items_and_a_foreign_table_is_refused(tmp_path, fake_trainer):
    root = fakes.write_cifar10(tmp_path)
    empty = _table(torch.zeros(0, dtype=torch.long))
    batch = next(iter(_scan_dm(root, fake_trainer, empty).train_dataloader()))[0]
    assert set(batch) == {"unlabeled"} and set(batch["unlabeled"]) == {"x", "y_hidden", "idx"}
    with pytest.raises(ValueError, match="re-mine the neighbours"):
        _scan_dm(root, fake_trainer, _table(torch.arange(50))).train_dataloader()
    with pytest.raises(ValueError, match="neighbour table but there is no unlabeled stream"):
        _scan_dm(root, fake_trainer, _table(torch.arange(100)), views={"labeled": ["weak"], "unlabeled": []}).train_dataloader()


def test_empty_labeled_views_drop_the_labeled_stream(tmp_path):
    root = fakes.write_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(root), num_labels=20, labeled_views=[], unlabeled_views=["eval"], **COMMON)
    dm.setup()
    batches = [b[0] for b in dm.train_dataloader()]
    assert len(batches) == 12 and all(set(b) == {"unlabeled"} for b in batches)
    both = CIFAR10DataModule(str(root), num_labels=20, labeled_views=[], unlabeled_views=[], **COMMON)
    both.setup()
    with pytest.raises(ValueError, match="nothing to train on"):
        both.train_dataloader()


def test_labeled_dataloader_is_the_labeled_set_in_order_and_sharded(tmp_path, fake_trainer):
    root = fakes.write_cifar10(tmp_path)
    shards = []
    for rank in range(2):
        dm = CIFAR10DataModule(str(root), num_labels=20, **COMMON)
        dm.trainer = fake_trainer(rank=rank, world_size=2)
        dm.setup()
        batches = list(dm.labeled_dataloader())
        assert set(batches[0]) == {"x", "y", "idx"} and batches[0]["x"].shape[1:] == (3, 32, 32)
        idx = torch.cat([b["idx"] for b in batches])
        assert torch.equal(torch.cat([b["y"] for b in batches]), torch.from_numpy(dm.pool.train.targets)[idx])
        shards.append(idx.tolist())
    assert shards[0] == dm.labeled_indices[0::2].tolist() and shards[1] == dm.labeled_indices[1::2].tolist()


# ---- dataset subsets ------------------------------------------------------------


def _class_of(path):
    return path.rsplit("/", 2)[-2]


def test_imagenet_class_subset_reindexes_in_the_given_order(tmp_path):
    root = fakes.write_image_folder(tmp_path / "imagenet", classes=("n01", "n02", "n03", "n04"), per_class=(3, 1), size=24)
    dm = ImageNetDataModule(str(root), classes=["n03", "n01"], image_size=16, **COMMON)
    dm.setup()
    assert dm.num_classes == 2 and dm.info.classes == ("n03", "n01")
    for source, n in ((dm.pool.train, 6), (dm.pool.test, 2)):
        assert len(source) == n
        assert [("n03", "n01")[t] for t in source.targets] == [_class_of(p) for p in source.paths]
    assert next(iter(dm.test_dataloader()))["x"].shape == (2, 3, 16, 16)
    # SCAN's subset files: "<wnid> <description>" per line, found as given or under root.
    (root / "imagenet_2.txt").write_text("n04 a description\n\nn02 another one\n")
    for classes in ("imagenet_2.txt", str(root / "imagenet_2.txt")):
        listed = ImageFolderDataModule(str(root), test_dir="val", classes=classes, image_size=16, **COMMON)
        listed.setup()
        assert listed.info.classes == ("n04", "n02") and listed.num_classes == 2
        assert sorted(map(_class_of, listed.pool.train.paths)) == ["n02"] * 3 + ["n04"] * 3


def test_imagenet_class_subset_with_a_label_list_and_bad_names(tmp_path):
    root = fakes.write_image_folder(tmp_path / "imagenet", classes=("n01", "n02", "n03"), per_class=(3, 1), size=24)
    subset = tmp_path / "subset.txt"
    subset.write_text("n01_train0.JPEG\nn02_train1.JPEG\nn03_train2.JPEG\n")
    dm = ImageNetDataModule(str(root), classes=["n03", "n01"], label_subset=str(subset), image_size=16, **COMMON)
    dm.setup()
    assert sorted(dm.pool.train.paths[i].rsplit("/", 1)[-1] for i in dm.labeled_indices) == ["n01_train0.JPEG", "n03_train2.JPEG"]
    with pytest.raises(ValueError, match=r"1 of the 2 chosen classes are not class folders of .*train \(first: 'n09'"):
        ImageNetDataModule(str(root), classes=["n01", "n09"], image_size=16, **COMMON).setup()
    with pytest.raises(ValueError, match=r"classes \['n01'\] are listed more than once"):
        ImageNetDataModule(str(root), classes=["n01", "n02", "n01"], image_size=16, **COMMON).setup()
    with pytest.raises(FileNotFoundError, match="classes file nowhere.txt not found"):
        ImageNetDataModule(str(root), classes="nowhere.txt", image_size=16, **COMMON).setup()
    (root / "val" / "n03").rename(root / "val_n03_moved")
    with pytest.raises(ValueError, match=r"not class folders of .*val \(first: 'n03'"):
        ImageNetDataModule(str(root), classes=["n03"], image_size=16, **COMMON).setup()


def test_stl10_without_the_unlabeled_split(tmp_path):
    root = fakes.write_stl10(tmp_path)
    dm = STL10DataModule(str(root), use_unlabeled_split=False, **COMMON)
    dm.setup()
    assert len(dm.pool.train) == 50 and (dm.pool.train.targets >= 0).all()
    assert len(dm.unlabeled_indices) == 50 and len(dm.labeled_indices) == 50
    full = STL10DataModule(str(root), **COMMON)
    full.setup()
    assert len(full.pool.train) == 80 and len(full.unlabeled_indices) == 80


def test_cifar100_20_uses_superclasses_for_train_and_test(tmp_path):
    root = fakes.write_cifar100(tmp_path)
    fine = CIFAR100DataModule(str(root), **COMMON)
    coarse = CIFAR100DataModule(str(root), superclasses=True, **COMMON)
    fine.setup()
    coarse.setup()
    assert coarse.num_classes == 20 and len(coarse.info.classes) == 20
    np.testing.assert_array_equal(coarse.pool.test.targets, fine.pool.test.targets % 20)
