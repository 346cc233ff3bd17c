"""Static facts about a dataset that views and methods need."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    # Small fixed-size datasets (CIFAR, SVHN, STL) augment by translation;
    # large variable-size ones (ImageNet, folders) by random resized crops.
    fixed_size: bool = True
    hflip: bool = True
    classes: tuple[str, ...] = ()
    channels: int = 3  # of the images the views return (1 for grayscale arrays)


CIFAR10 = DatasetInfo("cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), 32)
CIFAR100 = DatasetInfo("cifar100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 32)
CIFAR100_20 = DatasetInfo("cifar100_20", 20, CIFAR100.mean, CIFAR100.std, 32)
# FixMatch does not flip digits.
SVHN = DatasetInfo("svhn", 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 32, hflip=False)
STL10 = DatasetInfo("stl10", 10, (0.4409, 0.4279, 0.3868), (0.2683, 0.2610, 0.2687), 96)
IMAGENET = DatasetInfo("imagenet", 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224, fixed_size=False)


# What `peek_info()` must already know exactly; mean/std may be placeholders there and
# a class list may be unknown until the files are read.
PEEKED_FIELDS = tuple(f.name for f in fields(DatasetInfo) if f.name not in ("mean", "std", "classes"))


def info_disagreement(peeked: DatasetInfo, loaded: DatasetInfo) -> str | None:
    """How the full load contradicts the facts peeked before it (None when it does not)."""
    changed = [f"{name} {getattr(peeked, name)!r} -> {getattr(loaded, name)!r}" for name in PEEKED_FIELDS if getattr(peeked, name) != getattr(loaded, name)]
    if peeked.classes and loaded.classes and peeked.classes != loaded.classes:
        changed.append("the class names")
    return ", ".join(changed) or None
