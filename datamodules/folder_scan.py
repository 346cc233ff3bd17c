"""Reading an image-folder tree: its class folders, a chosen class list and the image files."""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from sslzoo.errors import ConfigError, DataError, DataFileNotFound

from .sources import FileSource


def folder_classes(folder: Path, classes: list[str] | None = None, subset: bool = False) -> list[str]:
    """The class folders of `folder` (sorted), or `classes` checked against them: `classes`
    must name every class folder, or (`subset=True`) only some of them. Lists directories only."""
    if not folder.is_dir():
        raise DataFileNotFound(f"image folder {folder} does not exist; it must hold one sub-directory per class")
    try:
        found, _ = find_classes(str(folder))
    except FileNotFoundError as err:
        raise DataFileNotFound(
            f"{folder} holds no class sub-directories; images must be sorted into {folder}/<class>/ "
            "(for ImageNet's flat val folder, sort it into <wnid>/ folders first, e.g. with the usual valprep.sh)"
        ) from err
    if classes is None:
        return found
    if subset:
        present = set(found)
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise DataError(
                f"{len(unknown)} of the {len(classes)} chosen classes are not class folders of {folder} "
                f"(first: {unknown[0]!r}; it has {len(found)}, e.g. {found[0]!r}); fix the class names or the classes file"
            )
    elif sorted(found) != sorted(classes):
        raise DataError(f"{folder} has classes {sorted(set(found) ^ set(classes))} that the training folder does not (or vice versa)")
    return list(classes)


def scan_folder(folder: Path, classes: list[str], expected_size: tuple[int, int] | None = None) -> FileSource:
    """The images of `folder/<class>/...` for each of `classes` (checked by `folder_classes`),
    labelled by their position in `classes`."""
    samples = []
    for label, name in enumerate(classes):
        files = make_dataset(str(folder), {name: label}, IMG_EXTENSIONS, allow_empty=True)
        if not files:
            raise DataError(
                f"class folder {folder / name} holds no images (extensions {', '.join(IMG_EXTENSIONS)}); "
                "add images or remove the empty folder"
            )
        samples.extend(files)
    paths, targets = zip(*samples)
    return FileSource(paths, targets, expected_size=expected_size)


def read_class_list(classes: list[str] | str, root: Path) -> list[str]:
    """A list of class folder names, or the first word of each line of a text file (SCAN's
    ImageNet subset files read "<wnid> <description>"), looked up as given then under `root`."""
    if isinstance(classes, str):
        path = Path(classes).expanduser()
        if not path.is_file() and (root / classes).is_file():
            path = root / classes
        if not path.is_file():
            raise DataFileNotFound(
                f"classes file {classes} not found (also looked in {root}); give a text file with one class folder "
                "name (e.g. an ImageNet wnid) per line, or the list of names"
            )
        lines = (line.split() for line in path.read_text().splitlines())
        classes = [words[0] for words in lines if words and not words[0].startswith("#")]
    classes = [str(c) for c in classes]
    if not classes:
        raise ConfigError("the class list is empty; name at least one class folder (or set classes to null for all)")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ConfigError(f"classes {repeated} are listed more than once; list each class once")
    return classes
