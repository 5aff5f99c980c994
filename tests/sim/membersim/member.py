"""One member's machine: its name and URLs, its data dir and disk, and the process running on it.

``start()`` runs a new process with a new ``EtcdServer`` on the machine's data dir; ``kill()``
is SIGKILL (the process's tasks freeze, its files and sockets close, its LMDB environment is
closed with whatever it committed still in the file, as after a real SIGKILL);
``power_loss()`` kills and then loses what was not synced (disk.py); ``pause()``/``resume()``
are SIGSTOP/SIGCONT. A member stopping through ``platform.fatal`` is recorded with what made
it stop, and killed.
"""
from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from typing import NoReturn

from pyetcd.server.config import ConfigError, ServerConfig
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.transport import ClusterUnreachable

from membersim.disk import Disk
from membersim.platform import member_platform
from membersim.process import Process, ProcessKilled
from membersim.simfs import DiskFault, InjectedIOError, SimFileSystem
from membersim.world import World


@dataclass
class Stop:
    """A member process that ended by itself: a fatal stop, or a start that failed."""
    time: float
    process: str
    kind: str                 # "fatal" or "start"
    message: str
    exc: BaseException | None
    injected: bool            # an injected disk error came first: stopping is the right answer
    joining: bool = False     # a join (a member that may not even be added, or removed since)

    def __str__(self) -> str:
        return f"{self.process} {self.kind} at {self.time:.4f}: {self.message} ({self.exc!r})"

    @property
    def expected(self) -> bool:
        """Whether a correct member would stop so too: after an injected I/O error, a join that
        cannot happen (not added, cluster unreachable), a removed member refusing to restart."""
        if self.injected:
            return True
        if self.kind != "start" or not isinstance(self.exc, (ConfigError, ClusterUnreachable)):
            return False
        not_added = isinstance(self.exc, ClusterUnreachable) or "add it first" in self.message
        return (self.joining and not_added) or "permanently removed" in self.message


def caused_by_injection(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (InjectedIOError, ProcessKilled)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class SimMember:
    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.peer_url = f"http://{name}:2380"
        self.client_url = f"http://{name}:2379"
        root = os.path.join(world.run_dir, name)
        self.data_dir = os.path.join(root, "data")
        self.temp_dir = os.path.join(root, "tmp")  # the machine's /tmp: another file system, a tmpfs
        os.makedirs(self.data_dir)
        os.makedirs(self.temp_dir)
        self.disk = Disk(root, os.path.join(world.run_dir, "keep", name), [self.temp_dir],
                         world.rng_for(f"disk-{name}"))
        self.process: Process | None = None
        self.server: EtcdServer | None = None
        self.fs: SimFileSystem | None = None
        self.runs = 0
        self.started = False      # the current process finished server.start()
        self.ever_started = False  # some process of it did (before that, every start is a join)
        self.removed = False      # it left the cluster (removed, and stopped by itself)
        self.cluster_flags: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<SimMember {self.name} {self.process}>"

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.alive

    @property
    def serving(self) -> bool:
        return self.up and self.started

    def volume_of(self, path: str) -> str:
        return "tmp" if os.path.abspath(path).startswith(self.temp_dir) else "data"

    # ---- lifecycle -----------------------------------------------------------------------------

    def config(self) -> ServerConfig:
        world = self.world
        return ServerConfig({
            "name": self.name, "data-dir": self.data_dir,
            "listen-peer-urls": [self.peer_url], "initial-advertise-peer-urls": [self.peer_url],
            "listen-client-urls": [self.client_url], "advertise-client-urls": [self.client_url],
            "initial-cluster-token": "sim", **self.cluster_flags, **world.member_flags})

    def start(self, faults: list[DiskFault]) -> None:
        """Start a new process; it is serving once ``started`` (or dead if its start failed)."""
        assert not self.up, f"{self.name} is already running"
        world = self.world
        self.runs += 1
        process = Process(f"{self.name}.{self.runs}")
        fs = SimFileSystem(self.disk, process, faults, volume_of=self.volume_of, rng=world.rng_for(process.name),
                           crash=lambda reason: self.kill(reason, process, from_inside=True), trace=world.trace)
        platform = member_platform(world.network, process, fs, self.name, self.temp_dir,
                                   random.Random(world.rng_for(f"platform-{process.name}").getrandbits(64)),
                                   lambda message, exc=None: self._fatal(process, message, exc))
        cfg = self.config()
        # (an added member whose first start died joins again: if it was removed meanwhile,
        # it cannot)
        joining = not os.path.isdir(cfg.wal_dir) or \
            (self.cluster_flags.get("initial-cluster-state") == "existing" and not self.ever_started)
        server = EtcdServer(cfg, platform)
        self.process, self.server, self.fs, self.started = process, server, fs, False
        world.processes.append(process)
        process.at_kill(lambda: self._closed(process))
        world.recorder.watch(self.name, process, server)
        world.trace(f"start {process.name} faults={[str(f) for f in faults]}", process.name)
        task = world.loop.create_task(server.start(), context=process.context)
        task.add_done_callback(lambda t: self._start_done(process, server, joining, t))

    def _start_done(self, process: Process, server: EtcdServer, joining: bool, task: asyncio.Task) -> None:
        if not process.alive:
            return
        exc = task.exception()
        if exc is None:
            self.started = self.ever_started = True
            self.world.recorder.started(process, server)
            self.world.network.client_ports[self.client_url] = (process, server)
            self.world.trace(f"started member {server.member_id:x}", process.name)
            self.world.loop.create_task(self._watch_removal(process, server))
            return
        self.world.stops.append(Stop(self.world.loop.time(), process.name, "start", str(exc), exc,
                                     caused_by_injection(exc) or self.fs.injected_error is not None, joining))
        self.kill(f"start failed: {exc!r}", process)

    async def _watch_removal(self, process: Process, server: EtcdServer) -> None:
        await server.wait_removed_or_stopped()
        if process is self.process and process.alive:
            self.world.trace("removed from the cluster: stops", process.name)
            self.removed = True
            self.kill("removed", process)

    def _fatal(self, process: Process, message: str, exc: BaseException | None) -> NoReturn:
        fs = self.fs if process is self.process else None
        injected = caused_by_injection(exc) or (fs is not None and fs.injected_error is not None)
        self.world.stops.append(Stop(self.world.loop.time(), process.name, "fatal", message, exc, injected))
        self.kill(f"fatal: {message}", process, from_inside=True)
        raise ProcessKilled(message)

    def kill(self, reason: str, process: Process | None = None, *, from_inside: bool = False) -> None:
        """SIGKILL; ``from_inside``: the process's own code is dying (see Process.kill)."""
        process = process or self.process
        if process is None or not process.alive:
            return
        self.world.trace(f"kill ({reason})", process.name)
        process.kill(self.world.loop if from_inside else None)

    def _closed(self, process: Process) -> None:
        """At the process's death: its client port closes (its files and LMDB environments close
        through their own kill hooks, see simfs.py and world.py)."""
        ports = self.world.network.client_ports
        if ports.get(self.client_url, (None,))[0] is process:
            del ports[self.client_url]

    def pause(self) -> None:
        if self.up:
            self.world.trace("pause", self.process.name)
            self.process.pause()

    def resume(self) -> None:
        if self.up:
            self.world.trace("resume", self.process.name)
            self.process.resume(self.world.loop)

    def power_loss(self, lose_unsynced_dirs: bool = True) -> None:
        self.kill("power loss")
        self.world.trace("power loss: unsynced data lost", self.name)
        self.disk.power_loss(lose_unsynced_dirs)
