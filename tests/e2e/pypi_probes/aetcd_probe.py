"""aetcd 1.0.0 (asyncio) against a server: ``python aetcd_probe.py HOST PORT PREFIX``.

The same sections and JSON as etcd3_probe.py (tests/e2e/test_pypi_clients.py checks both with
the same assertions); aetcd has no add_watch_callback, so that section uses two watch() calls
and cancels one (aetcd's iterator of a cancelled watch ends at once, so there the kept
watcher's events are what shows the server went on). Every wait has a deadline.
"""
import asyncio
import json
import sys
import time
import traceback

import aetcd

HOST, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
WAIT = 10.0


def k(name: str) -> bytes:
    return (PREFIX + name).encode()


def ev(e) -> list:
    return [e.kind, e.kv.key.decode(), e.kv.value.decode(), e.kv.mod_revision]


async def take(watch, n: int) -> list:
    """The first n events of a watch (fewer if the deadline passes first)."""
    out: list = []

    async def run() -> None:
        async for e in watch:
            out.append(ev(e))
            if len(out) >= n:
                return

    try:
        await asyncio.wait_for(run(), WAIT)
    except asyncio.TimeoutError:
        pass
    return out


async def main(client: aetcd.Client) -> dict:
    async def put(name: str, value: str, lease=None) -> int:
        return (await client.put(k(name), value.encode(), lease=lease)).header.revision

    async def delete(name: str) -> int:
        return (await client.delete(k(name))).header.revision

    async def value_of(name: str):
        got = await client.get(k(name))
        return got.value.decode() if got else None

    async def kv() -> dict:
        await put("kv/a", "1")
        await put("kv/b", "2")
        got = await client.get(k("kv/a"))
        out = {"get": got.value.decode(), "version": got.version, "missing": await value_of("kv/none"),
               "prefix": [kv.key.decode() for kv in await client.get_prefix(k("kv/"))]}
        deleted = await client.delete(k("kv/a"))
        return {**out, "deleted": bool(deleted and deleted.deleted), "after_delete": await value_of("kv/a"),
                "deleted_again": bool(await client.delete(k("kv/a")))}

    async def watch() -> dict:
        w = await client.watch(k("w/key"))
        revs = [await put("w/key", "v1"), await put("w/key2", "other"), await put("w/key", "v2"),
                await delete("w/key")]
        got = await take(w, 3)
        await w.cancel()
        return {"revs": revs, "events": got}

    async def watch_prefix() -> dict:
        w = await client.watch_prefix(k("wp/"))
        revs = [await put("wp/a", "1"), await put("wq/outside", "x"), await put("wp/b", "2")]
        got = await take(w, 2)
        await w.cancel()
        return {"revs": revs, "events": got}

    async def watch_start_revision() -> dict:
        revs = [await put("h/k", "x1"), await put("h/k", "x2"), await put("h/k", "x3")]
        w = await client.watch(k("h/k"), start_revision=revs[1])
        revs.append(await put("h/k", "x4"))
        got = await take(w, 3)
        await w.cancel()
        return {"revs": revs, "events": got}

    async def watch_callback_cancel() -> dict:
        cancelled, kept = await client.watch(k("cb/k")), await client.watch(k("cb/k"))
        revs = [await put("cb/k", "1")]
        seen_cancelled = await take(cancelled, 1)
        seen_kept = await take(kept, 1)
        await cancelled.cancel()
        revs.append(await put("cb/k", "2"))
        seen_kept += await take(kept, 1)
        seen_cancelled += await take(cancelled, 1)  # ends at once: the watch is cancelled
        await kept.cancel()
        return {"revs": revs, "ids_differ": cancelled.watch_id != kept.watch_id,
                "cancelled": seen_cancelled, "kept": seen_kept}

    async def lease() -> dict:
        lease = await client.lease(30)
        rev = await put("l/k", "v", lease=lease)
        got = await client.get(k("l/k"))
        w = await client.watch(k("l/k"), start_revision=rev + 1)
        refreshed = await lease.refresh()
        out = {"id": lease.id, "grant_ttl": lease.ttl, "key_lease": got.lease,
               "refresh_ttl": [refreshed.TTL], "refresh_id": [refreshed.ID],
               "remaining_ttl": await lease.remaining_ttl(), "granted_ttl": await lease.granted_ttl(),
               "keys": [key.decode() for key in await lease.keys()], "put_rev": rev}
        await lease.revoke()
        out["revoke_events"] = await take(w, 1)
        await w.cancel()
        out["after_revoke_get"] = await value_of("l/k")
        out["after_revoke_ttl"] = await lease.remaining_ttl()
        out["after_revoke_refresh_ttl"] = [(await lease.refresh()).TTL]
        return out

    async def lease_expiry() -> dict:
        lease = await client.lease(2)
        rev = await put("exp/k", "v", lease=lease)
        w = await client.watch(k("exp/k"), start_revision=rev + 1)
        start = time.monotonic()
        got = await take(w, 1)
        out = {"grant_ttl": lease.ttl, "put_rev": rev, "events": got, "seconds": time.monotonic() - start,
               "after_get": await value_of("exp/k"), "after_ttl": await lease.remaining_ttl()}
        await w.cancel()
        return out

    result = {}
    for section in (kv, watch, watch_prefix, watch_start_revision, watch_callback_cancel, lease, lease_expiry):
        try:
            result[section.__name__] = await asyncio.wait_for(section(), 3 * WAIT)
        except Exception as e:  # noqa: BLE001 - reported to the test, which names the section
            result[section.__name__] = {"error": f"{type(e).__name__}: {e}",
                                        "trace": traceback.format_exc(limit=3)}
    return result


async def run() -> None:
    async with aetcd.Client(host=HOST, port=PORT, timeout=10) as client:
        print(json.dumps(await main(client)), flush=True)


asyncio.run(run())
