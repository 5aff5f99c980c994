"""The run's trace: what happened, on the virtual clock, and which member it happened to.

Every component writes one line per event (faults, restarts, client calls, the members' own
log records at WARNING and above, or all of them when verbose). A failure prints the tail of
the trace; ``digest()`` is the same for two runs of a seed exactly when they did the same.
Errors that escaped a member's code (an exception in a callback, a task that failed unseen)
are collected apart: the checks decide which of them an injected fault explains.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from membersim.process import CURRENT


@dataclass
class EscapedError:
    time: float
    process: str
    what: str
    exc: BaseException | None


class Trace:
    def __init__(self, loop: asyncio.AbstractEventLoop, run_dir: str, verbose: bool = False) -> None:
        self.loop = loop
        self._run_dir = run_dir.rstrip("/") + "/"  # paths are told relative to it: runs differ in it
        self.verbose = verbose
        self.lines: list[str] = []
        self.errors: list[EscapedError] = []

    def __call__(self, line: str, who: str | None = None) -> None:
        if who is None:
            process = CURRENT.get()
            who = process.name if process is not None else "sim"
        text = f"{self.loop.time():10.4f} {who:<8} {line.replace(self._run_dir, '')}"
        self.lines.append(text)
        if self.verbose:
            print(text)

    def error(self, what: str, exc: BaseException | None) -> None:
        process = CURRENT.get()
        name = process.name if process is not None else "sim"
        self.errors.append(EscapedError(self.loop.time(), name, what, exc))
        self(f"ERROR {what}: {exc!r}", name)

    def tail(self, n: int = 150) -> str:
        return "\n".join(self.lines[-n:])

    def digest(self) -> str:
        h = hashlib.sha256()
        for line in self.lines:
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()[:16]


class TraceLogHandler(logging.Handler):
    """Puts the members' log records (pyetcd's loggers) into the trace."""

    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        text = record.getMessage()
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info and record.exc_info[1] is not None:
            text += f" exc={record.exc_info[1]!r}"
        self.trace(f"log.{record.levelname.lower()} {text}")
