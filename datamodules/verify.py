"""Opening every image file of a folder dataset before training, so a corrupt file or (for a
fixed-size dataset) an odd-sized one is reported at setup, all at once, rather than when a
DataLoader worker first reads it, possibly hours in."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Sequence

from lightning.pytorch.utilities import rank_zero_info
from PIL import Image

from sslzoo.errors import DataError

from .sources import size_mismatch

# Folders up to this many images are verified unless verify_images says otherwise: a few
# seconds, against a run of hours.
AUTO_VERIFY_LIMIT = 20_000
BAD_FILES_SHOWN = 3


class Problem(NamedTuple):
    text: str
    wrong_size: bool = False


def image_problem(path: str, expected_size: tuple[int, int] | None = None) -> Problem | None:
    """What is wrong with one image file, or None. JPEGs are decoded at 1/8 scale (which finds
    truncated files at a fraction of a full decode); other formats get Pillow's `verify()`."""
    try:
        with Image.open(path) as img:
            size = img.size
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                img.load()
            else:
                img.verify()
    except Exception as err:  # Pillow raises OSError / SyntaxError / ValueError / struct.error
        reason = " ".join(str(err).replace(repr(str(path)), "").split()) or type(err).__name__
        return Problem(f"{path} cannot be decoded ({reason})")
    if expected_size is not None and size != expected_size:
        return Problem(size_mismatch(path, size, expected_size), wrong_size=True)
    return None


def should_verify(verify_images: bool | None, num_images: int) -> bool:
    return num_images <= AUTO_VERIFY_LIMIT if verify_images is None else verify_images


def verify_image_files(paths: Sequence[str], where: str, expected_size: tuple[int, int] | None = None) -> None:
    """Open every file; one DataError naming the first bad files and their count."""
    start = time.perf_counter()
    threads = min(8, len(os.sched_getaffinity(0)))  # Pillow decodes without the GIL
    with ThreadPoolExecutor(max_workers=threads) as pool:
        problems = [p for p in pool.map(lambda path: image_problem(path, expected_size), paths, chunksize=64) if p]
    rank_zero_info(
        f"sslzoo: verified the {len(paths)} images of {where} in {time.perf_counter() - start:.1f} s "
        "(verify_images: false skips this)"
    )
    if not problems:
        return
    shown = "; ".join(p.text for p in problems[:BAD_FILES_SHOWN])
    if len(problems) > BAD_FILES_SHOWN:
        shown += f"; and {len(problems) - BAD_FILES_SHOWN} more"
    fix = "replace or delete them"
    if any(p.wrong_size for p in problems):
        fix += " (fixed_size: true expects image_size x image_size pixels), or set fixed_size: false to resize every image"
    raise DataError(f"{len(problems)} of the {len(paths)} images of {where} cannot be used: {shown}; {fix}")
