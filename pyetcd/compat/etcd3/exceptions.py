"""python-etcd3's exceptions (``etcd3.exceptions``)."""
from __future__ import annotations

from pyetcd import errors


class Etcd3Exception(Exception):
    pass


class WatchTimedOut(Etcd3Exception):
    pass


class InternalServerError(Etcd3Exception):
    pass


class ConnectionFailedError(Etcd3Exception):
    pass


class ConnectionTimeoutError(Etcd3Exception):
    pass


class PreconditionFailedError(Etcd3Exception):
    pass


class RevisionCompactedError(Etcd3Exception):
    def __init__(self, compacted_revision: int) -> None:
        self.compacted_revision = compacted_revision
        super().__init__()


_BY_CODE = {errors.UNAVAILABLE: ConnectionFailedError, errors.DEADLINE_EXCEEDED: ConnectionTimeoutError,
            errors.FAILED_PRECONDITION: PreconditionFailedError, errors.INTERNAL: InternalServerError}


def translated(err: errors.EtcdError) -> Exception:
    """What python-etcd3 raises for a failed call: its class for these codes, else pyetcd's
    error itself (where python-etcd3 lets grpc.RpcError through)."""
    if isinstance(err, errors.EtcdDeadlineExceeded):
        return ConnectionTimeoutError(err.message)
    if isinstance(err, errors.EtcdConnectionFailed):
        return ConnectionFailedError(err.message)
    cls = _BY_CODE.get(err.code)
    return cls(err.message) if cls is not None else err
