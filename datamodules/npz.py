"""Reading an `.npz` file in parts: the shapes and dtypes of its arrays from their `.npy`
headers (no pixel is read), then single arrays, with one clear error for any unreadable file."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from sslzoo.errors import DataError, DataFileNotFound


def _header(stream) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(stream)
    return tuple(int(n) for n in shape), np.dtype(dtype)


def npz_headers(path: Path, how_to_write: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of the arrays stored in `path`."""
    if not path.is_file():
        raise DataFileNotFound(f"array file {path} not found; give the path of an .npz {how_to_write}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an .npz archive (a zip of .npy arrays) or is cut short; write it with np.savez({path.name!r}, {how_to_write})")
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as stream:
                        headers[member[: -len(".npy")]] = _header(stream)
            return headers
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError) as err:
        raise DataError(f"cannot read {path} ({err}); the file is damaged or not written by np.savez: write it again") from err


def load_npz_array(path: Path, name: str) -> np.ndarray:
    """One array of the file, without pickles (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[name]
    except ValueError as err:
        if "pickle" not in str(err):
            raise DataError(f"cannot read {name} from {path} ({err}); write the file again with np.savez") from err
        raise DataError(
            f"{path}: {name} is an array of Python objects, which sslzoo does not unpickle; store it as numbers "
            "(or, for classes, as strings: np.array(names, dtype=str))"
        ) from err
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
        raise DataError(f"cannot read {name} from {path} ({err}); the file is damaged: write it again") from err
