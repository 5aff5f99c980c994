"""etcd-style structured logs: one JSON object per line on stderr, like etcd's zap logger.

    {"level":"info","ts":"2026-11-26T04:17:24.553Z","caller":"etcdserver/server.py:88","msg":"...", "key": value}

Call sites pass fields with ``extra={"fields": {...}}`` or use ``log(logger, level, msg, **fields)``.
"""
from __future__ import annotations

import json
import logging
import sys
import time

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "panic": logging.CRITICAL, "fatal": logging.CRITICAL}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "fatal"}


class ZapFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "level": _NAMES.get(record.levelno, "info"),
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "caller": f"{record.module}/{record.filename}:{record.lineno}",
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup(level: str = "info") -> None:
    """Route pyetcd's loggers to stderr as JSON lines at ``level`` (etcd's --log-level)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ZapFormatter())
    root = logging.getLogger("pyetcd")
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    root.propagate = False


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    logger.log(level, msg, extra={"fields": fields}, stacklevel=2)
