"""Running a user's command the way Go's os/exec does for etcdctl (watch, lock): inherited stdio,
extra environment variables, and Go's error texts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Optional


def run(args: list[str], env: dict[str, str]) -> tuple[Optional[str], int]:
    """Run ``args``; (None, 0) on success, else (Go's error text, the exit code etcdctl uses)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        proc = subprocess.run(args, env={**os.environ, **env})
    except FileNotFoundError:
        name = args[0]
        if "/" in name:
            return f'fork/exec {name}: no such file or directory', 1
        return f'exec: "{name}": executable file not found in $PATH', 1
    except PermissionError:
        return f"fork/exec {args[0]}: permission denied", 1
    if proc.returncode == 0:
        return None, 0
    if proc.returncode < 0:
        return f"signal: {_signal_name(-proc.returncode)}", -1
    return f"exit status {proc.returncode}", proc.returncode


def _signal_name(num: int) -> str:
    """Go's syscall.Signal String() for the common signals."""
    names = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGINT: "interrupt",
             signal.SIGHUP: "hangup", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
             signal.SIGPIPE: "broken pipe", signal.SIGQUIT: "quit"}
    return names.get(num, f"signal {num}")
