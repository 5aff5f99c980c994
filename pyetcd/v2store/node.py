"""A node of the v2 tree (a file or a directory) and its JSON form (etcd's NodeExtern)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

NS = 1_000_000_000


@dataclass
class Node:
    key: str                        # the full path ("/" for the root)
    value: str | None               # None: a directory
    created: int
    modified: int
    expire: int = 0                 # Unix ns; 0: permanent
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return self.value is None

    def extern(self, recursive: bool = False, list_children: bool = False, sort: bool = False,
               with_value: bool = True) -> dict:
        """This node as the API shows it; the expiry stays as "_expire" (see ``render``)."""
        out: dict = {}
        if self.key != "/":
            out["key"] = self.key
        if self.is_dir:
            out["dir"] = True
        elif with_value:
            out["value"] = self.value
        if self.expire:
            out["_expire"] = self.expire
        if self.is_dir and (recursive or list_children):
            names = sorted(self.children) if sort else list(self.children)
            nodes = [self.children[n].extern(recursive, False, sort) for n in names if not n.startswith("_")]
            if nodes:
                out["nodes"] = nodes
        if self.modified:
            out["modifiedIndex"] = self.modified
        if self.created:
            out["createdIndex"] = self.created
        return out

    def to_record(self) -> dict:
        rec: dict = {"v": self.value, "c": self.created, "m": self.modified}
        if self.expire:
            rec["e"] = self.expire
        if self.is_dir:
            rec["n"] = {name: child.to_record() for name, child in self.children.items()}
        return rec

    @classmethod
    def from_record(cls, key: str, rec: dict) -> Node:
        node = cls(key, rec["v"], rec["c"], rec["m"], rec.get("e", 0))
        for name, child in rec.get("n", {}).items():
            node.children[name] = cls.from_record(join(key, name), child)
        return node


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def render(extern: dict, now: int) -> dict:
    """Turn "_expire" into etcd's "expiration" (RFC 3339, ns) and "ttl" (whole seconds left,
    rounded up, as etcd) as of ``now``, keeping etcd's field order."""
    out: dict = {}
    for name, value in extern.items():
        if name == "_expire":
            out["expiration"] = rfc3339(value)
            left = value - now
            ttl = left // NS + (1 if left % NS else 0)
            if ttl:
                out["ttl"] = ttl
        elif name == "nodes":
            out["nodes"] = [render(child, now) for child in value]
        else:
            out[name] = value
    return out


def rfc3339(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    seconds, frac = divmod(ns, NS)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{frac:09d}".rstrip("0")
    return stamp + ("." + fraction if fraction else "") + "Z"
