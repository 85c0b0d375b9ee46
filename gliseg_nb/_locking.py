"""Process-level locks on files, whether a process is alive, and leftovers of killed ones.

* `FileLock` is an operating-system lock on a file (``fcntl.flock`` on POSIX,
  ``msvcrt.locking`` on Windows): the OS releases it when the holding process ends, however
  it ends, so a lock left by a killed process is never in the way (its lock file stays, with
  the dead process's details in it, and is simply locked again). Where the file system
  offers no locks (some network mounts), a portable fallback reads the holder's details
  from the file and takes the lock over when that process is no longer alive.
* `pid_alive` says whether a process id is running on this machine.
* `remove_stale_temporaries` deletes the temporary files (`gliseg_nb._io.TEMPORARY_MARK` in
  their name) that a killed process left in a folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

from ._io import TEMPORARY_MARK

__all__ = ["FileLock", "LockHeld", "pid_alive", "remove_stale_temporaries", "STALE_TEMPORARY_SECONDS"]

#: A temporary file older than this is a leftover even when its process id is alive (the
#: id may have been reused, or the file came from another machine).
STALE_TEMPORARY_SECONDS = 3600

_PID_IN_NAME = re.compile(re.escape(TEMPORARY_MARK) + r"(\d+)")

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None


def pid_alive(pid):
    """Whether process `pid` runs on this machine (True when it cannot be told).

    Parameters
    ----------
    pid : int

    Returns
    -------
    bool
    """
    pid = int(pid)
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except OSError:
        return True
    return True


def _windows_pid_alive(pid):
    # os.kill(pid, 0) would *terminate* the process on Windows; ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def remove_stale_temporaries(folder, max_age=STALE_TEMPORARY_SECONDS, recursive=False, same_host_tag=None):
    """Delete temporary files and folders that killed processes left in `folder`.

    A temporary (a name holding `gliseg_nb._io.TEMPORARY_MARK`, as `gliseg_nb._io.atomic_write`
    writes them) is stale when the process id in its name is not alive, or when it is older
    than `max_age` seconds. Those of the current process are kept unless that old.

    Parameters
    ----------
    folder : str or pathlib.Path
    max_age : float, default=3600
        Seconds after which any temporary is considered abandoned.
    recursive : bool, default=False
        Look in sub-folders too.
    same_host_tag : str, optional
        Default=None: the process-id rule applies to every temporary (right where a lock
        guarantees no other machine writes in `folder`). When given, it applies only to
        names holding ``-<same_host_tag>-`` (temporaries written on this machine); others
        are removed by age only, so a live process on another machine sharing the folder
        is never taken for a dead one here.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    folder = Path(folder)
    removed = []
    now = time.time()
    try:
        entries = list(folder.rglob("*") if recursive else folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        name = path.name
        if TEMPORARY_MARK not in name:
            continue
        match = _PID_IN_NAME.search(name)
        pid = int(match.group(1)) if match else None
        try:
            age = now - path.lstat().st_mtime
        except OSError:
            continue
        ours = same_host_tag is None or f"-{same_host_tag}-" in name
        dead = pid is not None and ours and pid != os.getpid() and not pid_alive(pid)
        if dead or age > max_age:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed.append(path)
    return removed


class LockHeld(Exception):
    """Raised by `FileLock.acquire` when another process holds the lock.

    Attributes
    ----------
    holder : dict
        What the holder wrote in the lock file (``pid``, ``host``, ``since``, ``command``),
        empty if it could not be read.
    """

    def __init__(self, path, holder):
        self.path = Path(path)
        self.holder = holder or {}
        super().__init__(f"{self.path}: locked by {describe_holder(self.holder)}")


def describe_holder(holder):
    """``"process 123 on host 'x' since 2026-12-01 09:10:11 UTC"`` from a lock file's details."""
    if not holder:
        return "another process (its details could not be read)"
    text = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')!r}"
    if holder.get("since"):
        text += f" since {holder['since']}"
    return text


# Exclusive locks this process holds, by resolved path: (FileLock, owning thread). The same
# thread may take a lock it holds again (re-entrant: load_or_train holds a run's lock and the
# fit it calls takes it too); OS locks do not do that by themselves (a second flock on
# another descriptor of the same file would fail against the first).
_HELD = {}
_HELD_GUARD = threading.Lock()


class FileLock:
    """An exclusive (or shared) lock on one file, released when the process ends.

    The exclusive holder writes its details (process id, host, start time, command) into the
    file, so that a process that finds it locked can say who holds it. The file is never
    replaced or deleted while in use: a lock lives on the file, not on its name.

    Parameters
    ----------
    path : str or pathlib.Path
        The lock file; created (with its folder) if missing.
    shared : bool, default=False
        A shared (reader) lock: many may hold it at once, but not while an exclusive one is
        held. On Windows (no shared locks in ``msvcrt``) a shared lock is not taken and
        `acquire` returns True.
    """

    def __init__(self, path, shared=False):
        self.path = Path(path)
        self.shared = bool(shared)
        self._fd = None
        self._fallback = False
        self.reentered = False
        self._key = None

    @property
    def held(self):
        return self._fd is not None or self._fallback

    def acquire(self, blocking=False):
        """Take the lock; raise `LockHeld` if another process holds it (and not `blocking`).

        Parameters
        ----------
        blocking : bool, default=False
            Wait until the lock is free instead of raising.

        Returns
        -------
        bool
            True once held.
        """
        if self.held or self.reentered:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = str(self.path.parent.resolve() / self.path.name)
        while True:
            with _HELD_GUARD:
                entry = None if self.shared else _HELD.get(key)
            if entry is not None and entry[1] == threading.get_ident():
                self.reentered = True
                return True
            try:
                if entry is not None:  # another thread of this process holds it
                    raise LockHeld(self.path, entry[0].read_holder())
                self._acquire_once()
                break
            except LockHeld:
                if not blocking:
                    raise
            time.sleep(0.5)
        if not self.shared:
            with _HELD_GUARD:
                _HELD[key] = (self, threading.get_ident())
            self._key = key
            self._write_holder()
        return True

    def _acquire_once(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                operation = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
                try:
                    fcntl.flock(fd, operation)
                except BlockingIOError:
                    raise LockHeld(self.path, self.read_holder()) from None
                except OSError:  # no locks on this file system (ENOLCK, EOPNOTSUPP)
                    os.close(fd)
                    fd = None
                    self._acquire_fallback()
                    return
            elif msvcrt is not None:
                if self.shared:
                    os.close(fd)
                    fd = None
                    self._fallback = True  # nothing to lock: readers never block a writer here
                    return
                try:
                    # Lock one byte far past the details the holder writes at the start.
                    os.lseek(fd, 1 << 20, os.SEEK_SET)
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                except OSError:
                    raise LockHeld(self.path, self.read_holder()) from None
            else:
                os.close(fd)
                fd = None
                self._acquire_fallback()
                return
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        self._fd = fd

    def _acquire_fallback(self):
        """No OS lock: the holder's details decide (taken over when its process is dead)."""
        if self.shared:
            self._fallback = True
            return
        holder = self.read_holder()
        if holder and holder.get("host") == socket.gethostname() and holder.get("pid") != os.getpid() \
                and pid_alive(holder.get("pid", 0)):
            raise LockHeld(self.path, holder)
        self._fallback = True

    def read_holder(self):
        """The details the exclusive holder wrote in the lock file (empty dict if none)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            holder = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _write_holder(self):
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(sys.argv)[:500],
        }
        data = (json.dumps(holder) + "\n").encode()
        # Written in place (truncate, write, fsync), never renamed over: the lock is on this file.
        if self._fd is not None:
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.ftruncate(self._fd, 0)
            os.write(self._fd, data)
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
        else:
            with contextlib.suppress(OSError):
                with open(self.path, "wb") as handle:
                    handle.write(data)

    def release(self):
        """Release the lock (a re-entered lock only when its first holder releases it)."""
        if self.reentered:
            self.reentered = False  # the outer holder releases the OS lock
            return
        if not self.held:
            return
        if self._key is not None:
            with _HELD_GUARD:
                _HELD.pop(self._key, None)
            self._key = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                elif msvcrt is not None:
                    os.lseek(fd, 1 << 20, os.SEEK_SET)
                    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            os.close(fd)
        elif self._fallback and not self.shared:
            # Say the lock is free: empty the details (the file stays).
            with contextlib.suppress(OSError):
                if self.read_holder().get("pid") == os.getpid():
                    self.path.write_text("", encoding="utf-8")
        self._fallback = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.release()
