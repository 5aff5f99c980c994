"""grpc-go's text for a failed call ("rpc error: code = X desc = Y"), as etcdctl logs it."""
from __future__ import annotations

import re

from pyetcd.errors import EtcdDeadlineExceeded, EtcdError

GO_CODE_NAMES = ["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
                 "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
                 "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"]


def status_text(exc: EtcdError, client) -> str:
    name = GO_CODE_NAMES[exc.code] if 0 <= exc.code < len(GO_CODE_NAMES) else f"Code({exc.code})"
    # grpc-go's wording for the client-side send limit
    desc = re.sub(r"^(CLIENT: )?Sent message larger than max", "trying to send message larger than max", exc.message)
    if isinstance(exc, EtcdDeadlineExceeded) and client is not None and client.last_connect_error:
        addr = client.last_connect_error.split("://", 1)[-1]
        details = client.last_connect_details.lower()
        if "ssl" in details or "handshake" in details or "certificate" in details:
            cause = "authentication handshake failed: x509: certificate signed by unknown authority"
        else:
            cause = f"Error while dialing dial tcp {addr}: connect: connection refused"
        desc = f'latest balancer error: last connection error: connection error: desc = "transport: {cause}"'
    return f"rpc error: code = {name} desc = {desc}"
