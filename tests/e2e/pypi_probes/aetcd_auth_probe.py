"""aetcd with a user against a server that has auth on: ``python aetcd_auth_probe.py HOST PORT``
(users as tests/e2e/test_pypi_auth.py sets them up). Prints one JSON object, as etcd3_auth_probe."""
import asyncio
import json
import sys

import aetcd

HOST, PORT = sys.argv[1], int(sys.argv[2])


async def outcome(call):
    try:
        return {"ok": await call()}
    except Exception as e:  # noqa: BLE001 - the probe reports what the client raised
        return {"error": type(e).__name__, "text": str(e)}


async def main() -> dict:
    out = {}
    async with aetcd.Client(HOST, PORT, username="alice", password="alicepw", timeout=10) as alice:
        async def put(key):
            return (await alice.put(key, b"1")) is not None

        async def get(key):
            return (await alice.get(key)).value.decode()

        async def prefix():
            return [kv.key.decode() for kv in await alice.get_prefix(b"foo/")]

        async def lease():
            return (await alice.lease(60)).ttl

        out["put"] = await outcome(lambda: put(b"foo/a"))
        out["get"] = await outcome(lambda: get(b"foo/a"))
        out["prefix"] = await outcome(prefix)
        out["put_denied"] = await outcome(lambda: put(b"bar"))
        out["get_denied"] = await outcome(lambda: get(b"bar"))
        out["lease"] = await outcome(lease)
    async def wrong():
        async with aetcd.Client(HOST, PORT, username="alice", password="wrong", timeout=10) as c:
            return (await c.get(b"foo/a")).value.decode()
    out["wrong_password"] = await outcome(wrong)
    return out


print(json.dumps(asyncio.run(main())))
