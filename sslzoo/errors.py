"""Errors a user fixes from their message alone: the `sslzoo` command prints that message as
one line and exits with status 2 (set SSLZOO_TRACEBACK=1 to see the traceback too).

Each is also the builtin error a Python caller would expect (ValueError, FileNotFoundError, ...),
so `except ValueError` keeps working for API users."""


class SSLZooError(Exception):
    pass


class ConfigError(SSLZooError, ValueError):
    """A value of the configuration (or of a constructor) that cannot work; say which and what to set."""


class DataError(SSLZooError, ValueError):
    """The dataset on disk is not what the datamodule reads (format, labels, sizes, missing files)."""


class DataFileNotFound(DataError, FileNotFoundError):
    """A dataset file or folder that is not there."""


class ResumeRefused(SSLZooError, ValueError):
    """A checkpoint that does not belong to this command (another method, other values, other data)."""


class ConfigFileNotFound(ConfigError, FileNotFoundError):
    """A file the configuration names (init_from, pretext, a timm checkpoint) that is not there."""
