"""Unit checks of the pieces etcdctl's cluster commands print with: Go durations and sizes,
tablewriter layout, peer URL errors, member id parsing, the client's retry policy."""
import grpc
import pytest

from pyetcd.client._common import try_next_endpoint
from pyetcd.etcdctl import gofmt, table
from pyetcd.etcdctl.member import check_urls
from pyetcd.etcdctl.runtime import Exit


@pytest.mark.parametrize("seconds,text", [
    (0.004843957, "4.843957ms"), (0.004698, "4.698ms"), (5.002208861, "5.002208861s"), (1.5e-6, "1.5µs"),
    (5e-7, "500ns"), (123.5, "2m3.5s"), (3700.000000001, "1h1m40.000000001s"), (0, "0s")])
def test_duration_string(seconds, text):
    assert gofmt.duration_string(seconds) == text


@pytest.mark.parametrize("n,text", [(5, "5 B"), (20480, "20 kB"), (1234567, "1.2 MB"), (999999, "1000 kB")])
def test_humanize_bytes(n, text):
    assert gofmt.humanize_bytes(n) == text


def test_parse_uint_hex_only():
    assert gofmt.parse_uint("aeaad53754ec8387") == 0xAEAAD53754EC8387
    for bad, why in (("0x1", "invalid syntax"), ("-1", "invalid syntax"), ("", "invalid syntax"),
                     ("1ffffffffffffffff", "value out of range")):
        with pytest.raises(gofmt.GoError, match=why):
            gofmt.parse_uint(bad)


def test_table_centres_headers_and_right_aligns_cells():
    assert table.render(["ID", "STATUS"], [["a1", "started"], ["b2", "unstarted"]]) == (
        "+----+-----------+\n"
        "| ID |  STATUS   |\n"
        "+----+-----------+\n"
        "| a1 |   started |\n"
        "| b2 | unstarted |\n"
        "+----+-----------+\n")


@pytest.mark.parametrize("url,message", [
    ("foo", "URL scheme must be http, https, unix, or unixs: foo"),
    (":1", 'parse ":1": missing protocol scheme'),
    ("127.0.0.1:1", 'parse "127.0.0.1:1": first path segment in URL cannot contain colon'),
    ("http://a%zz", 'parse "http://a%zz": invalid URL escape "%zz"'),
    ("http://127.0.0.1:x", 'parse "http://127.0.0.1:x": invalid port ":x" after host'),
    ("http://127.0.0.1", 'URL address does not have the form "host:port": http://127.0.0.1'),
    ("http://127.0.0.1:1/p", "URL must not contain a path: http://127.0.0.1:1/p"),
])
def test_peer_url_errors(url, message):
    with pytest.raises(Exit) as info:
        check_urls(["http://127.0.0.1:2", url])
    assert info.value.message == message


def test_peer_urls_accepted():
    check_urls(["http://127.0.0.1:2380", " https://[::1]:2380", "unix://sock:1"])


class _Err(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_retry_policy_follows_go_client():
    no_leader = _Err(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    refused = _Err(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    assert try_next_endpoint("kv", "Range", no_leader)
    assert try_next_endpoint("cluster", "MemberList", no_leader)
    assert not try_next_endpoint("kv", "Put", no_leader)
    assert not try_next_endpoint("cluster", "MemberAdd", no_leader)
    assert try_next_endpoint("kv", "Put", refused)
    assert not try_next_endpoint("kv", "Range", _Err(grpc.StatusCode.NOT_FOUND, "etcdserver: member not found"))
