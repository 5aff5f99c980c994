"""The shared conformance scenarios (real etcd 3.5.1 side by side with pyetcd) for what is built.

`etcd-diff` lives beside the repository (../shared/conformance); it prints one PASS/DIFF per line
and ends with 'N passed, M failed'.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from servers import REF_DIR, ROOT, have_ref

ETCD_DIFF = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "etcd-diff")
SCENARIOS = os.path.join(os.path.dirname(ETCD_DIFF), "scenarios")
# the scenario files whose features are built: the KV API, watches, leases, auth, 3-member clusters, v2
SERVER_FILES = ["01-kv-basic.txt", "02-put-del-options.txt", "03-txn.txt", "04-compaction.txt",
                "05-watch.txt", "06-lease.txt", "15-cluster-3.txt", "16-output-formats.txt",
                "09-lock-elect.txt", "18-compaction-watch-hashkv.txt", "08-auth.txt",
                "07-maintenance.txt", "17-output-formats-more.txt", "11-http-v3-gateway.txt",
                "13-limits-and-bad-input.txt", "14-server-flags.txt", "19-cluster-3-features.txt",
                "12-http-v2.txt"]

pytestmark = pytest.mark.skipif(not (os.path.exists(ETCD_DIFF) and have_ref()),
                                reason="needs ../shared/conformance and the real etcd binaries")


# etcdctl prints an added member's ID with "%16x": an ID below 2**60 (one in 16, on either side)
# gets a leading space, and the shared 15-cluster-3.txt reads it with `cut -d' ' -f2`, which then
# yields nothing. The shared file is read-only; run a copy that takes the second field with awk.
ID_FIELD_FIXES = {"15-cluster-3.txt": ("cut -d' ' -f2 $DATA/add", "awk '{print $2}' $DATA/add")}


def scenario_path(scenario: str, tmp_path) -> str:
    path = os.path.join(SCENARIOS, scenario)
    if scenario not in ID_FIELD_FIXES:
        return path
    old, new = ID_FIELD_FIXES[scenario]
    with open(path) as f:
        text = f.read()
    assert old in text, f"{scenario} no longer reads member IDs with {old!r}: drop the fix"
    copy = tmp_path / scenario
    copy.write_text(text.replace(old, new))
    return str(copy)


def run_etcd_diff(*args: str) -> str:
    env = {**os.environ, "ETCD_REF_DIR": REF_DIR}
    proc = subprocess.run([sys.executable, ETCD_DIFF, "-q", *args], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.stdout.strip(), proc.stderr
    return proc.stdout


@pytest.mark.parametrize("scenario", SERVER_FILES)
def test_real_etcdctl_against_pyetcd(scenario, tmp_path):
    out = run_etcd_diff("--mode", "server", "--candidate-server", f"{sys.executable} -m pyetcd",
                        scenario_path(scenario, tmp_path))
    assert out.strip().splitlines()[-1].endswith(" 0 failed"), out


CTL_FILES = ["01-kv-basic.txt", "02-put-del-options.txt", "03-txn.txt", "04-compaction.txt", "05-watch.txt",
             "06-lease.txt", "09-lock-elect.txt", "15-cluster-3.txt", "16-output-formats.txt",
             "18-compaction-watch-hashkv.txt", "08-auth.txt", "17-output-formats-more.txt", "14-server-flags.txt",
             "10-v2-etcdctl.txt"]


# pyetcd's own scenario files (tests/e2e/scenarios), run the same way
LOCAL_CTL_FILES = ["auth-ctl-more.txt"]


@pytest.mark.parametrize("scenario", CTL_FILES + LOCAL_CTL_FILES)
def test_pyetcd_etcdctl_against_real_etcd(scenario, tmp_path):
    etcdctl = os.path.join(os.path.dirname(sys.executable), "etcdctl")
    path = (os.path.join(os.path.dirname(__file__), "scenarios", scenario) if scenario in LOCAL_CTL_FILES
            else scenario_path(scenario, tmp_path))
    etcdutl = os.path.join(os.path.dirname(sys.executable), "etcdutl")
    out = run_etcd_diff("--mode", "ctl", "--candidate-ctl", etcdctl, "--candidate-utl", etcdutl, path)
    assert out.strip().splitlines()[-1].endswith(" 0 failed"), out
