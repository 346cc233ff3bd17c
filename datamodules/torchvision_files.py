"""Helpers around torchvision's dataset classes: clear errors for missing files.

torchvision verifies the md5 of every file on each load, which refuses any
file it did not download itself (including the small fake datasets our tests
write). We check that the files exist instead; downloads still verify the
archive's md5 inside torchvision.
"""
from __future__ import annotations

from pathlib import Path

from sslzoo.errors import DataFileNotFound


def missing_files(folder: Path, names) -> list[Path]:
    return [folder / n for n in names if not (folder / n).is_file()]


def require_files(dataset: str, folder: Path, names, download_hint: str = "pass download=True (needs internet)") -> None:
    missing = missing_files(folder, names)
    if missing:
        raise DataFileNotFound(
            f"{dataset} not found: expected file {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f". Point root at the directory that holds it, or {download_hint}."
        )


class ExistenceCheckMixin:
    """Replaces torchvision's per-load md5 check with an existence check."""

    def _check_integrity(self) -> bool:  # noqa: D401 - torchvision hook
        return not missing_files(Path(self.root) / getattr(self, "base_folder", ""), self.expected_files())

    def expected_files(self) -> list[str]:
        raise NotImplementedError
