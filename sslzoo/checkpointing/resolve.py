"""Which checkpoint `--ckpt_path last` (or `auto`) resumes: the newest complete one of a run folder."""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import SSLZooError
from .last_checkpoint import LAST_NAME, PREVIOUS_NAME


class CheckpointNotFoundError(SSLZooError, FileNotFoundError):
    pass


def unreadable_reason(path: Path) -> str | None:
    """Why `path` is not a complete torch checkpoint (None when it is): torch writes a zip
    archive, so a truncated file has no central directory and a damaged one fails its CRCs."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"{type(err).__name__}: {err}"
    return f"member {bad} is damaged" if bad is not None else None


def is_readable(path: Path) -> bool:
    return unreadable_reason(path) is None


def existing_checkpoints(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.ckpt")) if Path(directory).is_dir() else []


def find_resumable(directory: Path) -> tuple[Path | None, list[str]]:
    """(the checkpoint to resume, notes on the candidates skipped as unreadable); None when the
    folder holds no readable last checkpoint. last.ckpt first, then the one it replaced."""
    notes = []
    for name in (LAST_NAME, PREVIOUS_NAME):
        path = Path(directory) / name
        if not path.exists():
            continue
        reason = unreadable_reason(path)
        if reason is None:
            return path, notes
        notes.append(f"{path} is unreadable ({reason}), skipped")
    return None, notes
