"""File-system plumbing with one owner each: user paths, the cache root, atomic writes.

* `user_path` is how every path a user gives (argument, option, environment variable) is
  read: ``~`` expanded, nothing else changed.
* `cache_root` is the one folder everything cached lives under: the synthetic dataset,
  the slice cache and the course's trained runs.
* `atomic_write` is the one way a file is written: into a temporary file in the same
  folder, flushed to disk (fsync), then renamed over the target. A reader sees the old
  file or the new one, never half of one, even after a crash or a power loss; on an error
  the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = [
    "CACHE_ENV_VAR",
    "user_path",
    "cache_root",
    "atomic_write",
    "temporary_name",
    "fsync_dir",
    "output_folder",
    "output_file",
]

#: Environment variable naming the folder everything cached lives under.
CACHE_ENV_VAR = "GLISEG_NB_CACHE"

#: Every temporary file or folder this package writes has this in its name, so that
#: leftovers of a killed process are recognised (and never read as data).
TEMPORARY_MARK = ".tmp-"


def user_path(path):
    """A path given by a user, as a `pathlib.Path` with ``~`` expanded.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path
    """
    return Path(os.fspath(path)).expanduser()


def cache_root():
    """The folder everything gliseg-nb caches lives under.

    Returns
    -------
    pathlib.Path
        ``$GLISEG_NB_CACHE`` (``~`` expanded) if that variable is set and not empty, else
        pooch's OS cache folder for ``gliseg-nb`` (``~/.cache/gliseg-nb`` on Linux).
    """
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return user_path(configured)
    import pooch

    return Path(pooch.os_cache("gliseg-nb"))


def temporary_name(path):
    """A unique temporary path beside ``path`` (same folder, so a rename is atomic).

    The name starts with a dot and holds `TEMPORARY_MARK`, the process id and a random part:
    ``.best.keras.tmp-1234-1a2b3c4d`` keeps the suffix readers look for out of the end.
    """
    path = Path(path)
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder):
    """Flush a folder's entry list to disk (after a rename), where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="w", *, suffix="", **open_kwargs):
    """Write ``path`` atomically: a temporary file, fsync, then one rename over the target.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder is created if missing.
    mode : {"w", "wb", None}, default="w"
        ``"w"`` or ``"wb"``: the context yields an open file object. None: it yields the
        temporary *path* instead, for writers that take a file name (``nib.save``,
        ``model.save``, ``np.save``); they must write to exactly that path.
    suffix : str, default=""
        Appended to the temporary name, for writers that choose a format by extension
        (``".keras"``, ``".nii.gz"``).
    **open_kwargs
        Passed to `open` (``encoding``, ``newline``).

    Yields
    ------
    file object or pathlib.Path

    Examples
    --------
    >>> with atomic_write("config.json") as f:  # doctest: +SKIP
    ...     f.write("{}")
    >>> with atomic_write("model.keras", mode=None, suffix=".keras") as tmp:  # doctest: +SKIP
    ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    if suffix:
        tmp = tmp.with_name(tmp.name + suffix)
    if mode is not None and "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        if mode is None:
            yield tmp
        else:
            with open(tmp, mode, **open_kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        if mode is None:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _fsync_file(path):
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- output paths a user names ---------------------------------------------------------
def _reason(error):
    """The OS's words for an OSError (``Permission denied``), without the errno noise."""
    return error.strerror or str(error)


def output_folder(path, *, what="output folder"):
    """Check that `path` can be used as an output folder, creating it if missing.

    Called before any work is done, so a command that cannot write its results fails at
    once with the path named, not after minutes of computing.

    Parameters
    ----------
    path : str or os.PathLike
        The folder (``~`` expanded).
    what : str, default="output folder"
        How the message names the folder (``"run folder"``, ``"predictions folder"``).

    Returns
    -------
    pathlib.Path
        The folder, ``~`` expanded.

    Raises
    ------
    gliseg_nb.RunError
        If `path` (or a folder above it) is a file, or the folder cannot be created or
        written into.
    """
    from .errors import RunError

    path = user_path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: the {what} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise RunError(f"{path}: cannot create the {what}: a path above it is a file") from error
    except OSError as error:
        raise RunError(f"{path}: cannot create the {what} ({_reason(error)})") from error
    probe = temporary_name(path / "write-test")
    try:
        with open(probe, "wb"):
            pass
    except OSError as error:
        raise RunError(f"{path}: cannot write into the {what} ({_reason(error)})") from error
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return path


def output_file(path, *, what="output file"):
    """Check that the file `path` can be written (its folder is created if missing).

    Parameters
    ----------
    path : str or os.PathLike
        The file (``~`` expanded). An existing file is allowed: it will be replaced.
    what : str, default="output file"
        How the message names the file (``"CSV file"``, ``"image file"``).

    Returns
    -------
    pathlib.Path
        The file path, ``~`` expanded.

    Raises
    ------
    gliseg_nb.RunError
        If `path` is a folder, or its folder cannot be created or written into.
    """
    from .errors import RunError

    path = user_path(path)
    if path.is_dir():
        raise RunError(f"{path}: the {what} is a folder; give a file name")
    output_folder(path.parent, what=f"folder of the {what}")
    return path
