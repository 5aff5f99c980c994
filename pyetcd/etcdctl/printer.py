"""etcdctl's output formats for KV responses: simple, json, fields, protobuf (table: not for KV)."""
from __future__ import annotations

import base64
import json
import sys

from pyetcd.etcdctl.gofmt import go_quote

FORMATS = ("simple", "json", "fields", "protobuf", "table")


def write(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)


_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_dumps(value) -> str:
    """encoding/json.Marshal's text: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "".join(_GO_JSON_ESCAPES.get(ch, ch) for ch in text)


def go_json(msg) -> dict:
    """encoding/json of the Go struct generated for a protobuf message (omitempty everywhere)."""
    out: dict = {}
    seen_oneofs = set()
    for fd in msg.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
            which = msg.WhichOneof(oneof.name)
            if which:
                key = "".join(p.capitalize() for p in oneof.name.split("_"))
                out[key] = {which: go_json(getattr(msg, which))}
            continue
        value = getattr(msg, fd.name)
        if fd.is_repeated:
            if len(value):
                out[fd.name] = [_json_value(fd, v) for v in value]
        elif fd.type == fd.TYPE_MESSAGE:
            if msg.HasField(fd.name):
                out[fd.name] = go_json(value)
        elif value:
            out[fd.name] = _json_value(fd, value)
    return out


def _json_value(fd, value):
    if fd.type == fd.TYPE_MESSAGE:
        return go_json(value)
    if fd.type == fd.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _hex(data: bytes) -> bytes:
    return b"".join(b"\\x%02x" % b for b in data)


class Printer:
    def __init__(self, fmt: str, is_hex: bool) -> None:
        self.fmt = fmt
        self.hex = is_hex
        self.value_only = False

    # -- simple -----------------------------------------------------------------------------
    def simple_kv(self, kv) -> bytes:
        key, value = (_hex(kv.key), _hex(kv.value)) if self.hex else (kv.key, kv.value)
        return (b"" if self.value_only else key + b"\n") + value + b"\n"

    def _simple(self, kind: str, resp) -> bytes:
        if kind == "get":
            return b"".join(self.simple_kv(kv) for kv in resp.kvs)
        if kind == "put":
            return b"OK\n" + (self.simple_kv(resp.prev_kv) if resp.HasField("prev_kv") else b"")
        if kind == "del":
            return b"%d\n" % resp.deleted + b"".join(self.simple_kv(kv) for kv in resp.prev_kvs)
        parts = [b"SUCCESS\n" if resp.succeeded else b"FAILURE\n"]
        for r in resp.responses:
            inner_kind, inner = _txn_inner(r)
            parts.append(b"\n" + self._simple(inner_kind, inner))
        return b"".join(parts)

    # -- fields -----------------------------------------------------------------------------
    @staticmethod
    def fields_kv(prefix: str, kv) -> list[str]:
        return [f'"{prefix}Key" : {go_quote(kv.key)}', f'"{prefix}CreateRevision" : {kv.create_revision}',
                f'"{prefix}ModRevision" : {kv.mod_revision}', f'"{prefix}Version" : {kv.version}',
                f'"{prefix}Value" : {go_quote(kv.value)}', f'"{prefix}Lease" : {kv.lease}']

    def _fields(self, kind: str, resp) -> list[str]:
        lines = header_fields(resp.header)
        if kind == "get":
            for kv in resp.kvs:
                lines += self.fields_kv("", kv)
            lines += [f'"More" : {str(resp.more).lower()}', f'"Count" : {resp.count}']
        elif kind == "put":
            if resp.HasField("prev_kv"):
                lines += self.fields_kv("Prev", resp.prev_kv)
        elif kind == "del":
            lines.append(f'"Deleted" : {resp.deleted}')
            for kv in resp.prev_kvs:
                lines += self.fields_kv("Prev", kv)
        else:
            lines.append(f'"Succeeded" : {str(resp.succeeded).lower()}')
            for r in resp.responses:
                lines += self._fields(*_txn_inner(r))
        return lines

    def show(self, kind: str, resp) -> None:
        """Print a get/put/del/txn response in this format (the caller rejects -w table for KV)."""
        if self.fmt == "simple":
            write(self._simple(kind, resp))
        elif self.fmt == "json":
            write(go_dumps(go_json(resp)).encode("utf-8", "surrogateescape") + b"\n")
        elif self.fmt == "fields":
            write("".join(line + "\n" for line in self._fields(kind, resp)).encode("utf-8", "surrogateescape"))
        elif self.fmt == "protobuf":
            write(resp.SerializeToString())


def header_fields(h) -> list[str]:
    return [f'"ClusterID" : {h.cluster_id}', f'"MemberID" : {h.member_id}',
            f'"Revision" : {h.revision}', f'"RaftTerm" : {h.raft_term}']


def _txn_inner(r) -> tuple[str, object]:
    which = r.WhichOneof("response")
    return {"response_range": "get", "response_put": "put", "response_delete_range": "del",
            "response_txn": "txn"}[which], getattr(r, which)
