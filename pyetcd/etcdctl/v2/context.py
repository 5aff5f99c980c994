"""What every v2 command gets: the client built from the global flags and the output format."""
from __future__ import annotations

from dataclasses import dataclass

from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.gofmt import parse_duration
from pyetcd.etcdctl.v2.cli import Flag
from pyetcd.etcdctl.v2.client import DEFAULT_ENDPOINTS, Client

EXIT_SERVER_ERROR = 4
EXIT_CLUSTER_NOT_HEALTHY = 5

GLOBAL_FLAGS = [
    Flag("debug", "output cURL commands which can be used to reproduce the request"),
    Flag("no-sync", "don't synchronize cluster information before sending request"),
    Flag("output, o", "output response in the given format (`simple`, `extended` or `json`)", "string", "simple"),
    Flag("discovery-srv, D", "domain name to query for SRV records describing cluster endpoints", "string"),
    Flag("insecure-discovery", "accept insecure SRV records describing cluster endpoints"),
    Flag("peers, C", "DEPRECATED - \"--endpoints\" should be used instead", "string", env="ETCDCTL_PEERS"),
    Flag("endpoint", "DEPRECATED - \"--endpoints\" should be used instead", "string", env="ETCDCTL_ENDPOINT"),
    Flag("endpoints", "a comma-delimited list of machine addresses in the cluster (default: "
         "\"http://127.0.0.1:2379,http://127.0.0.1:4001\")", "string", env="ETCDCTL_ENDPOINTS"),
    Flag("cert-file", "identify HTTPS client using this SSL certificate file", "string", env="ETCDCTL_CERT_FILE"),
    Flag("key-file", "identify HTTPS client using this SSL key file", "string", env="ETCDCTL_KEY_FILE"),
    Flag("ca-file", "verify certificates of HTTPS-enabled servers using this CA bundle", "string",
         env="ETCDCTL_CA_FILE"),
    Flag("username, u", "provide username[:password] and prompt if password is not supplied.", "string",
         env="ETCDCTL_USERNAME"),
    Flag("timeout", "connection timeout per request", "duration", "2s"),
    Flag("total-timeout", "timeout for the command execution (except watch)", "duration", "5s"),
]


def bad_args(message: str) -> None:
    raise g.Exit(g.EXIT_BAD_ARGS, message)


@dataclass
class Context:
    client: Client
    output: str


def endpoints(flags: dict) -> list[str]:
    for name in ("peers", "endpoint", "endpoints"):
        if flags[name]:
            return [e if "://" in e else "http://" + e for e in flags[name].split(",")]
    return DEFAULT_ENDPOINTS.split(",")


def new_context(flags: dict) -> Context:
    client = Client(endpoints(flags), parse_duration(flags["timeout"]))
    if not flags["no-sync"]:
        client.sync()
    return Context(client, flags["output"])
