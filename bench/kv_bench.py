"""Put and Range throughput of pyetcd (and, with --ref, of real etcd 3.5.1 in the same run).

Load comes from h2load (Debian's nghttp2-client), which sends raw gRPC requests and costs the
client almost no CPU. Each run is checked: a gRPC error carries no DATA frame, so received
bytes below requests x reply size means a failed call.

    .venv/bin/python bench/kv_bench.py [--ref] [--requests 20000] [--clients 50] [--streams 10]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from pyetcd.proto.etcdserverpb import rpc_pb2  # noqa: E402
from servers import PYETCD, Server, have_ref, ref_bin  # noqa: E402

WORKLOADS = {
    "put": ("Put", rpc_pb2.PutRequest(key=b"benchkey", value=b"v" * 256)),
    "range-serializable": ("Range", rpc_pb2.RangeRequest(key=b"benchkey", serializable=True)),
    "range-linearizable": ("Range", rpc_pb2.RangeRequest(key=b"benchkey")),
}


def grpc_body(message) -> bytes:
    payload = message.SerializeToString()
    return b"\0" + len(payload).to_bytes(4, "big") + payload


def h2load(server: Server, method: str, body_path: str, args: argparse.Namespace) -> float:
    cmd = ["h2load", "-n", str(args.requests), "-c", str(args.clients), "-m", str(args.streams),
           "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"{server.url}/etcdserverpb.KV/{method}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not done or int(done.group(1)) != args.requests:
        raise SystemExit(f"h2load run failed:\n{out}")
    return float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))


def run_target(label: str, cmd: list[str], args: argparse.Namespace, workdir: str) -> dict[str, float]:
    server = Server(cmd, os.path.join(workdir, f"{label}.etcd"))
    results: dict[str, float] = {}
    try:
        server.start()
        for name, (method, message) in WORKLOADS.items():
            body_path = os.path.join(workdir, f"{name}.bin")
            with open(body_path, "wb") as f:
                f.write(grpc_body(message))
            results[name] = h2load(server, method, body_path, args)
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", action="store_true", help="also measure real etcd 3.5.1 (ETCD_REF_DIR)")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--streams", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("h2load"):
        raise SystemExit("h2load not found: apt-get install -y nghttp2-client")
    with tempfile.TemporaryDirectory(prefix="kv-bench-") as workdir:
        rows = {"pyetcd": run_target("pyetcd", PYETCD, args, workdir)}
        if args.ref and have_ref():
            rows["etcd 3.5.1"] = run_target("ref", [ref_bin("etcd")], args, workdir)
    print(f"{'workload':<22}" + "".join(f"{label:>14}" for label in rows) + ("      ratio" if len(rows) > 1 else ""))
    for name in WORKLOADS:
        values = [rows[label][name] for label in rows]
        ratio = f"{values[0] / values[1]:>11.2f}" if len(values) > 1 else ""
        print(f"{name:<22}" + "".join(f"{v:>14,.0f}" for v in values) + ratio)


if __name__ == "__main__":
    main()
