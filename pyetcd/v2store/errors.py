"""The v2 API's errors: etcd's error codes, messages and HTTP statuses."""
from __future__ import annotations

from pyetcd.etcdctl.printer import go_dumps  # (Go's encoding/json text)

KEY_NOT_FOUND, TEST_FAILED, NOT_FILE, NOT_DIR, NODE_EXIST, ROOT_READ_ONLY, DIR_NOT_EMPTY = \
    100, 101, 102, 104, 105, 107, 108
PREV_VALUE_REQUIRED, TTL_NAN, INDEX_NAN, INVALID_FIELD, INVALID_FORM = 201, 202, 203, 209, 210
REFRESH_VALUE, REFRESH_TTL_REQUIRED = 211, 212
EVENT_INDEX_CLEARED = 401

MESSAGES = {
    KEY_NOT_FOUND: "Key not found",
    TEST_FAILED: "Compare failed",
    NOT_FILE: "Not a file",
    NOT_DIR: "Not a directory",
    NODE_EXIST: "Key already exists",
    ROOT_READ_ONLY: "Root is read only",
    DIR_NOT_EMPTY: "Directory not empty",
    PREV_VALUE_REQUIRED: "PrevValue is Required in POST form",
    TTL_NAN: "The given TTL in POST form is not a number",
    INDEX_NAN: "The given index in POST form is not a number",
    INVALID_FIELD: "Invalid field",
    INVALID_FORM: "Invalid POST form",
    REFRESH_VALUE: "Value provided on refresh",
    REFRESH_TTL_REQUIRED: "A TTL must be provided on refresh",
    EVENT_INDEX_CLEARED: "The event in requested index is outdated and cleared",
}
_STATUS = {KEY_NOT_FOUND: 404, NOT_FILE: 403, DIR_NOT_EMPTY: 403, TEST_FAILED: 412, NODE_EXIST: 412}


class V2Error(Exception):
    def __init__(self, code: int, cause: str = "", index: int = 0) -> None:
        super().__init__(f"{code}: {MESSAGES[code]} ({cause}) [{index}]")
        self.code, self.cause, self.index = code, cause, index

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 400)

    def to_json(self) -> bytes:
        body: dict = {"errorCode": self.code, "message": MESSAGES[self.code]}
        if self.cause:
            body["cause"] = self.cause
        body["index"] = self.index
        return go_dumps(body).encode("utf-8", "surrogateescape") + b"\n"
