"""What of one simulated machine's files survives a power loss.

The files are real (LMDB needs them); this module keeps the durable view beside them:

- a file's durable content is what it held at its last ``fsync``/``fdatasync`` through the
  member's FileSystem (simfs.py); LMDB's ``data.mdb`` is written by LMDB itself, and its
  durable image is likewise what it held when the member last fsynced it;
- a directory's durable entries are what it listed at its last ``fsync_dir`` (creates, renames
  and unlinks after that are undone by a power loss).

Files are tracked by inode. Every tracked inode gets a hard link in a keep directory outside
the machine's tree, so it is never freed and its number never reused, and a file renamed over
or unlinked since the last ``fsync_dir`` can be brought back.

``power_loss()`` rewrites the tree to what a machine would find after the reboot: durable
entries only; in each file every 4096-byte page written since the last sync is either the old
or the new one (a page cache loses dirty pages in any order); of a file that grew, a prefix of
the growth, maybe with a page of zeros in it (the size reached the disk, that page did not);
the volatile directories (a tmpfs /tmp) empty.
"""
from __future__ import annotations

import os
import random
import shutil
import stat

PAGE = 4096
P_ZERO_PAGE_IN_GROWTH = 0.2


class FileNode:
    """One tracked inode: its keep link, and its content at the last sync (None: never synced)."""

    __slots__ = ("keep_path", "synced")

    def __init__(self, keep_path: str, synced: bytes | None) -> None:
        self.keep_path = keep_path
        self.synced = synced

    def current(self) -> bytes:
        with open(self.keep_path, "rb") as f:
            return f.read()


# In a durable listing, a directory entry maps to this instead of a FileNode.
DIRECTORY = None
Listing = dict[str, "FileNode | None"]


class Disk:
    def __init__(self, root: str, keep_dir: str, volatile_dirs: list[str], rng: random.Random) -> None:
        self.root = os.path.abspath(root)
        self.keep_dir = keep_dir
        self.volatile_dirs = [os.path.abspath(d) for d in volatile_dirs]
        self.rng = rng
        self.boots = 0
        self._keep_dirs = False
        self._nodes: dict[int, FileNode] = {}
        self._durable: dict[str, Listing] = {}
        self._next_keep = 0
        os.makedirs(self.keep_dir, exist_ok=True)
        self.baseline()

    @property
    def boot_id(self) -> str:
        return f"sim-boot-{self.boots}"

    # ---- tracking (called by the FileSystem) --------------------------------------------------

    def track_fd(self, fd: int, path: str) -> FileNode:
        return self._node(os.fstat(fd).st_ino, path)

    def track_path(self, path: str) -> FileNode | None:
        """The node of the file at path, tracked from now on; None for a directory or no file."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return None if stat.S_ISDIR(st.st_mode) else self._node(st.st_ino, path)

    def track_tree(self, path: str) -> None:
        """Track every file under path (before it is deleted: a power loss may bring it back)."""
        for dirpath, _dirs, files in os.walk(path):
            for name in files:
                self.track_path(os.path.join(dirpath, name))

    def _node(self, ino: int, path: str) -> FileNode:
        node = self._nodes.get(ino)
        if node is None:
            keep = os.path.join(self.keep_dir, str(self._next_keep))
            self._next_keep += 1
            os.link(path, keep)
            node = self._nodes[ino] = FileNode(keep, None)
        return node

    def synced(self, node: FileNode) -> None:
        node.synced = node.current()

    def dir_synced(self, path: str) -> None:
        path = os.path.abspath(path)
        listing: Listing = {}
        for name in os.listdir(path):
            full = os.path.join(path, name)
            st = os.lstat(full)
            listing[name] = DIRECTORY if stat.S_ISDIR(st.st_mode) else self._node(st.st_ino, full)
        self._durable[path] = listing

    # ---- power ---------------------------------------------------------------------------------

    def baseline(self) -> None:
        """Everything on disk now is durable (at setup, and after a reboot)."""
        shutil.rmtree(self.keep_dir)
        os.makedirs(self.keep_dir)
        self._nodes.clear()
        self._durable.clear()
        for dirpath, dirs, files in os.walk(self.root):
            self.dir_synced(dirpath)
            for name in files:
                self.synced(self._durable[os.path.abspath(dirpath)][name])

    def power_loss(self, lose_unsynced_dirs: bool = True) -> None:
        """``lose_unsynced_dirs=False``: directories that exist now survive even if their entry
        was never synced (a relaxation, see FINDINGS.md F4); their files follow the rules."""
        self._keep_dirs = not lose_unsynced_dirs
        self._survived: dict[int, bytes] = {}   # id(node) -> what survived of that inode
        image = self._image(self.root)
        for name in os.listdir(self.root):
            _remove(os.path.join(self.root, name))
        _write_image(self.root, image, {})
        for path in self.volatile_dirs:
            if os.path.isdir(path):
                for name in os.listdir(path):
                    _remove(os.path.join(path, name))
        self.boots += 1
        self.baseline()

    def _image(self, path: str) -> dict:
        """The tree under path as the reboot finds it: name -> (node, bytes) for a file, dict for
        a directory."""
        image: dict = {}
        listing = dict(self._durable.get(path, {}))
        if self._keep_dirs and os.path.isdir(path):
            listing.update((name, DIRECTORY) for name in os.listdir(path)
                           if os.path.isdir(os.path.join(path, name)) and name not in listing)
        for name, node in sorted(listing.items()):
            full = os.path.join(path, name)
            if node is DIRECTORY:
                image[name] = self._image(full)
            else:
                if id(node) not in self._survived:  # one inode, one fate, whatever names it has
                    self._survived[id(node)] = after_power_loss(node.synced or b"", node.current(), self.rng)
                image[name] = (node, self._survived[id(node)])
        return image


def after_power_loss(synced: bytes, current: bytes, rng: random.Random) -> bytes:
    """A file's content after a power loss, from its content at the last sync and now."""
    if synced == current:
        return current
    common = min(len(synced), len(current))
    out = bytearray()
    for off in range(0, common, PAGE):
        end = min(off + PAGE, common)
        old, new = synced[off:end], current[off:end]
        out += new if old == new or rng.random() < 0.5 else old
    if len(current) > len(synced):
        growth = bytearray(current[len(synced):len(synced) + rng.randint(0, len(current) - len(synced))])
        if growth and rng.random() < P_ZERO_PAGE_IN_GROWTH:
            start = rng.randrange(0, len(growth), PAGE) if len(growth) > PAGE else 0
            growth[start:start + PAGE] = bytes(len(growth[start:start + PAGE]))
        out += growth
    elif len(synced) > len(current) and rng.random() < 0.5:
        out += synced[common:]  # the truncation since the sync did not reach the disk
    return bytes(out)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_image(path: str, image: dict, written: dict[int, str]) -> None:
    """Write the tree; names of one inode become hard links of one file again."""
    for name, content in image.items():
        full = os.path.join(path, name)
        if isinstance(content, dict):
            os.mkdir(full)
            _write_image(full, content, written)
            continue
        node, data = content
        if id(node) in written:
            os.link(written[id(node)], full)
            continue
        with open(full, "wb") as f:
            f.write(data)
        written[id(node)] = full
