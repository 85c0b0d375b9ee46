"""The exceptions gliseg-nb raises for problems a user can fix.

Every message names the file or folder concerned and says what is wrong with it, in one
line. The command line catches `GlisegError` only and prints that line (``--debug`` shows
the traceback); anything else is a bug and keeps its traceback.

::

    GlisegError
    ├── DataError(ValueError)     input data missing, malformed or inconsistent
    ├── ConfigError(ValueError)   a setting or command-line option is invalid
    └── RunError                  a run, cache or output folder cannot be used as asked
        (locked by another process, not writable, holds another model's files, ...)

`DataError` and `ConfigError` subclass `ValueError`, so code that catches `ValueError`
keeps working.
"""

__all__ = ["GlisegError", "DataError", "ConfigError", "RunError"]


class GlisegError(Exception):
    """Base class of the errors gliseg-nb reports to users as one line."""


class DataError(GlisegError, ValueError):
    """Input data is missing, malformed or inconsistent.

    The message always names the file (or folder) and what is wrong with it.
    """


class ConfigError(GlisegError, ValueError):
    """A setting (a `gliseg_nb.Config` field or a command-line option) is invalid."""


class RunError(GlisegError):
    """A run, cache or output folder cannot be used as asked.

    For example: another process holds its lock, it is not writable, or it holds files
    written by another model.
    """
