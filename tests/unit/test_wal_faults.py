"""A crash at every file operation: nothing acknowledged is lost, and the log always reads back.

CrashFS is the real file system with a counter: the n-th operation and every one after it raise
Crash, as if the process died there. Writes go CHUNK bytes at a time (short writes, which
write_all must handle), so crashes also land inside records. For every n of a scenario (create,
saves with and without sync, a cut, markers, a discarding marker, releases, a close and a reopen)
the WAL is then recovered twice, with the real file system:

    process crash   the files as they are (the page cache survives the process)
    power loss      only what was synced: each file as of its last fsync/fdatasync, each
                    directory's entries as of its last fsync_dir

Either way the WAL must open and read back without error, hold a state the scenario went through
at or after the last acknowledgement (save with sync=True, save_snapshot, close returned), a
record at a time, and take the next entry.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest

from pyetcd.fileutil import OS
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import WAL, SnapshotMarker
from pyetcd.wal.wal import list_segments

META = b"member=1 cluster=2"
SEGMENT_SIZE = 490  # the scenario's cuts depend on it (it asserts where they fall)
CHUNK = 50


class Crash(Exception):
    """The process died before this operation."""


class Inode:
    def __init__(self, synced: bytes | None = b"") -> None:
        self.synced = synced  # the content as of the last fsync; None for a directory


class CrashFS:
    """The real file system under root, crashing at operation crash_at and tracking what is synced."""

    def __init__(self, root: str, crash_at: int | None) -> None:
        self.root, self.crash_at, self.ops = root, crash_at, 0
        self.names: dict[str, Inode] = {}  # path -> inode, as the directories say now
        self.synced_dirs: dict[str, dict[str, Inode]] = {root: {}}  # as of each directory's last fsync
        self.fds: dict[int, str] = {}

    def _step(self) -> None:
        self.ops += 1
        if self.crash_at is not None and self.ops >= self.crash_at:
            raise Crash(self.ops)

    def kill(self) -> None:
        """The process is gone: its descriptors (and its lock) with it."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        self._step()
        fd = os.open(path, flags, mode)
        self.names.setdefault(os.path.abspath(path), Inode())
        self.fds[fd] = os.path.abspath(path)
        return fd

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._step()
        return os.write(fd, data[:CHUNK])

    def fdatasync(self, fd: int) -> None:
        self.fsync(fd)

    def fsync(self, fd: int) -> None:
        self._step()
        os.fsync(fd)
        self.names[self.fds[fd]].synced = OS.read_file(self.fds[fd])

    def ftruncate(self, fd: int, size: int) -> None:
        self._step()
        os.ftruncate(fd, size)

    def fsize(self, fd: int) -> int:
        self._step()
        return OS.fsize(fd)

    def close(self, fd: int) -> None:
        self._step()
        os.close(fd)
        del self.fds[fd]

    def lock(self, fd: int) -> None:
        self._step()
        OS.lock(fd)

    def read_file(self, path: str) -> bytes:
        self._step()
        return OS.read_file(path)

    def rename(self, src: str, dst: str) -> None:
        self._step()
        os.replace(src, dst)
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        self.names[dst] = self.names.pop(src)
        self.fds = {fd: dst if path == src else path for fd, path in self.fds.items()}

    def unlink(self, path: str) -> None:
        self._step()
        os.unlink(path)
        del self.names[os.path.abspath(path)]

    def listdir(self, path: str) -> list[str]:
        self._step()
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        self._step()
        level = os.path.abspath(path)
        while level != self.root and not os.path.isdir(level):
            self.names[level] = Inode(None)
            level = os.path.dirname(level)
        OS.makedirs(path)

    def isdir(self, path: str) -> bool:
        self._step()
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        self._step()
        return os.path.exists(path)

    def fsync_dir(self, path: str) -> None:
        self._step()
        OS.fsync_dir(path)
        path = os.path.abspath(path)
        self.synced_dirs[path] = {os.path.basename(p): inode for p, inode in self.names.items()
                                  if os.path.dirname(p) == path}

    def write_power_loss_image(self, dest: str, src: str | None = None) -> None:
        """What a power loss now would leave of root, written to dest."""
        src = src or self.root
        os.makedirs(dest)
        for name, inode in self.synced_dirs.get(src, {}).items():
            if inode.synced is None:
                self.write_power_loss_image(os.path.join(dest, name), os.path.join(src, name))
            else:
                with open(os.path.join(dest, name), "wb") as f:
                    f.write(inode.synced)


def ent(index: int, term: int) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=term, index=index, data=b"%d@%d;" % (index, term) * 4)


def ents(first: int, last: int, term: int) -> list[raft_pb2.Entry]:
    return [ent(i, term) for i in range(first, last + 1)]


def hs(term: int, commit: int, vote: int = 0) -> raft_pb2.HardState:
    return raft_pb2.HardState(term=term, vote=vote, commit=commit)


@dataclass(frozen=True)
class State:
    hardstate: tuple[int, int, int]
    entries: tuple[tuple[int, int, bytes], ...]
    marker: SnapshotMarker | None


class Model:
    """The states the log goes through, one record at a time, and the last acknowledged one."""

    def __init__(self) -> None:
        self.states = [State((0, 0, 0), (), None)]
        self.acked: int | None = None  # None: WAL.create has not returned

    def save(self, hardstate: raft_pb2.HardState | None, entries: list[raft_pb2.Entry]) -> None:
        for e in entries:
            s = self.states[-1]
            if s.marker is None or e.index > s.marker.index:
                kept = tuple(x for x in s.entries if x[0] < e.index)
                self.states.append(State(s.hardstate, kept + ((e.index, e.term, e.data),), s.marker))
        if hardstate is not None:
            s = self.states[-1]
            self.states.append(State((hardstate.term, hardstate.vote, hardstate.commit), s.entries, s.marker))

    def snapshot(self, index: int, term: int, discard_log: bool) -> None:
        s = self.states[-1]
        kept = () if discard_log else tuple(x for x in s.entries if x[0] > index)
        self.states.append(State(s.hardstate, kept, SnapshotMarker(index, term)))

    def ack(self) -> None:
        self.acked = len(self.states) - 1


def scenario(waldir: str, fs: CrashFS, model: Model) -> None:
    def save(hardstate, entries, sync=True):
        model.save(hardstate, entries)
        w.save(hardstate, entries, sync=sync)
        if sync:
            model.ack()

    def snapshot(index, term, discard_log=False):
        model.snapshot(index, term, discard_log)
        w.save_snapshot(index, term, discard_log=discard_log)
        model.ack()

    def first_indexes():  # by the real file system, so not an operation of the scenario
        return [seg.first_index for seg in list_segments(waldir)]

    w = WAL.create(waldir, META, segment_size=SEGMENT_SIZE, fs=fs)
    model.ack()
    save(hs(1, 0, 1), ents(1, 6, 1))
    save(None, ents(7, 18, 1), sync=False)
    assert first_indexes() == [1, 19]  # cut after a save that did not sync, so the cut syncs
    save(hs(1, 8, 1), [])
    save(None, ents(19, 24, 1))
    snapshot(19, 1)
    w.release_before(20)
    w.close()
    model.ack()
    w = WAL.open(waldir, segment_size=SEGMENT_SIZE, fs=fs)
    save(hs(2, 21, 2), ents(22, 24, 2))  # a follower's log overwritten from 22 on
    save(None, ents(25, 26, 2), sync=False)
    assert first_indexes() == [19, 27]
    save(None, ents(27, 35, 2), sync=False)
    snapshot(23, 3, discard_log=True)  # the leader's snapshot replaces the log
    save(hs(3, 23, 3), ents(24, 25, 3))
    assert first_indexes() == [19, 27, 26]  # the cut after the discarding marker
    save(None, ents(26, 33, 3))
    snapshot(30, 3)
    w.release_before(31)
    assert first_indexes() == [26]  # the discarding marker's segment went, the entries after it stay
    w.close()
    model.ack()


def recover(waldir: str) -> State | None:
    """The state the WAL in waldir holds (after it took one more entry), or None if there is none."""
    if not WAL.exists(waldir):
        return None
    with WAL.open(waldir, segment_size=SEGMENT_SIZE) as w:
        meta, hardstate, entries, marker = w.read_all()
        assert meta == META
        state = State((hardstate.term, hardstate.vote, hardstate.commit),
                      tuple((e.index, e.term, e.data) for e in entries), marker)
        following = ent(entries[-1].index + 1 if entries else (marker.index + 1 if marker else 1), 9)
        w.save(None, [following])
    with WAL.open(waldir, segment_size=SEGMENT_SIZE) as w:
        assert w.read_all()[2][-1] == following
    return state


def run(tmp_path, crash_at: int | None) -> tuple[CrashFS, Model]:
    root = str(tmp_path / "run")
    os.makedirs(root)
    fs, model = CrashFS(root, crash_at), Model()
    try:
        scenario(os.path.join(root, "wal"), fs, model)
    except Crash:
        pass
    fs.kill()
    return fs, model


def check(model: Model, got: State | None, what: str) -> None:
    if got is None:
        assert model.acked is None, f"{what}: no WAL after WAL.create returned"
        return
    possible = model.states[model.acked or 0:]
    assert got in possible, f"{what}: recovered {got}, acknowledged {model.states[model.acked or 0]}"


def test_every_crash_point_recovers_what_was_acknowledged(tmp_path):
    fs, model = run(tmp_path, None)
    total = fs.ops
    assert model.acked == len(model.states) - 1
    assert recover(str(tmp_path / "run" / "wal")) == model.states[-1]
    shutil.rmtree(tmp_path / "run")
    for n in range(1, total + 1):
        fs, model = run(tmp_path, n)
        image = str(tmp_path / "power-loss")
        fs.write_power_loss_image(image)
        check(model, recover(str(tmp_path / "run" / "wal")), f"process crash before operation {n}")
        check(model, recover(os.path.join(image, "wal")), f"power loss before operation {n}")
        shutil.rmtree(tmp_path / "run")
        shutil.rmtree(image)


def test_what_a_restart_reads_survives_a_power_loss_after_it(tmp_path):
    """sim F14: a restart acted on a WAL record the dead process had written but not synced (a
    snapshot marker: it finished the install); a power loss then took the record back and left
    the database ahead of the WAL. Opening the WAL makes what it read durable."""
    root = str(tmp_path / "run")
    os.makedirs(root)
    fs = CrashFS(root, None)
    waldir = os.path.join(root, "wal")
    w = WAL.create(waldir, META, fs=fs, segment_size=SEGMENT_SIZE)
    w.save(hs(1, 0), ents(1, 3, 1), sync=False)  # the process dies before any fdatasync
    fs.kill()
    restarted = WAL.open(waldir, fs=fs, segment_size=SEGMENT_SIZE)
    assert [e.index for e in restarted.read_all()[2]] == [1, 2, 3]
    image = str(tmp_path / "power-loss")
    fs.write_power_loss_image(image)  # while the restarted process runs on
    fs.kill()
    with WAL.open(os.path.join(image, "wal"), segment_size=SEGMENT_SIZE) as after:
        assert [e.index for e in after.read_all()[2]] == [1, 2, 3]


class DiesBeforeSyncingARename(CrashFS):
    """Crashes at the first directory fsync that follows a rename (the rename's name not durable)."""

    renamed = False
    dying = True

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        self.renamed = True

    def fsync_dir(self, path: str) -> None:
        if self.dying and self.renamed:
            raise Crash(self.ops)
        super().fsync_dir(path)


def test_a_segment_a_restart_opens_survives_a_power_loss_after_it(tmp_path):
    """sim F15: a first start died between its segment's rename and the directory's fsync; the
    restart opened that segment and went on (a member joined, took a snapshot); a power loss then
    took the name back and the member came up with no WAL. Opening the WAL syncs its directory."""
    root = str(tmp_path / "run")
    os.makedirs(root)
    fs = DiesBeforeSyncingARename(root, None)
    waldir = os.path.join(root, "wal")
    with pytest.raises(Crash):
        WAL.create(waldir, META, fs=fs, segment_size=SEGMENT_SIZE)
    fs.kill()
    fs.dying = False
    restarted = WAL.open(waldir, fs=fs, segment_size=SEGMENT_SIZE)
    restarted.save(hs(1, 0), ents(1, 3, 1))
    image = str(tmp_path / "power-loss")
    fs.write_power_loss_image(image)  # while the restarted process runs on
    fs.kill()
    with WAL.open(os.path.join(image, "wal"), segment_size=SEGMENT_SIZE) as after:
        assert [e.index for e in after.read_all()[2]] == [1, 2, 3]
