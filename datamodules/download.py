"""One clear error for a download that cannot reach its server (offline compute nodes)."""
from __future__ import annotations

import contextlib
import http.client
import socket
import urllib.error
from pathlib import Path

from sslzoo.errors import DataError

# urllib.error.URLError (and HTTPError) are OSErrors; ConnectionError and TimeoutError too.
UNREACHABLE = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, http.client.HTTPException)


@contextlib.contextmanager
def download_errors(dataset: str, url: str, folder: Path):
    try:
        yield
    except UNREACHABLE as err:
        reason = " ".join(str(getattr(err, "reason", err)).split()) or type(err).__name__
        raise DataError(
            f"cannot download {dataset} from {url} into {folder} ({reason}); download that file by hand into {folder} "
            "(the root option; extract an archive there) and set download: false"
        ) from err
