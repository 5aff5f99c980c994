"""The v2 HTTP API on the client port (--enable-v2): /v2/keys, /v2/members, /v2/stats,
/v2/machines. Thin: the form is parsed into etcd's v2 Request; pyetcd/v2store does the rest."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from pyetcd.embed.http1 import HttpRequest, HttpResponse
from pyetcd.etcdctl.printer import go_dumps  # (Go's encoding/json text: etcd's bodies)
from pyetcd.httpapi.v2members import PREFIX as MEMBERS_PREFIX, MembersHandler
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.server.v2_api import Request
from pyetcd.v2store import errors
from pyetcd.v2store.errors import V2Error
from pyetcd.v2store.node import render, rfc3339
from pyetcd.v2store.store import Event

KEYS_PREFIX = "/v2/keys"
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_KEY_METHODS = ("HEAD", "GET", "PUT", "POST", "DELETE")


def _json(value) -> bytes:
    return go_dumps(value).encode("utf-8", "surrogateescape") + b"\n"


def _form(req: HttpRequest) -> dict[str, list[str]]:
    """Go's Request.Form: the urlencoded body's values (PUT, POST), then the query's."""
    form: dict[str, list[str]] = {}
    pairs = []
    if req.method in ("PUT", "POST", "PATCH") and \
            req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        pairs += parse_qsl(req.body.decode(errors="replace"), keep_blank_values=True)
    pairs += parse_qsl(req.query, keep_blank_values=True)
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _bool(form: dict[str, list[str]], name: str) -> bool:
    if name not in form:
        return False
    value = _BOOLS.get(form[name][0])
    if value is None:
        raise V2Error(errors.INVALID_FIELD, f"invalid value for {name}")
    return value


def _uint(form: dict[str, list[str]], name: str, code: int) -> int:
    text = form.get(name, ["0"])[0]
    if not text.isdigit() or not text.isascii():
        raise V2Error(code, f'invalid value for "{name}"')
    return int(text)


def parse_key_request(req: HttpRequest, path: str) -> Request:
    """etcd's parseKeyRequest: the form's fields, checked in etcd's order."""
    form = _form(req)
    out = Request(Method=req.method, Path=path)
    out.PrevIndex = _uint(form, "prevIndex", errors.INDEX_NAN)
    out.Since = _uint(form, "waitIndex", errors.INDEX_NAN)
    out.Recursive = _bool(form, "recursive")
    out.Sorted = _bool(form, "sorted")
    out.Wait = _bool(form, "wait")
    out.Dir = _bool(form, "dir")
    out.Quorum = _bool(form, "quorum")
    out.Stream = _bool(form, "stream")
    if "prevValue" in form and form["prevValue"][0] == "":
        raise V2Error(errors.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty')
    out.PrevValue = form.get("prevValue", [""])[0]
    out.Val = form.get("value", [""])[0]
    ttl = None
    if form.get("ttl", [""])[0]:
        ttl = _uint(form, "ttl", errors.TTL_NAN)
    if "prevExist" in form:
        out.PrevExist = _bool(form, "prevExist")
    if "refresh" in form:
        out.Refresh = _bool(form, "refresh")
        if out.Refresh:
            if out.Val:
                raise V2Error(errors.REFRESH_VALUE, "A value was provided on a refresh")
            if ttl is None:
                raise V2Error(errors.REFRESH_TTL_REQUIRED, "No TTL value set")
    if ttl is not None:
        out.Expiration = time.time_ns() + ttl * 1_000_000_000
    return out


class V2Handler:
    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.members = MembersHandler(server)
        self.start_time = time.time_ns()

    def _headers(self, index: int, raft: bool = True) -> list[tuple[str, str]]:
        s = self.server
        headers = [("Content-Type", "application/json"), ("X-Etcd-Cluster-Id", f"{s.cluster_id:x}"),
                   ("X-Etcd-Index", str(index))]
        if raft:
            headers += [("X-Raft-Index", str(s.applied_index)), ("X-Raft-Term", str(s.raft.term))]
        return headers

    async def handle(self, req: HttpRequest) -> HttpResponse:
        path = req.path
        if path == KEYS_PREFIX or path.startswith(KEYS_PREFIX + "/"):
            if req.method not in _KEY_METHODS:
                return HttpResponse(405, [("Allow", ",".join(_KEY_METHODS)), *_TEXT], b"Method Not Allowed\n")
            try:
                return await self._keys(req, path[len(KEYS_PREFIX):] or "/")
            except V2Error as err:
                return HttpResponse(err.status, self._headers(err.index, raft=False), err.to_json())
        if path == MEMBERS_PREFIX or path.startswith(MEMBERS_PREFIX + "/"):
            return await self.members.handle(req)
        if path == "/v2/machines":
            urls = [u for m in self.server.membership.sorted_members() for u in m.clientURLs]
            return HttpResponse(200, _TEXT, ", ".join(urls).encode())
        if path == "/v2/stats/store":
            counts = dict(self.server.v2.store.stats.counts, watchers=self.server.v2.hub.count)
            return HttpResponse(200, [("Content-Type", "application/json")], _json(counts)[:-1])
        if path == "/v2/stats/self":
            return HttpResponse(200, [("Content-Type", "application/json")], _json(self._self_stats())[:-1])
        if path == "/v2/stats/leader":
            if not self.server.is_leader:
                return HttpResponse(403, [("Content-Type", "application/json")], b'{"message":"not current leader"}')
            body = {"leader": f"{self.server.member_id:x}", "followers": {}}
            return HttpResponse(200, [("Content-Type", "application/json")], _json(body)[:-1])
        return HttpResponse(404, _TEXT, b"404 page not found\n")

    def _self_stats(self) -> dict:
        s = self.server
        return {"name": s.cfg.name, "id": f"{s.member_id:x}",
                "state": "StateLeader" if s.is_leader else "StateFollower",
                "startTime": rfc3339(self.start_time),
                "leaderInfo": {"leader": f"{s.raft.lead:x}"},
                "recvAppendRequestCnt": 0, "sendAppendRequestCnt": 0}

    async def _keys(self, http: HttpRequest, path: str) -> HttpResponse:
        req = parse_key_request(http, path)
        v2 = self.server.v2
        if http.method in ("GET", "HEAD"):
            if req.Wait:
                return await self._watch(req)
            if req.Quorum:
                await self.server.read_index.barrier()
            event = v2.store.get(req.Path, req.Recursive, req.Sorted)
            body = b"" if http.method == "HEAD" else self._event_json(event)
            return HttpResponse(200, self._headers(event.index), body)
        event = await v2.propose(self.server, req)
        return HttpResponse(201 if event.is_created else 200, self._headers(event.index), self._event_json(event))

    async def _watch(self, req: Request) -> HttpResponse:
        """A long poll: one event, or with stream=true every event from then on. Headers go out
        first when nothing has matched yet (etcd flushes them before waiting)."""
        v2 = self.server.v2
        key = req.Path.rstrip("/") or "/"
        headers = self._headers(v2.store.index)
        found = v2.hub.watch(key, req.Recursive, req.Since, v2.store.index)
        if isinstance(found, Event) and not req.Stream:
            return HttpResponse(200, headers, self._event_json(found))

        async def events(found: Event | asyncio.Future) -> AsyncIterator[bytes]:
            try:
                while True:
                    event = found if isinstance(found, Event) else await found
                    yield self._event_json(event)
                    if not req.Stream:
                        return
                    try:
                        found = v2.hub.watch(key, req.Recursive, event.index + 1, v2.store.index)
                    except V2Error:
                        return  # (fell out of the history: the client watches again, as with etcd)
            finally:
                if isinstance(found, asyncio.Future):
                    found.cancel()  # (the client went away: the hub forgets the waiter)
        return HttpResponse(200, headers, events(found))

    @staticmethod
    def _event_json(event: Event) -> bytes:
        now = time.time_ns()
        out = {"action": event.action, "node": render(event.node, now)}
        if event.prev is not None:
            out["prevNode"] = render(event.prev, now)
        return _json(out)
