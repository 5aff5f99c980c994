"""The v2 store's tree and its writes, with etcd's semantics (set, create, update,
compareAndSwap, delete, compareAndDelete, expire). Every successful write takes the next
index; a failed one changes nothing. Reads and writes never look at a clock: expiry happens
only in ``expire(now)``, which the server applies from the leader's SYNC requests."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyetcd.v2store import errors
from pyetcd.v2store.errors import V2Error
from pyetcd.v2store.node import Node, join

STAT_NAMES = ("getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess", "deleteFail",
              "updateSuccess", "updateFail", "createSuccess", "createFail", "compareAndSwapSuccess",
              "compareAndSwapFail", "compareAndDeleteSuccess", "compareAndDeleteFail", "expireCount")
_STAT_OF = {"set": "sets", "create": "create", "update": "update", "compareAndSwap": "compareAndSwap",
            "delete": "delete", "compareAndDelete": "compareAndDelete", "get": "gets"}


@dataclass
class Event:
    action: str
    node: dict                      # Node.extern() forms
    prev: dict | None
    index: int                      # the store's index after the event

    @property
    def key(self) -> str:
        return self.node.get("key", "/")

    @property
    def is_created(self) -> bool:
        return self.action == "create" or (self.action == "set" and self.prev is None)


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))

    def count(self, action: str, ok: bool) -> None:
        name = _STAT_OF[action]
        self.counts[name + ("Success" if ok else "Fail")] += 1


def split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def clean(path: str) -> str:
    return "/" + "/".join(split(path))


class Store:
    def __init__(self) -> None:
        self.root = Node("/", None, 0, 0)
        self.index = 0
        self.version_set = False  # (the cluster version's write, see bump)
        self.stats = Stats()

    # ---- persistence ---------------------------------------------------------------------

    def to_blob(self) -> bytes:
        return json.dumps({"index": self.index, "version_set": self.version_set,
                           "root": self.root.to_record()}, separators=(",", ":")).encode()

    @classmethod
    def from_blob(cls, blob: bytes) -> Store:
        data = json.loads(blob)
        store = cls()
        store.index, store.version_set = data["index"], data["version_set"]
        store.root = Node.from_record("/", data["root"])
        return store

    # ---- reads ---------------------------------------------------------------------------

    def get(self, path: str, recursive: bool = False, sort: bool = False) -> Event:
        try:
            node = self._walk(clean(path))
        except V2Error:
            self.stats.count("get", False)
            raise
        self.stats.count("get", True)
        return Event("get", node.extern(recursive, list_children=True, sort=sort), None, self.index)

    def _walk(self, path: str) -> Node:
        node = self.root
        for name in split(path):
            if not node.is_dir:
                raise V2Error(errors.NOT_DIR, node.key, self.index)
            child = node.children.get(name)
            if child is None:
                raise V2Error(errors.KEY_NOT_FOUND, join(node.key, name), self.index)
            node = child
        return node

    # ---- writes --------------------------------------------------------------------------

    def bump(self, action: str) -> None:
        """A write of etcd's own v2 keys (/0: the member list, the cluster version), which pyetcd
        keeps elsewhere but counts, so that v2 indexes match etcd's."""
        self.index += 1
        self.stats.count(action, True)

    def set(self, path: str, dir: bool, value: str, expire: int, refresh: bool = False) -> Event:
        def run() -> Event:
            existing = self._find(clean(path)) if refresh else None
            kept = existing.value if existing is not None and not existing.is_dir else value
            return self._set(clean(path), dir, kept, expire, "set")
        return self._counted("set", run)

    def create(self, path: str, dir: bool, value: str, expire: int, unique: bool = False) -> Event:
        def run() -> Event:
            target = clean(path)
            if unique:
                self._check_writable_dir(target)
                target = join(target, f"{self.index + 1:020d}")
            return self._set(target, dir, value, expire, "create")
        return self._counted("create", run)

    def update(self, path: str, value: str | None, expire: int, refresh: bool = False) -> Event:
        def run() -> Event:
            node = self._writable(clean(path))
            if node.is_dir and value:
                raise V2Error(errors.NOT_FILE, node.key, self.index)
            prev = node.extern()
            self.index += 1
            if not node.is_dir and not refresh:
                node.value = value or ""
            node.modified, node.expire = self.index, expire
            return Event("update", node.extern(), prev, self.index)
        return self._counted("update", run)

    def compare_and_swap(self, path: str, prev_value: str, prev_index: int, value: str, expire: int,
                         refresh: bool = False) -> Event:
        def run() -> Event:
            node = self._writable(clean(path))
            self._compare(node, prev_value, prev_index)
            prev = node.extern()
            self.index += 1
            if not refresh:
                node.value = value
            node.modified, node.expire = self.index, expire
            return Event("compareAndSwap", node.extern(), prev, self.index)
        return self._counted("compareAndSwap", run)

    def delete(self, path: str, dir: bool, recursive: bool) -> Event:
        def run() -> Event:
            node = self._writable(clean(path))
            if node.is_dir:
                if not dir and not recursive:
                    raise V2Error(errors.NOT_FILE, node.key, self.index)
                if node.children and not recursive:
                    raise V2Error(errors.DIR_NOT_EMPTY, node.key, self.index)
            return self._remove(node, "delete")
        return self._counted("delete", run)

    def compare_and_delete(self, path: str, prev_value: str, prev_index: int) -> Event:
        def run() -> Event:
            node = self._writable(clean(path))
            self._compare(node, prev_value, prev_index)
            return self._remove(node, "compareAndDelete")
        return self._counted("compareAndDelete", run)

    def expire(self, now: int) -> list[Event]:
        """Remove every node whose expiry is at or before ``now`` (Unix ns), one event each."""
        events = []
        for node in self._expired(self.root, now):
            events.append(self._remove(node, "expire"))
            self.stats.counts["expireCount"] += 1
        return events

    def has_ttls(self) -> bool:
        return next(self._with_ttl(self.root), None) is not None

    # ---- helpers -------------------------------------------------------------------------

    def _counted(self, action: str, run) -> Event:
        try:
            event = run()
        except V2Error:
            self.stats.count(action, False)
            raise
        self.stats.count(action, True)
        return event

    def _set(self, path: str, dir: bool, value: str, expire: int, action: str) -> Event:
        if path == "/":
            raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
        names = split(path)
        parent = self.root
        for name in names[:-1]:  # (walked first: a failure must not leave new directories)
            child = parent.children.get(name) if parent.is_dir else None
            if not parent.is_dir:
                raise V2Error(errors.NOT_DIR, parent.key, self.index)
            if child is None:
                break
            parent = child
        if not parent.is_dir:
            raise V2Error(errors.NOT_DIR, parent.key, self.index)
        existing = self._find(path)
        if existing is not None:
            if action == "create":
                raise V2Error(errors.NODE_EXIST, path, self.index)
            if existing.is_dir:
                raise V2Error(errors.NOT_FILE, path, self.index)
        index = self.index = self.index + 1
        parent = self.root
        for name in names[:-1]:
            parent = parent.children.setdefault(name, Node(join(parent.key, name), None, index, index))
        node = Node(path, None if dir else value, index, index, expire)
        parent.children[names[-1]] = node
        return Event(action, node.extern(), existing.extern() if existing else None, index)

    def _check_writable_dir(self, path: str) -> None:
        node = self._find(path)
        if node is not None and not node.is_dir:
            raise V2Error(errors.NOT_DIR, path, self.index)

    def _find(self, path: str) -> Node | None:
        try:
            return self._walk(path)
        except V2Error:
            return None

    def _writable(self, path: str) -> Node:
        if path == "/":
            raise V2Error(errors.ROOT_READ_ONLY, "/", self.index)
        return self._walk(path)

    def _compare(self, node: Node, prev_value: str, prev_index: int) -> None:
        if node.is_dir:
            raise V2Error(errors.NOT_FILE, node.key, self.index)
        value_ok = not prev_value or prev_value == node.value
        index_ok = not prev_index or prev_index == node.modified
        if value_ok and index_ok:
            return
        if not value_ok and not index_ok:
            cause = f"[{prev_value} != {node.value}] [{prev_index} != {node.modified}]"
        elif not value_ok:
            cause = f"[{prev_value} != {node.value}]"
        else:
            cause = f"[{prev_index} != {node.modified}]"
        raise V2Error(errors.TEST_FAILED, cause, self.index)

    def _remove(self, node: Node, action: str) -> Event:
        prev = node.extern()
        self.index += 1
        parent = self._walk(node.key.rsplit("/", 1)[0] or "/")
        del parent.children[node.key.rsplit("/", 1)[1]]
        after = node.extern(with_value=False)
        after.pop("_expire", None)
        after["modifiedIndex"] = self.index
        after["createdIndex"] = node.created
        return Event(action, after, prev, self.index)

    def _expired(self, node: Node, now: int):
        found = []
        for child in list(node.children.values()):
            if child.expire and child.expire <= now:
                found.append(child)
            elif child.is_dir:
                found.extend(self._expired(child, now))
        return found

    def _with_ttl(self, node: Node):
        for child in node.children.values():
            if child.expire:
                yield child
            if child.is_dir:
                yield from self._with_ttl(child)
