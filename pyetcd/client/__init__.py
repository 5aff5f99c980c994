"""Python client library for etcd v3 (and pyetcd): ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Keys and values accept ``str`` or ``bytes``. Errors are ``pyetcd.errors.EtcdError`` with etcd's gRPC
code and message; ``EtcdConnectionFailed`` / ``EtcdDeadlineExceeded`` when no endpoint answered in time.

Watch: ``client.watch(key, prefix=..., start_revision=..., prev_kv=..., filters=..., progress_notify=...)``
(an iterator that resumes after reconnects; ``WatchCompacted`` / ``WatchCanceled`` when the server
cancels it) or ``client.add_watch_callback``. Leases: ``lease_grant``, ``lease_revoke``,
``lease_time_to_live``, ``leases``, ``keep_alive_once``, ``keep_alive`` (a background renewer).
Locks and elections: ``pyetcd.client.concurrency`` (``aio_concurrency`` for asyncio).
"""
from pyetcd.client._common import TLS, prefix_end, range_request, put_request, delete_request, request_op, txn_request
from pyetcd.client.aio import AsyncClient
from pyetcd.client.sync import Client
from pyetcd.client.watch_state import WatchCanceled, WatchCompacted

__all__ = ["Client", "AsyncClient", "TLS", "prefix_end", "range_request", "put_request", "delete_request",
           "request_op", "txn_request", "WatchCanceled", "WatchCompacted"]
