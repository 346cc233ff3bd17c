"""Errors a user fixes from their message alone: the `sslzoo` command prints that message as
one line and exits with status 2 (set SSLZOO_TRACEBACK=1 to see the traceback too)."""


class SSLZooError(Exception):
    pass


class ResumeRefused(SSLZooError, ValueError):
    """A checkpoint that does not belong to this command (another method, other values, other data)."""
