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


def scan_folder(folder: Path, classes: list[str] | None = None, subset: bool = False) -> tuple[FileSource, list[str]]:
    """List `folder/<class>/*` images. With `classes`, the class ids follow that list, which must
    name every class folder, or (`subset=True`) only some of them: the others are skipped."""
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
    if subset:
        present = set(found)
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise ValueError(
                f"{len(unknown)} of the {len(classes)} chosen classes are not class folders of {folder} "
                f"(first: {unknown[0]!r}; it has {len(found)}, e.g. {found[0]!r}); fix the class names or the classes file"
            )
    elif sorted(found) != sorted(classes):
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


def read_class_list(classes: list[str] | str, root: Path) -> list[str]:
    """A list of class folder names, or the first word of each line of a text file (SCAN's
    ImageNet subset files read "<wnid> <description>"), looked up as given then under `root`."""
    if isinstance(classes, str):
        path = Path(classes).expanduser()
        if not path.is_file() and (root / classes).is_file():
            path = root / classes
        if not path.is_file():
            raise FileNotFoundError(
                f"classes file {classes} not found (also looked in {root}); give a text file with one class folder "
                "name (e.g. an ImageNet wnid) per line, or the list of names"
            )
        lines = (line.split() for line in path.read_text().splitlines())
        classes = [words[0] for words in lines if words and not words[0].startswith("#")]
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("the class list is empty; name at least one class folder (or set classes to null for all)")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"classes {repeated} are listed more than once; list each class once")
    return classes


class ImageFolderDataModule(SSLDataModule):
    """A custom dataset as folders of images: `root/train/<class>/...` and `root/<test_dir>/<class>/...`.

    Images of any size are decoded to RGB uint8 tensors; `fixed_size=True` treats
    them as small equal-size images (translate augmentation, no resizing).
    mean/std default to ImageNet's. `classes` (a list of class folder names, or the
    path of a text file with one per line) keeps only those classes, in train and
    test, with labels 0..C-1 in the order given (SCAN's ImageNet-50/100/200).
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
        **kwargs,
    ):
        super().__init__(root=root, **kwargs)
        self.train_dir, self.test_dir = train_dir, test_dir
        self.classes = classes
        self.dataset_info = DatasetInfo(
            name or Path(root).name, 0, tuple(mean), tuple(std), image_size, fixed_size=fixed_size, hflip=hflip
        )

    def labeled_subset(self, train: FileSource) -> np.ndarray | None:
        return None

    def load_pool(self) -> Pool:
        chosen = read_class_list(self.classes, self.root) if self.classes is not None else None
        train, classes = scan_folder(self.root / self.train_dir, chosen, subset=chosen is not None)
        test, _ = scan_folder(self.root / self.test_dir, classes, subset=chosen is not None)
        info = replace(self.dataset_info, num_classes=len(classes), classes=tuple(classes))
        return Pool(info=info, train=train, test=test, fixed_labeled=self.labeled_subset(train))


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
        if self.classes is not None:
            kept = set(read_class_list(self.classes, self.root))
            wanted = [name for name in wanted if name in position or name.split("_", 1)[0] in kept]
        missing = [name for name in wanted if name not in position]
        if missing:
            raise ValueError(
                f"{len(missing)} of the {len(wanted)} images listed in {path} are not in {self.root / self.train_dir} "
                f"(first: {missing[0]}); is root the ImageNet folder with train/<wnid>/<file>?"
            )
        return np.asarray(sorted(position[name] for name in wanted), dtype=np.int64)
