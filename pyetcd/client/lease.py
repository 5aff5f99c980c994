"""The blocking client's lease keep-alive: a background thread renewing one lease.

    with client.keep_alive(lease_id) as ka:       # renews every TTL/3 until the block ends
        ...
    ka.expired                                    # True if the lease was gone (revoked, expired)

``on_response`` sees every LeaseKeepAliveResponse (TTL <= 0: the lease is gone, the thread ends).
A broken stream is opened again on the next endpoint.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import grpc

from pyetcd.client import _common as c
from pyetcd.client.watch import MAX_BACKOFF, is_stream_break
from pyetcd.errors import ErrLeaseNotFound
from pyetcd.proto.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from pyetcd.client.sync import Client


def renew_interval(ttl: int) -> float:
    """How long to wait between renewals: a third of the TTL, as the Go client does."""
    return max(ttl / 3.0, 0.5)


class KeepAlive:
    """Renews ``lease_id`` on a daemon thread until ``stop()`` (or the lease is gone)."""

    def __init__(self, client: Client, lease_id: int,
                 on_response: Optional[Callable[[rpc_pb2.LeaseKeepAliveResponse], None]] = None) -> None:
        self._client, self.lease_id, self._on_response = client, lease_id, on_response
        self._stop = threading.Event()
        self.done = threading.Event()  # set when the thread has ended
        self.expired = False
        self.ttl = 0
        self.error: Optional[Exception] = None
        self._call: Any = None  # grpc's response iterator of the open stream
        self._thread = threading.Thread(target=self._run, name="pyetcd-keepalive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff, endpoint = 0.02, self._client._current
        try:
            while not self._stop.is_set():
                try:
                    if self._renew_on(self._client.endpoints[endpoint % len(self._client.endpoints)]):
                        return
                    backoff = 0.02
                except grpc.RpcError as err:
                    if self._stop.is_set():
                        return
                    if not is_stream_break(err):
                        self.error = c.map_error(err)
                        return
                    endpoint += 1
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self.done.set()

    def _renew_on(self, ep: str) -> bool:
        """Renew over one stream until it breaks (raises) or the work is over (True)."""
        requests: queue.Queue[Optional[rpc_pb2.LeaseKeepAliveRequest]] = queue.Queue()
        call = self._client._stub(ep, "lease").LeaseKeepAlive(iter(requests.get, None),
                                                               metadata=self._client._stream_metadata(ep))
        self._call = call
        try:
            while not self._stop.is_set():
                requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
                resp = next(call)
                if resp.TTL <= 0:
                    self.expired = True
                if self._on_response is not None:
                    self._on_response(resp)
                if self.expired:
                    return True
                self.ttl = resp.TTL
                if self._stop.wait(renew_interval(resp.TTL)):
                    return True
            return True
        finally:
            requests.put(None)
            call.cancel()

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Stop renewing and wait for the thread (the lease itself is left to expire or be revoked)."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the thread ends (lease gone, stop, error); False on timeout."""
        return self.done.wait(timeout)

    def __enter__(self) -> "KeepAlive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keep_alive_once(client: Client, lease_id: int, timeout: Optional[float] = None) -> rpc_pb2.LeaseKeepAliveResponse:
    """Renew once; a lease that is gone raises EtcdError NotFound ('requested lease not found')."""
    ep = client.endpoints[client._current]
    call = client._stub(ep, "lease").LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]),
                                                    metadata=client._stream_metadata(ep),
                                                    timeout=client.timeout if timeout is None else timeout)
    try:
        resp = next(call)
    except grpc.RpcError as err:
        raise c.map_error(err, client.last_connect_error) from None
    finally:
        call.cancel()
    if resp.TTL <= 0:
        raise ErrLeaseNotFound
    out: rpc_pb2.LeaseKeepAliveResponse = resp
    return out
