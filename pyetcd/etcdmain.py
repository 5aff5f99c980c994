"""`etcd`: parse etcd's flags, start the member and its client listeners, stop on SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

from pyetcd import ETCD_VERSION, logutil
from pyetcd.logutil import log
from pyetcd.server.config import FLAGS, ConfigError, ServerConfig, UsageError, load_config

logger = logging.getLogger("pyetcd.etcdmain")

# gRPC accepts this much above --max-request-bytes so that the server, not the transport,
# answers an oversized request with etcd's own error (etcd does the same).
GRPC_OVERHEAD_BYTES = 512 * 1024


# what the server needs beyond the client's grpcio and protobuf (the `server` extra); YAML only
# for --config-file
SERVER_MODULES = ("lmdb", "hpack", "yaml", "bcrypt", "jwt", "cryptography")


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def usage() -> str:
    lines = ["Usage:", "", "  etcd [flags]", "    Start an etcd server.", "", "Flags:"]
    lines += [f"  --{spec.name} {spec.default!r}" for spec in FLAGS]
    return "\n".join(lines) + "\n"


def version_text() -> str:
    return (f"etcd Version: {ETCD_VERSION}\nGit SHA: pyetcd\n"
            f"Go Version: python{sys.version.split()[0]}\nGo OS/Arch: {sys.platform}\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = load_config(argv, os.environ)
    except UsageError as e:
        sys.stderr.write(f"{e}\n{usage()}")
        sys.exit(2)
    except ConfigError as e:
        logutil.setup()
        log(logger, logging.WARNING, "failed to verify flags", error=str(e))
        sys.exit(1)
    if cfg["version"]:
        sys.stdout.write(version_text())
        return
    if cfg["help"]:
        sys.stdout.write(usage())
        return
    logutil.setup(cfg["log-level"])
    log(logger, logging.INFO, "Running: ", args=[sys.argv[0], *argv])
    missing = missing_server_modules()
    if missing:
        log(logger, logging.CRITICAL, "the server needs pyetcd's server extra: pip install 'pyetcd[server]'",
            missing=missing)
        sys.exit(1)
    from pyetcd.storage.checkpoint import CheckpointError
    from pyetcd.wal import WALError

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(run(cfg))
    except (ConfigError, WALError, CheckpointError, OSError) as e:
        # a start-up failure etcd would report as fatal: one clear line, no traceback
        log(logger, logging.CRITICAL, "failed to start etcd server", error=str(e))
        sys.exit(1)


async def run(cfg: ServerConfig) -> None:
    from pyetcd.embed.serve import listen, serve
    from pyetcd.httpapi.handler import METRICS_PATHS, make_handler
    from pyetcd.server.etcdserver import EtcdServer
    from pyetcd.v3rpc import grpc_methods

    sockets, metrics_sockets = [], []
    try:
        for urls, bound in ((cfg["listen-client-urls"], sockets), (cfg["listen-metrics-urls"], metrics_sockets)):
            for url in urls:
                parts = urlsplit(url)
                bound.append((url, parts.hostname, listen(parts.hostname or "", 2379 if parts.port is None else parts.port)))
    except OSError:
        for _, _, sock in sockets + metrics_sockets:
            sock.close()
        raise
    server = EtcdServer(cfg)
    await server.start()
    methods = grpc_methods(server)
    http_handler = make_handler(server, grpc_methods=methods)
    listeners = []
    try:
        for _, hostname, sock in sockets:
            listener = await serve(sock, grpc_methods=methods, http_handler=http_handler,
                                   max_recv_msg_size=cfg["max-request-bytes"] + GRPC_OVERHEAD_BYTES)
            listeners.append(listener)
            log(logger, logging.INFO, "serving client traffic insecurely; this is strongly discouraged!",
                address=f"{hostname}:{listener.port}")
        for url, _, sock in metrics_sockets:  # /metrics and /health only, no gRPC
            listeners.append(await serve(sock, grpc_methods={}, http_handler=make_handler(server, METRICS_PATHS)))
            log(logger, logging.INFO, "serving metrics", address=url)
        log(logger, logging.INFO, "ready to serve client requests")
        await _wait_for_signal(server)
        log(logger, logging.INFO, "closing etcd server", name=cfg.name,
            **{"data-dir": cfg.data_dir, "advertise-client-urls": cfg["advertise-client-urls"]})
    finally:
        for listener in listeners:
            listener.close()
        for listener in listeners:
            await listener.wait_closed()
        await server.stop()
    log(logger, logging.INFO, "closed etcd server", name=cfg.name)


async def _wait_for_signal(server) -> None:
    """Until SIGTERM/SIGINT, or until the member learns it was removed from the cluster."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters = [loop.create_task(stop.wait()), loop.create_task(server.wait_removed_or_stopped())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in waiters:
        task.cancel()


if __name__ == "__main__":
    main()
