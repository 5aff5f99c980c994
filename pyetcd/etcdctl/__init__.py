"""pyetcd's etcdctl: the v3 command-line client, output- and exit-code-compatible with etcdctl 3.5.1.

Entry point ``pyetcd.etcdctl:main`` (also ``python -m pyetcd.etcdctl``). Modules import lazily so
that every short-lived invocation starts fast.
"""
import os
import sys


def main(argv=None) -> None:
    """Run one etcdctl command and exit with its code.

    Exits through os._exit once output is flushed: waiting for grpc's channel threads at
    interpreter shutdown only costs time for a one-shot command.
    """
    code = 1
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC core's own log lines are not etcdctl's output
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed stdout ends the process, as it does a Go program
    try:
        from pyetcd.etcdctl.app import main as run

        code = run(argv)
    except BaseException:  # an unexpected error must still end the process, with its traceback
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)
