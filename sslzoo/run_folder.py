"""The run folder must take files before a run starts, not at its first checkpoint hours in."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def check_writable(folder: str | os.PathLike) -> None:
    """Create `folder` if needed and write (then remove) a probe file in it; ConfigError otherwise."""
    path = Path(folder).expanduser()
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"--trainer.default_root_dir {path} cannot be a folder: {blocker} is a file; give another folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sslzoo-write-check-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"--trainer.default_root_dir {path} is not writable ({err.strerror or type(err).__name__}); "
            "give a folder this user can write to"
        ) from err
