"""The disk seam: every file operation of the WAL and of the data dir goes through a FileSystem.

``OS`` does them on the real file system. The whole-member simulation (tests/sim) passes its own
FileSystem that works on real files too (LMDB needs them) but can crash a member before or after
any step, forget whatever was not synced when it simulates a power loss, and fail a step with
EIO, ENOSPC or EXDEV. LMDB's own reads and writes do not pass through here (they happen inside
the C library); the operations the member does on the database *file* (moving a received copy
into place, fsyncing it) do.

The methods mirror ``os``: file descriptors are ints, errors are ``OSError`` with errno set.
``fsync_dir`` makes the directory's entries (files created, renamed or deleted in it) durable.
``boot_id`` tells a restart after a power loss (anything not synced may be gone) from one after
a process crash (the page cache survived).
"""
from __future__ import annotations

import fcntl
import os
import shutil
from typing import Protocol


class FileSystem(Protocol):
    def open(self, path: str, flags: int, mode: int = 0o600) -> int: ...
    def write(self, fd: int, data: bytes | memoryview) -> int: ...
    def pread(self, fd: int, size: int, offset: int) -> bytes: ...
    def pwrite(self, fd: int, data: bytes, offset: int) -> int: ...
    def fdatasync(self, fd: int) -> None: ...
    def fsync(self, fd: int) -> None: ...
    def ftruncate(self, fd: int, size: int) -> None: ...
    def fsize(self, fd: int) -> int: ...
    def close(self, fd: int) -> None: ...
    def lock(self, fd: int) -> None:
        """An exclusive, non-blocking lock on the open file; BlockingIOError if it is held."""
    def read_file(self, path: str) -> bytes: ...
    def rename(self, src: str, dst: str) -> None:
        """``os.replace``: dst is replaced atomically if it exists."""
    def unlink(self, path: str) -> None: ...
    def link(self, src: str, dst: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def makedirs(self, path: str) -> None:
        """Create path and its parents if missing (like ``os.makedirs(exist_ok=True)``)."""
    def rmtree(self, path: str) -> None: ...
    def isdir(self, path: str) -> bool: ...
    def exists(self, path: str) -> bool: ...
    def fsync_dir(self, path: str) -> None: ...
    def boot_id(self) -> str:
        """Changes whenever what was not synced may have been lost (the machine rebooted)."""


class OSFileSystem:
    """The real file system."""

    open = staticmethod(os.open)
    write = staticmethod(os.write)
    pread = staticmethod(os.pread)
    pwrite = staticmethod(os.pwrite)
    fdatasync = staticmethod(os.fdatasync)
    fsync = staticmethod(os.fsync)
    ftruncate = staticmethod(os.ftruncate)
    close = staticmethod(os.close)
    rename = staticmethod(os.replace)
    unlink = staticmethod(os.unlink)
    link = staticmethod(os.link)
    listdir = staticmethod(os.listdir)
    isdir = staticmethod(os.path.isdir)
    exists = staticmethod(os.path.exists)

    @staticmethod
    def fsize(fd: int) -> int:
        return os.fstat(fd).st_size

    @staticmethod
    def lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @staticmethod
    def read_file(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    @staticmethod
    def makedirs(path: str) -> None:
        os.makedirs(path, exist_ok=True)

    @staticmethod
    def rmtree(path: str) -> None:
        shutil.rmtree(path)

    @staticmethod
    def boot_id() -> str:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()

    @staticmethod
    def fsync_dir(path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS: FileSystem = OSFileSystem()


def write_all(fs: FileSystem, fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[fs.write(fd, view):]


def makedirs_durably(fs: FileSystem, path: str, up_to: str | None = None) -> None:
    """``path``, made with any missing parents, and the entries of all of them durable, and
    those of every level from ``up_to`` down to ``path`` whether made now or not (a crash may
    have left one made but never synced)."""
    target = os.path.abspath(path)
    top = os.path.abspath(up_to) if up_to is not None else None
    levels = []
    level = target
    while not fs.isdir(level) or (top is not None and (level == top or level.startswith(top + os.sep))):
        levels.append(level)
        if level == os.path.dirname(level):
            break
        level = os.path.dirname(level)
    fs.makedirs(path)
    for level in reversed(levels or [target]):
        fs.fsync_dir(os.path.dirname(level))


def write_file_durably(fs: FileSystem, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that after a crash it holds either the old or the new
    content, the new one once this returns: temporary file, fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    fd = fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fs, fd, data)
        fs.fsync(fd)
    finally:
        fs.close(fd)
    fs.rename(tmp, path)
    fs.fsync_dir(os.path.dirname(path) or ".")


def fsync_file(fs: FileSystem, path: str) -> None:
    """Make a file's content durable (e.g. a snapshot another component wrote)."""
    fd = fs.open(path, os.O_RDONLY)
    try:
        fs.fsync(fd)
    finally:
        fs.close(fd)
