"""Checkpoint files that are either complete or absent.

A checkpoint is written to a hidden partial file in the destination directory (so the final
rename never crosses a filesystem), flushed and fsync'ed, then renamed over the destination.
A kill or a full disk mid-write leaves the previous file untouched and at worst a stale
`.NAME.partial-PID` file, which the next write of the same name replaces.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import SSLZooError


class CheckpointWriteError(SSLZooError, OSError):
    pass


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def write_atomically(checkpoint: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException as err:
        partial.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)):  # torch reports a full disk as a RuntimeError
            raise CheckpointWriteError(
                f"could not write checkpoint {path} ({err}); the previous file of that name is untouched. "
                f"Free space in {path.parent} or point --trainer.default_root_dir elsewhere"
            ) from err
        raise
    fsync_directory(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, with local files written atomically (remote URLs as before)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        write_atomically(checkpoint, Path(path))
