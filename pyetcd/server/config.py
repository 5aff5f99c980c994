"""The member's configuration: etcd 3.5's flags, `ETCD_*` environment variables and `--config-file`.

Flags follow Go's `flag` package as etcd uses it: `-name` or `--name`, `--name value` or
`--name=value`, a bool flag alone means true (`--flag=false` to turn it off), parsing stops at
the first argument that is not a flag. A flag not given on the command line is read from
`ETCD_<FLAG_NAME>` (dashes become underscores). With `--config-file` the YAML file is the whole
configuration and other flags and variables are ignored, as in etcd.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from pyetcd.server import v3compactor


class ConfigError(Exception):
    """A configuration that etcd would refuse (or that pyetcd cannot serve yet)."""


class UsageError(ConfigError):
    """Bad command line: etcd prints the message and its usage."""


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ValueError(f"parse error: {text!r}")


def _parse_urls(text: str) -> list[str]:
    return [u.strip() for u in text.split(",") if u.strip()] if text else []


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration subset: '5s', '1h30m', '100ms', '0'; returns seconds."""
    if text in ("0", ""):
        return 0.0
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(number) * _DURATION_UNITS[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"time: missing unit in duration {text!r}")
    return total


@dataclass(frozen=True)
class FlagSpec:
    name: str
    default: Any
    parse: Callable[[str], Any] = str
    # Set when pyetcd does not serve this yet: a value other than the default is refused.
    not_built: str = ""

    @property
    def is_bool(self) -> bool:
        return self.parse is _parse_bool


_TLS = "TLS comes in a later pyetcd release"
_LATER = "not built in pyetcd yet"

FLAGS: tuple[FlagSpec, ...] = (
    # member
    FlagSpec("name", "default"),
    FlagSpec("data-dir", ""),
    FlagSpec("wal-dir", ""),
    FlagSpec("snapshot-count", 100000, int),
    FlagSpec("heartbeat-interval", 100, int),
    FlagSpec("election-timeout", 1000, int),
    FlagSpec("initial-election-tick-advance", True, _parse_bool),
    FlagSpec("listen-peer-urls", ["http://localhost:2380"], _parse_urls),
    FlagSpec("listen-client-urls", ["http://localhost:2379"], _parse_urls),
    FlagSpec("listen-client-http-urls", [], _parse_urls, _LATER),
    FlagSpec("max-snapshots", 5, int),
    FlagSpec("max-wals", 5, int),
    FlagSpec("quota-backend-bytes", 0, int),
    FlagSpec("backend-bbolt-freelist-type", "map"),
    FlagSpec("backend-batch-interval", ""),
    FlagSpec("backend-batch-limit", 0, int),
    FlagSpec("max-txn-ops", 128, int),
    FlagSpec("max-request-bytes", 1572864, int),
    FlagSpec("grpc-keepalive-min-time", "5s"),
    FlagSpec("grpc-keepalive-interval", "2h"),
    FlagSpec("grpc-keepalive-timeout", "20s"),
    FlagSpec("socket-reuse-port", False, _parse_bool),
    FlagSpec("socket-reuse-address", False, _parse_bool),
    # clustering
    FlagSpec("initial-advertise-peer-urls", ["http://localhost:2380"], _parse_urls),
    FlagSpec("initial-cluster", "default=http://localhost:2380"),
    FlagSpec("initial-cluster-state", "new"),
    FlagSpec("initial-cluster-token", "etcd-cluster"),
    FlagSpec("advertise-client-urls", ["http://localhost:2379"], _parse_urls),
    FlagSpec("discovery", "", str, _LATER),
    FlagSpec("discovery-fallback", "proxy"),
    FlagSpec("discovery-proxy", "", str, _LATER),
    FlagSpec("discovery-srv", "", str, _LATER),
    FlagSpec("discovery-srv-name", "", str, _LATER),
    FlagSpec("strict-reconfig-check", True, _parse_bool),
    FlagSpec("pre-vote", True, _parse_bool),
    FlagSpec("auto-compaction-retention", "0"),
    FlagSpec("auto-compaction-mode", "periodic"),
    FlagSpec("enable-v2", False, _parse_bool),
    FlagSpec("v2-deprecation", "not-yet"),
    # security
    FlagSpec("cert-file", "", str, _TLS),
    FlagSpec("key-file", "", str, _TLS),
    FlagSpec("client-cert-auth", False, _parse_bool, _TLS),
    FlagSpec("client-crl-file", "", str, _TLS),
    FlagSpec("client-cert-allowed-hostname", "", str, _TLS),
    FlagSpec("trusted-ca-file", "", str, _TLS),
    FlagSpec("auto-tls", False, _parse_bool, _TLS),
    FlagSpec("peer-cert-file", "", str, _TLS),
    FlagSpec("peer-key-file", "", str, _TLS),
    FlagSpec("peer-client-cert-auth", False, _parse_bool, _TLS),
    FlagSpec("peer-trusted-ca-file", "", str, _TLS),
    FlagSpec("peer-cert-allowed-cn", "", str, _TLS),
    FlagSpec("peer-cert-allowed-hostname", "", str, _TLS),
    FlagSpec("peer-auto-tls", False, _parse_bool, _TLS),
    FlagSpec("self-signed-cert-validity", 1, int),
    FlagSpec("peer-crl-file", "", str, _TLS),
    FlagSpec("cipher-suites", "", str, _TLS),
    FlagSpec("cors", "*"),
    FlagSpec("host-whitelist", "*"),
    # auth
    FlagSpec("auth-token", "simple"),
    FlagSpec("bcrypt-cost", 10, int),
    FlagSpec("auth-token-ttl", 300, int),
    # profiling, monitoring, logging
    FlagSpec("enable-pprof", False, _parse_bool, _LATER),
    FlagSpec("metrics", "basic"),
    FlagSpec("listen-metrics-urls", [], _parse_urls),
    FlagSpec("logger", "zap"),
    FlagSpec("log-outputs", ["default"], _parse_urls),
    FlagSpec("log-level", "info"),
    FlagSpec("enable-log-rotation", False, _parse_bool, _LATER),
    FlagSpec("log-rotation-config-json",
             '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}'),
    # v2 proxy
    FlagSpec("proxy", "off", str, _LATER),
    FlagSpec("proxy-failure-wait", 5000, int),
    FlagSpec("proxy-refresh-interval", 30000, int),
    FlagSpec("proxy-dial-timeout", 1000, int),
    FlagSpec("proxy-write-timeout", 5000, int),
    FlagSpec("proxy-read-timeout", 0, int),
    # experimental and unsafe
    FlagSpec("experimental-enable-distributed-tracing", False, _parse_bool, _LATER),
    FlagSpec("experimental-distributed-tracing-address", "localhost:4317"),
    FlagSpec("experimental-distributed-tracing-service-name", "etcd"),
    FlagSpec("experimental-distributed-tracing-instance-id", ""),
    FlagSpec("experimental-initial-corrupt-check", False, _parse_bool),
    FlagSpec("experimental-corrupt-check-time", "0s"),
    FlagSpec("experimental-enable-v2v3", "", str, _LATER),
    # (on by default, beyond etcd: a lease keeps its remaining TTL across leader changes)
    FlagSpec("experimental-enable-lease-checkpoint", True, _parse_bool),
    FlagSpec("experimental-enable-lease-checkpoint-persist", True, _parse_bool),
    FlagSpec("experimental-lease-checkpoint-interval", "5m"),
    FlagSpec("experimental-compaction-batch-limit", 1000, int),
    FlagSpec("experimental-snapshot-catchup-entries", 5000, int),
    FlagSpec("experimental-peer-skip-client-san-verification", False, _parse_bool),
    FlagSpec("experimental-watch-progress-notify-interval", "10m"),
    FlagSpec("experimental-warning-apply-duration", "100ms"),
    FlagSpec("experimental-txn-mode-write-with-shared-buffer", True, _parse_bool),
    FlagSpec("experimental-bootstrap-defrag-threshold-megabytes", 0, int),
    FlagSpec("force-new-cluster", False, _parse_bool, _LATER),
    FlagSpec("unsafe-no-fsync", False, _parse_bool),
    # meta
    FlagSpec("config-file", ""),
    FlagSpec("version", False, _parse_bool),
    FlagSpec("help", False, _parse_bool),
)
SPECS: dict[str, FlagSpec] = {s.name: s for s in FLAGS}

# The YAML config file nests the TLS settings under these keys (etcd's config file layout).
_YAML_SECTIONS = {
    "client-transport-security": {
        "cert-file": "cert-file", "key-file": "key-file", "client-cert-auth": "client-cert-auth",
        "trusted-ca-file": "trusted-ca-file", "auto-tls": "auto-tls", "crl-file": "client-crl-file",
    },
    "peer-transport-security": {
        "cert-file": "peer-cert-file", "key-file": "peer-key-file", "client-cert-auth": "peer-client-cert-auth",
        "trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls", "crl-file": "peer-crl-file",
        "allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname",
    },
}


def parse_command_line(argv: Sequence[str]) -> dict[str, Any]:
    """Go `flag` parsing of etcd's command line; returns only the flags that were given."""
    given: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, eq, value = body.partition("=")
        spec = SPECS.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if not eq and not spec.is_bool:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            i += 1
            value = args[i]
        given[name] = _convert(spec, value if eq or not spec.is_bool else "true", f"-{name}")
        i += 1
    if i < len(args):
        raise ConfigError(f"'{args[i]}' is not a valid flag")
    return given


def _convert(spec: FlagSpec, value: str, where: str) -> Any:
    try:
        return spec.parse(value)
    except ValueError:
        raise UsageError(f'invalid value "{value}" for flag {where}: parse error') from None


def from_environment(env: Mapping[str, str], given: Mapping[str, Any]) -> dict[str, Any]:
    """Flags from `ETCD_*` variables, for flags not given on the command line."""
    values: dict[str, Any] = {}
    for spec in FLAGS:
        var = "ETCD_" + spec.name.upper().replace("-", "_")
        if var in env and spec.name not in given:
            values[spec.name] = _convert(spec, env[var], var)
    return values


def from_yaml(path: str) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    values: dict[str, Any] = {}
    for key, raw in doc.items():
        if key in _YAML_SECTIONS and isinstance(raw, Mapping):
            for sub, flag in _YAML_SECTIONS[key].items():
                if sub in raw:
                    values[flag] = _yaml_value(SPECS[flag], raw[sub], key)
        elif key in SPECS:
            values[key] = _yaml_value(SPECS[key], raw, key)
    return values


def _yaml_value(spec: FlagSpec, raw: Any, key: str) -> Any:
    if raw is None:
        return spec.default
    if isinstance(raw, bool) or isinstance(raw, int):
        return raw if spec.parse in (int, _parse_bool) else _convert(spec, str(raw).lower(), key)
    if isinstance(raw, list):
        return [str(x) for x in raw]
    return _convert(spec, str(raw), key)


@dataclass
class ServerConfig:
    """The settings a member runs with, resolved from flags, environment and config file."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name, SPECS[name].default)

    def is_set(self, name: str) -> bool:
        return name in self.values

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def data_dir(self) -> str:
        return self["data-dir"] or f"{self.name}.etcd"

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def wal_dir(self) -> str:
        return self["wal-dir"] or os.path.join(self.member_dir, "wal")

    @property
    def snap_dir(self) -> str:
        """Snapshots received or being sent, and the backend's directory ``db``."""
        return os.path.join(self.member_dir, "snap")

    @property
    def backend_path(self) -> str:
        return os.path.join(self.snap_dir, "db")

    def initial_cluster(self) -> dict[str, list[str]]:
        """`--initial-cluster` as name -> peer URLs (a name may appear several times)."""
        members: dict[str, list[str]] = {}
        for item in (p.strip() for p in self["initial-cluster"].split(",")):
            if not item:
                continue
            name, eq, url = item.partition("=")
            if not eq or not url:
                raise ConfigError(f"invalid initial cluster entry {item!r}")
            members.setdefault(name, []).append(url)
        return members


def load_config(argv: Sequence[str], env: Mapping[str, str]) -> ServerConfig:
    """Resolve the configuration as etcd does; raises UsageError/ConfigError."""
    given = parse_command_line(argv)
    if given.get("config-file"):
        cfg = ServerConfig(from_yaml(given["config-file"]))
    else:
        cfg = ServerConfig({**from_environment(env, given), **given})
    if cfg["version"] or cfg["help"]:
        return cfg
    validate(cfg)
    return cfg


def validate(cfg: ServerConfig) -> None:
    for spec in FLAGS:
        if spec.not_built and cfg.is_set(spec.name) and cfg[spec.name] != spec.default:
            raise ConfigError(f"--{spec.name} is not supported by pyetcd yet ({spec.not_built})")
    if cfg["initial-cluster-state"] not in ("new", "existing"):
        raise ConfigError(f"unexpected initial-cluster-state {cfg['initial-cluster-state']!r} (expected new or existing)")
    if cfg["logger"] != "zap":
        raise ConfigError(f"unknown logger type {cfg['logger']!r} (only 'zap' is supported)")
    if cfg["log-level"] not in ("debug", "info", "warn", "error", "panic", "fatal"):
        raise ConfigError(f"unknown log-level {cfg['log-level']!r}")
    if cfg["auto-compaction-mode"] not in v3compactor.MODES:
        raise ConfigError(f'unknown auto-compaction-mode "{cfg["auto-compaction-mode"]}"')
    try:
        v3compactor.parse_retention(cfg["auto-compaction-mode"], cfg["auto-compaction-retention"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    members = cfg.initial_cluster()
    if cfg.name not in members:
        raise ConfigError(
            f"couldn't find local name {cfg.name!r} in the initial cluster configuration")
    for url in cfg["listen-client-urls"] + cfg["advertise-client-urls"]:
        if not url.startswith("http://"):
            raise ConfigError(f"client URL {url!r}: only http:// is supported by pyetcd yet ({_TLS})")


def member_id(peer_urls: Sequence[str], cluster_token: str) -> int:
    """A member's ID as etcd derives it for an initial cluster: SHA-1 of its sorted peer URLs and the token."""
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + cluster_token).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def cluster_id(member_ids: Sequence[int]) -> int:
    """The cluster ID: SHA-1 of the sorted member IDs, 8 bytes big-endian each."""
    data = b"".join(m.to_bytes(8, "big") for m in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")
