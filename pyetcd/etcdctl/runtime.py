"""etcdctl's global flags, ETCDCTL_* environment variables, exit codes, client and display setup."""
from __future__ import annotations

import json
import os
import sys
import time

from pyetcd import API_VERSION, ETCD_VERSION
from pyetcd.etcdctl import printer
from pyetcd.etcdctl.cobra import Command, err
from pyetcd.etcdctl.flags import FlagSet

EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_BAD_ARGS = 128


class Exit(Exception):
    """Print 'Error: <message>' on stderr and exit with code (etcdctl's ExitWithError); no line
    when message is None (etcdctl's plain os.Exit)."""

    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def add_global_flags(fs: FlagSet) -> None:
    fs.add("endpoints", "strings", ["127.0.0.1:2379"], "gRPC endpoints")
    fs.add("debug", "bool", False, "enable client-side debug logging")
    fs.add("write-out", "string", "simple", "set the output format (fields, json, protobuf, simple, table)", "w")
    fs.add("hex", "bool", False, "print byte strings as hex encoded strings")
    fs.add("dial-timeout", "duration", 2.0, "dial timeout for client connections")
    fs.add("command-timeout", "duration", 5.0, "timeout for short running command (excluding dial timeout)")
    fs.add("keepalive-time", "duration", 2.0, "keepalive time for client connections")
    fs.add("keepalive-timeout", "duration", 6.0, "keepalive timeout for client connections")
    fs.add("insecure-transport", "bool", True, "disable transport security for client connections")
    fs.add("insecure-discovery", "bool", True, "accept insecure SRV records describing cluster endpoints")
    fs.add("insecure-skip-tls-verify", "bool", False,
           "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)")
    fs.add("cert", "string", "", "identify secure client using this TLS certificate file")
    fs.add("key", "string", "", "identify secure client using this TLS key file")
    fs.add("cacert", "string", "", "verify certificates of TLS-enabled secure servers using this CA bundle")
    fs.add("user", "string", "", "username[:password] for authentication (prompt if password is not supplied)")
    fs.add("password", "string", "",
           "password for authentication (if this option is used, --user option shouldn't include password)")
    fs.add("discovery-srv", "string", "", "domain name to query for SRV records describing cluster endpoints", "d")
    fs.add("discovery-srv-name", "string", "", "service name to query when using DNS discovery")


GROUP_HEADER = f"\nAPI VERSION:\n\t{API_VERSION}\n\n"
ROOT_HEADER = f"\nVERSION:\n\t{ETCD_VERSION}\n" + GROUP_HEADER

# Where etcdctl 3.5.1 reads its client configuration, per command (shows in the fatal log's stack
# trace): function, source file, line, and whether through mustClientFromCmd.
_CLIENT_CALLERS = {"get": ("get", "get", 64, True), "put": ("put", "put", 72, True), "del": ("del", "del", 49, True),
                   "txn": ("txn", "txn", 53, True), "compaction": ("compaction", "compaction", 55, True),
                   "move-leader": ("transferLeadership", "move_leader", 56, False)}


def zap_line(level: str, caller: str, msg: str, iso_ts: bool, logger: str = "", **fields) -> str:
    now = time.time()
    if iso_ts:
        t = time.localtime(now)
        off = time.strftime("%z", t)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03d" % (int(now * 1000) % 1000) + ("Z" if off == "+0000" else off)
        head = {"level": level, "ts": ts, "logger": "etcd-client", "caller": caller, "msg": msg}
    else:
        head = {"level": level, "ts": now, **({"logger": logger} if logger else {}), "caller": caller, "msg": msg}
    return json.dumps({**head, **fields}, separators=(",", ":"), ensure_ascii=False) + "\n"


def _fatal_conflict(cmd: Command, key: str) -> None:
    name, source, line, via_must = _CLIENT_CALLERS.get(cmd.name, (cmd.name, cmd.name, 0, True))
    src = "/tmp/etcd-release-3.5.1/etcd/release/etcd"
    mod = "/home/remote/sbatsche/.gvm/pkgsets/go1.16.3/global/pkg/mod/github.com/spf13/cobra@v1.1.3"
    trace = "\n".join([
        "go.etcd.io/etcd/pkg/v3/flags.verifyEnv", f"\t{src}/pkg/flags/flag.go:85",
        "go.etcd.io/etcd/pkg/v3/flags.SetPflagsFromEnv", f"\t{src}/pkg/flags/flag.go:63",
        "go.etcd.io/etcd/etcdctl/v3/ctlv3/command.clientConfigFromCmd", f"\t{src}/etcdctl/ctlv3/command/global.go:128",
        *(["go.etcd.io/etcd/etcdctl/v3/ctlv3/command.mustClientFromCmd",
            f"\t{src}/etcdctl/ctlv3/command/global.go:174"] if via_must else []),
        f"go.etcd.io/etcd/etcdctl/v3/ctlv3/command.{name}CommandFunc",
        f"\t{src}/etcdctl/ctlv3/command/{source}_command.go:{line}",
        "github.com/spf13/cobra.(*Command).execute", f"\t{mod}/command.go:856",
        "github.com/spf13/cobra.(*Command).ExecuteC", f"\t{mod}/command.go:960",
        "github.com/spf13/cobra.(*Command).Execute", f"\t{mod}/command.go:897",
        "go.etcd.io/etcd/etcdctl/v3/ctlv3.Start", f"\t{src}/etcdctl/ctlv3/ctl.go:107",
        "go.etcd.io/etcd/etcdctl/v3/ctlv3.MustStart", f"\t{src}/etcdctl/ctlv3/ctl.go:111",
        "main.main", f"\t{src}/etcdctl/main.go:59",
        "runtime.main", "\t/home/remote/sbatsche/.gvm/gos/go1.16.3/src/runtime/proc.go:225"])
    msg = ("conflicting environment variable is shadowed by corresponding command-line flag "
           "(either unset environment variable or disable flag))")
    err(zap_line("fatal", "flags/flag.go:85", msg, False, **{"environment-variable": key, "stacktrace": trace}))
    sys.stdout.flush()
    os._exit(1)


def apply_env(cmd: Command) -> None:
    """ETCDCTL_<FLAG> variables fill global flags not given on the command line (as etcdctl 3.5 does)."""
    flags = cmd.inherited()
    used, given = set(), set()
    for f in flags:
        key = "ETCDCTL_" + f.name.upper().replace("-", "_")
        if f.changed:
            given.add(key)
        val = os.environ.get(key, "")
        if val:
            used.add(key)
            if not f.changed:
                try:
                    f.set(val)
                except Exception:  # etcdctl ignores a bad value from the environment
                    pass
    for key, val in os.environ.items():
        if not key.startswith("ETCDCTL_"):
            continue
        if key in given:
            _fatal_conflict(cmd, key)
        if key not in used and key != "ETCDCTL_API":
            err(zap_line("warn", "flags/flag.go:93", "unrecognized environment variable", False,
                          **{"environment-variable": f"{key}={val}"}))


def read_stdin_line() -> str:
    """One line of stdin, read byte by byte (as Go does, so nothing past it is consumed)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        ch = os.read(0, 1)
        if not ch:
            break
        line += ch
    return line.decode("utf-8", "surrogateescape")


def connect_without_args(cmd: Command, args: list[str], message: str) -> "Context":
    """The Context of a command that takes no arguments (``message``: etcdctl's error if given)."""
    if args:
        raise Exit(EXIT_BAD_ARGS, message)
    ctx = Context(cmd)
    ctx.connect()
    return ctx


def prompt_password(prompt: str = "Password: ") -> str:
    """etcdctl's password prompt: no echo on a terminal; else one line of stdin."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    if os.isatty(0):
        import getpass

        password = getpass.getpass("")
    else:
        # etcdctl runs stty on its stdin to turn echo off, which complains when it is no terminal
        err("stty: 'standard input': Inappropriate ioctl for device\n" * 2)
        password = read_stdin_line().rstrip("\r\n")
    sys.stdout.write("\n")
    return password


def tls_from_flags(flags: FlagSet, prefix: str = ""):
    """The client's TLS from --<prefix>cacert, --<prefix>cert, --<prefix>key (files read now) and
    --<prefix>insecure-transport=false (TLS with the system's CAs); None: plaintext."""
    from pyetcd.client import TLS

    cert, key = flags[prefix + "cert"], flags[prefix + "key"]
    if bool(cert) != bool(key):
        raise Exit(EXIT_BAD_ARGS, f"KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")
    files = {}
    for name in ("cacert", "cert", "key"):
        path = flags[prefix + name]
        if path:
            try:
                with open(path, "rb") as f:
                    files[name] = f.read()
            except OSError as exc:
                raise Exit(EXIT_BAD_ARGS, f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    if not files and flags[prefix + "insecure-transport"]:
        return None
    return TLS(files.get("cacert"), files.get("cert"), files.get("key"))


class Context:
    """What a command needs once its flags are parsed: display, client, timeouts."""

    def __init__(self, cmd: Command) -> None:
        self.cmd = cmd
        self.flags = cmd.flagset()
        self.display: printer.Printer | None = None
        self.client = None

    def connect(self):
        """mustClientFromCmd, in etcdctl's order: environment, debug dump, password prompt,
        output format, TLS files, then the client (which connects lazily)."""
        apply_env(self.cmd)
        if self.flags["debug"]:
            err("".join(f"ETCDCTL_{f.name.upper().replace('-', '_')}={f.value_text()}\n" for f in self.cmd.inherited()))
        if self.flags["discovery-srv"]:
            raise Exit(EXIT_ERROR, "--discovery-srv (DNS SRV discovery) is not supported by pyetcd yet")
        user, password = self.flags["user"], self.flags["password"]
        if user and not password:
            user, colon, password = user.partition(":")
            if not colon:
                password = prompt_password()
        fmt = self.flags["write-out"]
        if fmt not in printer.FORMATS:
            raise Exit(EXIT_BAD_FEATURE, "unsupported output format")
        self.display = printer.Printer(fmt, self.flags["hex"])
        tls = self._tls()
        from pyetcd.client import Client

        self.client = Client(self.flags["endpoints"], dial_timeout=self.flags["dial-timeout"] or 2.0,
                             user=user, password=password, tls=tls)
        return self.client

    def _tls(self):
        if self.flags["insecure-skip-tls-verify"]:
            raise Exit(EXIT_BAD_ARGS, "--insecure-skip-tls-verify is not supported by pyetcd's etcdctl "
                                      "(grpcio always verifies the server): give its CA with --cacert")
        return tls_from_flags(self.flags)

    def call(self, method: str, request, timeout: float, service: str = "kv", endpoint: str | None = None):
        """One call (KV unless ``service`` says otherwise, to ``endpoint`` only if given); client log
        lines (auth, failures) as the Go client writes them."""
        from pyetcd.errors import EtcdError

        try:
            resp = self.client.call(service, method, request, timeout, endpoint=endpoint)
        except EtcdError as exc:
            self._log_auth()
            raise self.rpc_failed(exc) from None
        self._log_auth()
        return resp

    def _log_auth(self) -> None:
        for exc in self.client.auth_errors:
            self._warn(exc)
        self.client.auth_errors.clear()

    def show(self, kind: str, resp) -> None:
        if self.display.fmt == "table":
            raise Exit(EXIT_BAD_FEATURE, "table not supported as output format")
        self.display.show(kind, resp)

    def cluster_display(self):
        from pyetcd.etcdctl.cluster_display import ClusterDisplay

        return ClusterDisplay(self.display.fmt, self.display.hex)

    def _warn(self, exc, client=None) -> None:
        """The Go client's retry-interceptor warning for a failed call (etcdctl's endpoint health
        clients log through a logger of their own)."""
        from pyetcd.etcdctl.grpc_text import status_text

        client = client or self.client
        target = "etcd-endpoints://0xc000322a80/" + client.endpoints[0].split("://", 1)[-1]
        fields = dict(target=target, attempt=0, error=status_text(exc, client))
        if client is self.client:
            err(zap_line("warn", "v3/retry_interceptor.go:62", "retrying of unary invoker failed", True, **fields))
        else:
            err(zap_line("warn", "v3/retry_interceptor.go:62", "retrying of unary invoker failed", False,
                          logger="client", **fields))

    def rpc_failed(self, exc) -> Exit:
        from pyetcd.errors import EtcdDeadlineExceeded
        from pyetcd.etcdctl.grpc_text import status_text

        self._warn(exc)
        # The Go client turns etcd's own errors into their message; any other status stays "rpc error: ..."
        known = exc.message.startswith("etcdserver: ") or isinstance(exc, EtcdDeadlineExceeded)
        message = exc.message if known else status_text(exc, self.client)
        return Exit(EXIT_BAD_CONNECTION if getattr(exc, "during_auth", False) else EXIT_ERROR, message)
