"""Any image-folder tree (`root/<split>/<class>/<image>`), and ImageNet with its 1%/10% label lists."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.datasets.utils import download_url

from . import info as infos
from .base import Pool, SSLDataModule
from .info import DatasetInfo
from .sources import FileSource


def scan_folder(folder: Path, classes: list[str] | None = None) -> tuple[FileSource, list[str]]:
    """List `folder/<class>/*` images. With `classes`, the class ids follow that list."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; it must hold one sub-directory per class")
    try:
        found, _ = find_classes(str(folder))
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{folder} holds no class sub-directories; images must be sorted into {folder}/<class>/ "
            "(for ImageNet's flat val folder, sort it into <wnid>/ folders first, e.g. with the usual valprep.sh)"
        ) from err
    classes = classes or found
    if sorted(found) != sorted(classes):
        raise ValueError(f"{folder} has classes {sorted(set(found) ^ set(classes))} that the training folder does not (or vice versa)")
    class_to_idx = {c: i for i, c in enumerate(classes)}
    samples = []
    for name in classes:
        files = make_dataset(str(folder), {name: class_to_idx[name]}, IMG_EXTENSIONS, allow_empty=True)
        if not files:
            raise ValueError(
                f"class folder {folder / name} holds no images (extensions {', '.join(IMG_EXTENSIONS)}); "
                "add images or remove the empty folder"
            )
        samples.extend(files)
    paths, targets = zip(*samples)
    return FileSource(paths, targets), classes


class ImageFolderDataModule(SSLDataModule):
    """A custom dataset as folders of images: `root/train/<class>/...` and `root/<test_dir>/<class>/...`.

    Images of any size are decoded to RGB uint8 tensors; `fixed_size=True` treats
    them as small equal-size images (translate augmentation, no resizing).
    mean/std default to ImageNet's.
    """

    def __init__(
        self,
        root: str = "data",
        train_dir: str = "train",
        test_dir: str = "test",
        image_size: int = 224,
        fixed_size: bool = False,
        mean: tuple[float, float, float] = infos.IMAGENET.mean,
        std: tuple[float, float, float] = infos.IMAGENET.std,
        hflip: bool = True,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(root=root, **kwargs)
        self.train_dir, self.test_dir = train_dir, test_dir
        self.dataset_info = DatasetInfo(
            name or Path(root).name, 0, tuple(mean), tuple(std), image_size, fixed_size=fixed_size, hflip=hflip
        )

    def labeled_subset(self, train: FileSource) -> np.ndarray | None:
        return None

    def load_pool(self) -> Pool:
        train, classes = scan_folder(self.root / self.train_dir)
        test, _ = scan_folder(self.root / self.test_dir, classes)
        info = replace(self.dataset_info, num_classes=len(classes), classes=tuple(classes))
        return Pool(info=info, train=train, test=test, fixed_labeled=self.labeled_subset(train))


SIMCLR_SUBSET_URL = "https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/{}.txt"


class ImageNetDataModule(ImageFolderDataModule):
    """ImageNet-1k from `root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG`.

    `label_subset`: "1percent" or "10percent" (SimCLR's lists, read from
    `root/<name>.txt`, downloaded with download=True) or a path to a file with
    one training file name per line; None samples `num_labels` or labels all.
    """

    def __init__(
        self,
        root: str = "data/imagenet",
        label_subset: str | None = None,
        train_dir: str = "train",
        test_dir: str = "val",
        image_size: int = 224,
        name: str = "imagenet",
        **kwargs,
    ):
        # Explicit defaults (not kwargs.setdefault): LightningCLI passes every parent argument.
        super().__init__(root=root, train_dir=train_dir, test_dir=test_dir, image_size=image_size, name=name, **kwargs)
        self.label_subset = label_subset

    def _subset_path(self) -> Path | None:
        if self.label_subset in ("1percent", "10percent"):
            return self.root / f"{self.label_subset}.txt"
        return Path(self.label_subset) if self.label_subset else None

    def download_data(self) -> None:
        path = self._subset_path()
        if self.label_subset in ("1percent", "10percent") and not path.is_file():
            download_url(SIMCLR_SUBSET_URL.format(self.label_subset), str(self.root), path.name)

    def labeled_subset(self, train: FileSource) -> np.ndarray | None:
        path = self._subset_path()
        if path is None:
            return None
        if not path.is_file():
            raise FileNotFoundError(
                f"label subset file {path} not found; pass download=True to fetch SimCLR's {self.label_subset} list "
                "or give the path of a file with one training image name per line"
            )
        wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        position = {Path(p).name: i for i, p in enumerate(train.paths)}
        missing = [name for name in wanted if name not in position]
        if missing:
            raise ValueError(
                f"{len(missing)} of the {len(wanted)} images listed in {path} are not in {self.root / self.train_dir} "
                f"(first: {missing[0]}); is root the ImageNet folder with train/<wnid>/<file>?"
            )
        return np.asarray(sorted(position[name] for name in wanted), dtype=np.int64)
