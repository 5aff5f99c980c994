"""The member's FileSystem (pyetcd.fileutil) in the simulation: real files, injected faults.

One SimFileSystem per process (one run of a member). Every call is one I/O step, counted in
total and per operation. A DiskFault picks a step (the n-th call of an operation, of an operation on
a path containing a given text, or the n-th step of any kind) and what happens there:

- ``crash-before`` / ``crash-after``: the process dies before or after the step;
- ``torn``: a write (or pwrite) puts only a prefix of its data in the file, then the process dies;
- ``eio`` / ``enospc``: the step fails with that errno (an InjectedIOError) and does nothing.

After a crash every call of that process raises ProcessKilled (it is dead: its ``finally``
blocks cannot touch the disk), and its open files are closed (their locks released), as the
kernel does at exit. A rename between volumes (the machine's temp dir and its data dir are
different file systems) fails with EXDEV, as on a real machine: that is no injected fault.
Syncs are reported to the machine's Disk (disk.py), which decides what survives a power loss.
"""
from __future__ import annotations

import collections
import enum
import errno
import fcntl
import os
import random
import shutil
from dataclasses import dataclass
from typing import Callable

from membersim.disk import Disk, FileNode
from membersim.process import Process, ProcessKilled

ANY = "any"
# operations whose failure with EIO/ENOSPC is plausible (reads of metadata are not failed)
FAILABLE = ("open", "write", "pwrite", "pread", "fsync", "fdatasync", "rename", "fsync_dir", "read_file", "ftruncate")


class FaultKind(enum.Enum):
    CRASH_BEFORE = "crash-before"
    CRASH_AFTER = "crash-after"
    TORN = "torn"
    EIO = "eio"
    ENOSPC = "enospc"


@dataclass(frozen=True)
class DiskFault:
    op: str      # a FileSystem method name, or ANY
    nth: int     # 1-based count of that operation (of every step for ANY) in this process
    kind: FaultKind
    on: str = ""  # count only the operations whose target (path, "src -> dst") contains this

    def __str__(self) -> str:
        return f"{self.kind.value} at {self.op}{f' on {self.on}' if self.on else ''} #{self.nth}"


class InjectedIOError(OSError):
    """An I/O error the simulation made up (the member may stop on it: that is no finding)."""


class SimFileSystem:
    """``crash(reason)`` kills the process (the harness closes its database, its sockets)."""

    def __init__(self, disk: Disk, process: Process, faults: list[DiskFault], *,
                 volume_of: Callable[[str], str], rng: random.Random,
                 crash: Callable[[str], None], trace: Callable[[str], None]) -> None:
        self.disk = disk
        self.process = process
        self.faults = list(faults)
        self.volume_of = volume_of
        self.rng = rng
        self._crash_process = crash
        self._trace = trace
        self.steps = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self._on_counts: collections.Counter[DiskFault] = collections.Counter()
        self.injected_error: InjectedIOError | None = None
        self._fds: dict[int, FileNode] = {}
        process.at_kill(self._close_all)

    def disarm(self) -> None:
        """No more faults from this FileSystem (the faults heal)."""
        self.faults.clear()

    # ---- the step machinery -------------------------------------------------------------------

    def _step(self, op: str, target: object) -> DiskFault | None:
        if not self.process.alive:
            raise ProcessKilled(f"{self.process.name} is dead")
        self.steps += 1
        self.counts[op] += 1
        fault = next((f for f in self.faults if self._reached(f, op, str(target))), None)
        if fault is None:
            return None
        self.faults.remove(fault)
        self._trace(f"disk fault {fault} ({op} {target})")
        if fault.kind is FaultKind.CRASH_BEFORE or (fault.kind is FaultKind.TORN and op not in ("write", "pwrite")):
            self._crash(f"{fault} before {op} {target}")
        if fault.kind in (FaultKind.EIO, FaultKind.ENOSPC):
            if op not in FAILABLE:
                return None
            code = errno.EIO if fault.kind is FaultKind.EIO else errno.ENOSPC
            self.injected_error = InjectedIOError(code, f"{os.strerror(code)} (injected at {op} #{self.counts[op]})",
                                                  str(target))
            raise self.injected_error
        return fault

    def _reached(self, fault: DiskFault, op: str, target: str) -> bool:
        if fault.op == ANY:
            return fault.nth == self.steps
        if fault.op != op:
            return False
        if not fault.on:
            return fault.nth == self.counts[op]
        if fault.on not in target:
            return False
        self._on_counts[fault] += 1
        return fault.nth == self._on_counts[fault]

    def _done(self, fault: DiskFault | None, op: str, target: object) -> None:
        if fault is not None and fault.kind is FaultKind.CRASH_AFTER:
            self._crash(f"{fault} after {op} {target}")

    def _crash(self, reason: str) -> None:
        self._crash_process(reason)
        raise ProcessKilled(reason)

    def _close_all(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    # ---- FileSystem ----------------------------------------------------------------------------

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        fault = self._step("open", path)
        fd = os.open(path, flags, mode)
        self._fds[fd] = self.disk.track_fd(fd, path)
        self._done(fault, "open", path)
        return fd

    def write(self, fd: int, data: bytes | memoryview) -> int:
        fault = self._step("write", fd)
        if fault is not None and fault.kind is FaultKind.TORN and len(data) > 1:
            os.write(fd, data[:self.rng.randrange(1, len(data))])
            self._crash(f"torn write to fd {fd}")
        n = os.write(fd, data)
        self._done(fault, "write", fd)
        return n

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        fault = self._step("pwrite", fd)
        if fault is not None and fault.kind is FaultKind.TORN and len(data) > 1:
            os.pwrite(fd, data[:self.rng.randrange(1, len(data))], offset)
            self._crash(f"torn pwrite to fd {fd}")
        n = os.pwrite(fd, data, offset)
        self._done(fault, "pwrite", fd)
        return n

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        fault = self._step("pread", fd)
        data = os.pread(fd, size, offset)
        self._done(fault, "pread", fd)
        return data

    def fdatasync(self, fd: int) -> None:
        self._sync("fdatasync", fd)

    def fsync(self, fd: int) -> None:
        self._sync("fsync", fd)

    def _sync(self, op: str, fd: int) -> None:
        fault = self._step(op, fd)
        node = self._fds[fd]
        self.disk.synced(node)
        self.process.syncs += 1
        self._done(fault, op, fd)

    def ftruncate(self, fd: int, size: int) -> None:
        fault = self._step("ftruncate", fd)
        os.ftruncate(fd, size)
        self._done(fault, "ftruncate", fd)

    def fsize(self, fd: int) -> int:
        fault = self._step("fsize", fd)
        size = os.fstat(fd).st_size
        self._done(fault, "fsize", fd)
        return size

    def close(self, fd: int) -> None:
        fault = self._step("close", fd)
        del self._fds[fd]
        os.close(fd)
        self._done(fault, "close", fd)

    def lock(self, fd: int) -> None:
        fault = self._step("lock", fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._done(fault, "lock", fd)

    def read_file(self, path: str) -> bytes:
        fault = self._step("read_file", path)
        with open(path, "rb") as f:
            data = f.read()
        self._done(fault, "read_file", path)
        return data

    def rename(self, src: str, dst: str) -> None:
        fault = self._step("rename", f"{src} -> {dst}")
        if self.volume_of(src) != self.volume_of(os.path.dirname(os.path.abspath(dst))):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, None, dst)
        self.disk.track_path(src)
        self.disk.track_path(dst)
        os.replace(src, dst)
        self._done(fault, "rename", f"{src} -> {dst}")

    def unlink(self, path: str) -> None:
        fault = self._step("unlink", path)
        self.disk.track_path(path)
        os.unlink(path)
        self._done(fault, "unlink", path)

    def listdir(self, path: str) -> list[str]:
        fault = self._step("listdir", path)
        names = sorted(os.listdir(path))
        self.rng.shuffle(names)  # no order promised; a seeded one keeps the run replayable
        self._done(fault, "listdir", path)
        return names

    def makedirs(self, path: str) -> None:
        fault = self._step("makedirs", path)
        os.makedirs(path, exist_ok=True)
        self._done(fault, "makedirs", path)

    def rmtree(self, path: str) -> None:
        fault = self._step("rmtree", path)
        self.disk.track_tree(path)
        shutil.rmtree(path)
        self._done(fault, "rmtree", path)

    def isdir(self, path: str) -> bool:
        fault = self._step("isdir", path)
        result = os.path.isdir(path)
        self._done(fault, "isdir", path)
        return result

    def exists(self, path: str) -> bool:
        fault = self._step("exists", path)
        result = os.path.exists(path)
        self._done(fault, "exists", path)
        return result

    def fsync_dir(self, path: str) -> None:
        fault = self._step("fsync_dir", path)
        self.disk.dir_synced(path)
        self.process.syncs += 1
        self._done(fault, "fsync_dir", path)

    def boot_id(self) -> str:
        return self.disk.boot_id
