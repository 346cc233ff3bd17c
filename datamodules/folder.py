"""Any image-folder tree (`root/<split>/<class>/<image>`), and ImageNet with its 1%/10% label lists."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torchvision.datasets.utils import download_url

from sslzoo.errors import DataError, DataFileNotFound

from . import info as infos
from .base import Pool, SSLDataModule
from .download import download_errors
from .folder_scan import folder_classes, read_class_list, scan_folder
from .info import DatasetInfo
from .sources import FileSource
from .verify import should_verify, verify_image_files


class ImageFolderDataModule(SSLDataModule):
    """A custom dataset as folders of images: `root/train/<class>/...` and `root/<test_dir>/<class>/...`.

    Images of any size are decoded to RGB uint8 tensors; `fixed_size=True` treats
    them as small equal-size images of image_size x image_size (translate augmentation,
    no resizing). mean/std default to ImageNet's. `classes` (a list of class folder names,
    or the path of a text file with one per line) keeps only those classes, in train and
    test, with labels 0..C-1 in the order given (SCAN's ImageNet-50/100/200).
    `verify_images`: open every image at setup and report the corrupt (or, fixed-size,
    odd-sized) ones at once; None does so for folders of at most 20,000 images.
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
        classes: list[str] | str | None = None,
        verify_images: bool | None = None,
        **kwargs,
    ):
        super().__init__(root=root, **kwargs)
        self.train_dir, self.test_dir = train_dir, test_dir
        self.classes = classes
        self.verify_images = verify_images
        # Pillow decodes every file to RGB (FileSource), whatever its own mode.
        self.dataset_info = DatasetInfo(
            name or Path(root).name, 0, tuple(mean), tuple(std), image_size, fixed_size=fixed_size, hflip=hflip, channels=3
        )

    def labeled_subset(self, train: FileSource) -> np.ndarray | None:
        return None

    def _class_names(self) -> list[str]:
        """The classes, in label order: the chosen ones, or every class folder of the training split."""
        chosen = read_class_list(self.classes, self.root) if self.classes is not None else None
        classes = folder_classes(self.root / self.train_dir, chosen, subset=chosen is not None)
        folder_classes(self.root / self.test_dir, classes, subset=chosen is not None)
        return classes

    def _info(self, classes: list[str]) -> DatasetInfo:
        return replace(self.dataset_info, num_classes=len(classes), classes=tuple(classes))

    def read_info(self) -> DatasetInfo:
        return self._info(self._class_names())

    def _expected_size(self) -> tuple[int, int] | None:
        size = self.dataset_info.image_size
        return (size, size) if self.dataset_info.fixed_size else None

    def load_pool(self) -> Pool:
        classes = self._class_names()
        train = scan_folder(self.root / self.train_dir, classes, self._expected_size())
        test = scan_folder(self.root / self.test_dir, classes, self._expected_size())
        if should_verify(self.verify_images, len(train) + len(test)):
            verify_image_files(train.paths + test.paths, str(self.root), self._expected_size())
        return Pool(info=self._info(classes), train=train, test=test, fixed_labeled=self.labeled_subset(train))


SIMCLR_SUBSET_URL = "https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/{}.txt"


class ImageNetDataModule(ImageFolderDataModule):
    """ImageNet-1k from `root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG`.

    `label_subset`: "1percent" or "10percent" (SimCLR's lists, read from
    `root/<name>.txt`, downloaded with download=True) or a path to a file with
    one training file name per line; None samples `num_labels` or labels all.
    With `classes` (e.g. SCAN's ImageNet-50 list), listed images of the other classes
    (by their "<wnid>_" file name prefix) are left out.
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
            url = SIMCLR_SUBSET_URL.format(self.label_subset)
            with download_errors(f"ImageNet's {self.label_subset} label list", url, self.root):
                download_url(url, str(self.root), path.name)

    def read_info(self) -> DatasetInfo:
        if (self.root / self.train_dir).is_dir():
            return super().read_info()
        # Not there (yet): ImageNet's own facts; setup() will say what is missing.
        classes = self._listed_classes()
        return replace(self.dataset_info, num_classes=len(classes) or infos.IMAGENET.num_classes, classes=tuple(classes))

    def _listed_classes(self) -> list[str]:
        try:
            return read_class_list(self.classes, self.root) if self.classes is not None else []
        except DataFileNotFound:
            return []

    def labeled_subset(self, train: FileSource) -> np.ndarray | None:
        path = self._subset_path()
        if path is None:
            return None
        if not path.is_file():
            raise DataFileNotFound(
                f"label subset file {path} not found; pass download=True to fetch SimCLR's {self.label_subset} list "
                "or give the path of a file with one training image name per line"
            )
        wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        position = {Path(p).name: i for i, p in enumerate(train.paths)}
        if self.classes is not None:
            kept = set(read_class_list(self.classes, self.root))
            wanted = [name for name in wanted if name in position or name.split("_", 1)[0] in kept]
        missing = [name for name in wanted if name not in position]
        if missing:
            raise DataError(
                f"{len(missing)} of the {len(wanted)} images listed in {path} are not in {self.root / self.train_dir} "
                f"(first: {missing[0]}); is root the ImageNet folder with train/<wnid>/<file>?"
            )
        return np.asarray(sorted(position[name] for name in wanted), dtype=np.int64)
