"""etcd's errors as clients see them: a gRPC status code and etcd's exact message.

Go and Python clients map errors by these strings, so the texts are part of the contract.
Layers below the API raise ``EtcdError``; the API layer turns it into a gRPC status.
"""
from __future__ import annotations

# gRPC status codes (numbers from the gRPC spec), so lower layers need no grpc import.
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class EtcdError(Exception):
    """An error with etcd's gRPC code and message.

    Each of etcd's errors is a subclass named as etcd names it (``ErrCompacted``, ...), so
    ``raise ErrCompacted`` and ``except ErrCompacted`` both work, on the server and in clients
    (``from_status`` turns a code and message off the wire back into its class). Errors compare
    equal by code and message, whether instance or class.
    """

    code: int = UNKNOWN
    message: str = ""
    during_auth = False  # set by the clients: the call failed while logging in

    def __init__(self, code: int | None = None, message: str | None = None) -> None:
        if code is not None:
            self.code = code
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, type) and issubclass(other, EtcdError) or isinstance(other, EtcdError):
            return (self.code, self.message) == (other.code, other.message)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


_BY_STATUS: dict[tuple[int, str], type[EtcdError]] = {}


def _e(code: int, message: str) -> type[EtcdError]:
    cls = type("EtcdError", (EtcdError,), {"code": code, "message": message, "__module__": __name__,
                                            "__doc__": message})
    _BY_STATUS[(code, message)] = cls
    return cls


def from_status(code: int, message: str) -> EtcdError:
    """The error a gRPC status stands for: etcd's own class when the message is one of etcd's."""
    cls = _BY_STATUS.get((code, message))
    return cls() if cls is not None else EtcdError(code, message)


# KV / MVCC
ErrEmptyKey = _e(INVALID_ARGUMENT, "etcdserver: key is not provided")
ErrKeyNotFound = _e(INVALID_ARGUMENT, "etcdserver: key not found")
ErrValueProvided = _e(INVALID_ARGUMENT, "etcdserver: value is provided")
ErrLeaseProvided = _e(INVALID_ARGUMENT, "etcdserver: lease is provided")
ErrTooManyOps = _e(INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
ErrDuplicateKey = _e(INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
ErrInvalidSortOption = _e(INVALID_ARGUMENT, "etcdserver: invalid sort option")
ErrCompacted = _e(OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
ErrFutureRev = _e(OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
ErrNoSpace = _e(RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
ErrRequestTooLarge = _e(INVALID_ARGUMENT, "etcdserver: request is too large")

# Lease
ErrLeaseNotFound = _e(NOT_FOUND, "etcdserver: requested lease not found")
ErrLeaseExist = _e(FAILED_PRECONDITION, "etcdserver: lease already exists")
ErrLeaseTTLTooLarge = _e(OUT_OF_RANGE, "etcdserver: too large lease TTL")

# Membership
ErrMemberExist = _e(FAILED_PRECONDITION, "etcdserver: member ID already exist")
ErrPeerURLExist = _e(FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
ErrMemberNotEnoughStarted = _e(FAILED_PRECONDITION, "etcdserver: re-configuration failed due to not enough started members")
ErrMemberBadURLs = _e(INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
ErrMemberNotFound = _e(NOT_FOUND, "etcdserver: member not found")
ErrMemberNotLearner = _e(FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
ErrLearnerNotReady = _e(FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader")
ErrTooManyLearners = _e(FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")
ErrNotSupportedForLearner = _e(UNAVAILABLE, "etcdserver: rpc not supported for learner")
ErrBadLeaderTransferee = _e(FAILED_PRECONDITION, "etcdserver: bad leader transferee")
ErrNotCapable = _e(UNAVAILABLE, "etcdserver: not capable")

# Auth
ErrRootUserNotExist = _e(FAILED_PRECONDITION, "etcdserver: root user does not exist")
ErrRootRoleNotExist = _e(FAILED_PRECONDITION, "etcdserver: root user does not have root role")
ErrUserAlreadyExist = _e(FAILED_PRECONDITION, "etcdserver: user name already exists")
ErrUserEmpty = _e(INVALID_ARGUMENT, "etcdserver: user name is empty")
ErrUserNotFound = _e(FAILED_PRECONDITION, "etcdserver: user name not found")
ErrRoleAlreadyExist = _e(FAILED_PRECONDITION, "etcdserver: role name already exists")
ErrRoleNotFound = _e(FAILED_PRECONDITION, "etcdserver: role name not found")
ErrRoleEmpty = _e(INVALID_ARGUMENT, "etcdserver: role name is empty")
ErrAuthFailed = _e(INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")
ErrPermissionDenied = _e(PERMISSION_DENIED, "etcdserver: permission denied")
ErrRoleNotGranted = _e(FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
ErrPermissionNotGranted = _e(FAILED_PRECONDITION, "etcdserver: permission is not granted to the role")
ErrAuthNotEnabled = _e(FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
ErrInvalidAuthToken = _e(UNAUTHENTICATED, "etcdserver: invalid auth token")
ErrInvalidAuthMgmt = _e(INVALID_ARGUMENT, "etcdserver: invalid auth management")
# etcd 3.5.1 answers these with its auth package's own error, untranslated (code Unknown)
ErrAuthOldRevision = _e(UNKNOWN, "auth: revision in header is old")
ErrVerifyOnly = _e(UNKNOWN, "auth: token signing attempted with verify-only key")
ErrNoPasswordUser = _e(UNKNOWN, "auth: authentication failed, password was given for no password user")
ErrTTLZero = _e(INVALID_ARGUMENT, "etcdserver: ttl is 0")

# Server and cluster
ErrNoLeader = _e(UNAVAILABLE, "etcdserver: no leader")
ErrNotLeader = _e(FAILED_PRECONDITION, "etcdserver: not leader")
ErrStopped = _e(UNAVAILABLE, "etcdserver: server stopped")
ErrTimeout = _e(UNAVAILABLE, "etcdserver: request timed out")
ErrTimeoutDueToLeaderFail = _e(UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure")
ErrTimeoutDueToConnectionLost = _e(UNAVAILABLE, "etcdserver: request timed out, possibly due to connection lost")
ErrTimeoutLeaderTransfer = _e(UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long")
ErrLeaderChanged = _e(UNAVAILABLE, "etcdserver: leader changed")
ErrTooManyRequests = _e(RESOURCE_EXHAUSTED, "etcdserver: too many requests")
ErrUnhealthy = _e(UNAVAILABLE, "etcdserver: unhealthy cluster")
ErrCorrupt = _e(DATA_LOSS, "etcdserver: corrupt cluster")


# Client side: the server could not be reached, or the call ran out of time.
class EtcdConnectionFailed(EtcdError):
    """No endpoint answered (connection refused, unreachable) before the call's deadline."""


class EtcdDeadlineExceeded(EtcdConnectionFailed):
    """The call's deadline passed; the message is Go's ``context deadline exceeded``."""

    connect_error = ""  # the endpoint of the last connection failure before it, if any


def _name_classes() -> None:
    for name, value in globals().items():
        if isinstance(value, type) and value.__name__ == "EtcdError" and value is not EtcdError:
            value.__name__ = value.__qualname__ = name


_name_classes()
