"""The blocking client's watch: an iterator of WatchResponses that survives reconnects.

    with client.watch("foo", prefix=True, start_revision=5, prev_kv=True) as w:
        for resp in w:                    # one WatchResponse per batch (events of one or more revisions)
            for ev in resp.events: ...
            if done: w.cancel()           # ends the iteration (also from another thread)

A stream that breaks (the member stopped, a connection reset) is opened again, on the next endpoint,
from the revision after the last one delivered: no event is missed or repeated. A compacted start
revision raises ``WatchCompacted``; another cancel by the server raises ``WatchCanceled``.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import grpc

from pyetcd.client import _common as c
from pyetcd.client.watch_state import REQUIRE_LEADER, WatchCursor, progress_request
from pyetcd.proto.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from pyetcd.client.sync import Client

MAX_BACKOFF = 0.5


def is_stream_break(err: grpc.RpcError) -> bool:
    """Errors after which a watch/keep-alive stream is opened again instead of failing."""
    return err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class Watch:
    """Iterator of ``WatchResponse`` (events and, if asked, progress notifications); see the module doc."""

    def __init__(self, client: Client, cursor: WatchCursor, require_leader: bool = True) -> None:
        self._client, self._cursor = client, cursor
        self._require_leader = require_leader
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None  # grpc's response iterator of the open stream
        self._requests: Optional[queue.Queue[Optional[rpc_pb2.WatchRequest]]] = None
        self._endpoint = client._current

    @property
    def next_revision(self) -> int:
        """The revision the watch continues from (all below it were delivered)."""
        return self._cursor.next_revision

    def _open(self) -> None:
        ep = self._client.endpoints[self._endpoint % len(self._client.endpoints)]
        requests: queue.Queue[Optional[rpc_pb2.WatchRequest]] = queue.Queue()
        requests.put(self._cursor.create_request())
        metadata = self._client._stream_metadata(ep) + ((REQUIRE_LEADER,) if self._require_leader else ())
        call = self._client._stub(ep, "watch").Watch(iter(requests.get, None), metadata=metadata)
        with self._lock:
            self._call, self._requests = call, requests
        if self._closed.is_set():
            self._drop()

    def _drop(self) -> None:
        with self._lock:
            call, requests, self._call, self._requests = self._call, self._requests, None, None
        if requests is not None:
            requests.put(None)
        if call is not None:
            call.cancel()

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> rpc_pb2.WatchResponse:
        backoff = 0.02
        while True:
            if self._closed.is_set():
                raise StopIteration
            try:
                if self._call is None:
                    self._open()
                resp = next(self._call)
            except (grpc.RpcError, StopIteration) as exc:
                if self._closed.is_set():
                    raise StopIteration from None
                if isinstance(exc, grpc.RpcError) and not is_stream_break(exc):
                    raise c.map_error(exc) from None
                self._drop()
                self._endpoint += 1
                self._closed.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            except Exception:
                self._drop()
                raise
            try:
                out = self._cursor.accept(resp)
            except Exception:
                self._drop()
                raise
            if out is not None:
                return out

    def request_progress(self) -> None:
        """Ask the server for a progress notification (a response with the current revision)."""
        with self._lock:
            if self._requests is not None:
                self._requests.put(progress_request())

    def cancel(self) -> None:
        """Stop the watch: the iteration ends (safe from any thread)."""
        self._closed.set()
        self._drop()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def run_callback(watch: Watch, callback: Callable[[rpc_pb2.WatchResponse], None],
                 on_error: Optional[Callable[[Exception], None]] = None) -> threading.Thread:
    """Feed every response of ``watch`` to ``callback`` on a daemon thread; an error ends it (and goes
    to ``on_error``). ``watch.cancel()`` stops it."""
    def loop() -> None:
        try:
            for resp in watch:
                callback(resp)
        except Exception as exc:  # delivered, not lost in a thread
            if on_error is not None:
                on_error(exc)

    thread = threading.Thread(target=loop, name="pyetcd-watch", daemon=True)
    thread.start()
    return thread
