import pytest

from pyetcd.server.config import (ConfigError, UsageError, cluster_id, load_config, member_id, parse_command_line,
                                  parse_duration)

SEED_FLAGS = """--name controller-0 --cert-file=/etc/etcd/kubernetes.pem --key-file=/etc/etcd/kubernetes-key.pem
--peer-cert-file=/etc/etcd/kubernetes.pem --peer-key-file=/etc/etcd/kubernetes-key.pem
--trusted-ca-file=/etc/etcd/ca.pem --peer-trusted-ca-file=/etc/etcd/ca.pem --peer-client-cert-auth
--client-cert-auth --initial-advertise-peer-urls https://10.0.0.10:2380 --listen-peer-urls https://10.0.0.10:2380
--listen-client-urls https://10.0.0.10:2379,https://127.0.0.1:2379 --advertise-client-urls https://10.0.0.10:2379
--initial-cluster-token etcd-cluster-0
--initial-cluster controller-0=https://10.0.0.10:2380,controller-1=https://10.0.0.11:2380
--initial-cluster-state new --data-dir=/var/lib/etcd""".split()


def test_go_flag_syntax():
    given = parse_command_line(["-name", "a", "--data-dir=/d", "--client-cert-auth", "--enable-v2=false",
                                "--snapshot-count", "5"])
    assert given == {"name": "a", "data-dir": "/d", "client-cert-auth": True, "enable-v2": False,
                     "snapshot-count": 5}


def test_kubernetes_unit_flags_all_parse():
    given = parse_command_line(SEED_FLAGS)
    assert given["listen-client-urls"] == ["https://10.0.0.10:2379", "https://127.0.0.1:2379"]
    assert given["peer-client-cert-auth"] is True
    assert given["data-dir"] == "/var/lib/etcd"


def test_not_built_flags_are_refused_by_name():
    with pytest.raises(ConfigError, match="--cert-file"):
        load_config(SEED_FLAGS, {})


def test_unknown_flag_and_stray_argument():
    with pytest.raises(UsageError, match="flag provided but not defined: -bogus"):
        parse_command_line(["--bogus"])
    with pytest.raises(ConfigError, match="'extra' is not a valid flag"):
        parse_command_line(["extra"])
    with pytest.raises(UsageError, match="invalid value"):
        parse_command_line(["--snapshot-count=x"])


def test_environment_fills_flags_not_given():
    cfg = load_config(["--name", "a", "--initial-cluster", "a=http://localhost:2380"],
                      {"ETCD_MAX_TXN_OPS": "7", "ETCD_NAME": "ignored"})
    assert cfg["max-txn-ops"] == 7
    assert cfg.name == "a"
    assert cfg.data_dir == "a.etcd"


def test_config_file_replaces_flags(tmp_path):
    path = tmp_path / "etcd.yaml"
    path.write_text("name: y\ndata-dir: /tmp/y\ninitial-cluster: y=http://localhost:2380\n"
                    "listen-client-urls: http://127.0.0.1:1234\nmax-request-bytes: 100\n"
                    "client-transport-security:\n  client-cert-auth: false\n")
    cfg = load_config(["--config-file", str(path), "--name", "ignored"], {"ETCD_NAME": "ignored"})
    assert (cfg.name, cfg.data_dir, cfg["max-request-bytes"]) == ("y", "/tmp/y", 100)
    assert cfg["listen-client-urls"] == ["http://127.0.0.1:1234"]


def test_name_missing_from_initial_cluster():
    with pytest.raises(ConfigError, match="couldn't find local name"):
        load_config(["--name", "x"], {})


def test_durations():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("100ms") == pytest.approx(0.1)
    with pytest.raises(ValueError):
        parse_duration("5")


def test_ids_as_etcd_derives_them():
    # etcd 3.5 with default flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32
    mid = member_id(["http://localhost:2380"], "etcd-cluster")
    assert f"{mid:x}" == "8e9e05c52164694d"
    assert f"{cluster_id([mid]):x}" == "cdf818194e3a8c32"
