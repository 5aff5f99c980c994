"""python-etcd3 (etcd3 0.12.0) against a server: ``python etcd3_probe.py HOST PORT PREFIX``.

Runs in the client's own venv (tests/e2e/pypi_venvs.py) and prints one JSON object, a section
per feature, for tests/e2e/test_pypi_clients.py to check; a section that raised holds
{"error": ...}. Events are [type, key, value, mod_revision]; every wait has a deadline.
"""
import json
import queue
import sys
import threading
import time
import traceback

import etcd3
from etcd3 import events

HOST, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
WAIT = 10.0
client = etcd3.client(host=HOST, port=PORT, timeout=10)


def k(name: str) -> bytes:
    return (PREFIX + name).encode()


def ev(e) -> list:
    kind = "PUT" if isinstance(e, events.PutEvent) else "DELETE" if isinstance(e, events.DeleteEvent) else "?"
    return [kind, e.key.decode(), e.value.decode(), e.mod_revision]


def put(name: str, value: str, lease=None) -> int:
    return client.put(k(name), value, lease=lease).header.revision


def delete(name: str) -> int:
    return client.delete(k(name), return_response=True).header.revision


def take(iterator, n: int) -> list:
    """The first n events of a blocking watch iterator (fewer if the deadline passes first)."""
    q: queue.Queue = queue.Queue()

    def run() -> None:
        for e in iterator:
            q.put(ev(e))

    threading.Thread(target=run, daemon=True).start()
    out, deadline = [], time.monotonic() + WAIT
    while len(out) < n:
        try:
            out.append(q.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    return out


def kv() -> dict:
    put("kv/a", "1")
    put("kv/b", "2")
    value, meta = client.get(k("kv/a"))
    return {"get": value.decode(), "version": meta.version, "missing": client.get(k("kv/none"))[0],
            "prefix": [m.key.decode() for _, m in client.get_prefix(k("kv/"))],
            "deleted": client.delete(k("kv/a")), "after_delete": client.get(k("kv/a"))[0],
            "deleted_again": client.delete(k("kv/a"))}


def watch() -> dict:
    iterator, cancel = client.watch(k("w/key"))
    revs = [put("w/key", "v1"), put("w/key2", "other"), put("w/key", "v2"), delete("w/key")]
    got = take(iterator, 3)
    cancel()
    return {"revs": revs, "events": got}


def watch_prefix() -> dict:
    iterator, cancel = client.watch_prefix(k("wp/"))
    revs = [put("wp/a", "1"), put("wq/outside", "x"), put("wp/b", "2")]
    got = take(iterator, 2)
    cancel()
    return {"revs": revs, "events": got}


def watch_start_revision() -> dict:
    revs = [put("h/k", "x1"), put("h/k", "x2"), put("h/k", "x3")]
    iterator, cancel = client.watch(k("h/k"), start_revision=revs[1])
    revs.append(put("h/k", "x4"))
    got = take(iterator, 3)
    cancel()
    return {"revs": revs, "events": got}


def watch_callback_cancel() -> dict:
    seen: dict[str, list] = {"cancelled": [], "kept": []}
    cond = threading.Condition()

    def callback(name: str):
        def on_response(resp) -> None:
            with cond:
                seen[name] += [ev(e) for e in resp.events] if hasattr(resp, "events") else [["error", repr(resp)]]
                cond.notify_all()
        return on_response

    def wait_kept(n: int) -> None:
        with cond:
            cond.wait_for(lambda: len(seen["kept"]) >= n, WAIT)

    cancelled = client.add_watch_callback(k("cb/k"), callback("cancelled"))
    kept = client.add_watch_callback(k("cb/k"), callback("kept"))
    revs = [put("cb/k", "1")]
    wait_kept(1)
    with cond:
        cond.wait_for(lambda: len(seen["cancelled"]) >= 1, WAIT)
    client.cancel_watch(cancelled)
    revs.append(put("cb/k", "2"))
    wait_kept(2)  # the kept watcher has the second event: the cancelled one would have it by now
    client.cancel_watch(kept)
    with cond:
        return {"revs": revs, "ids_differ": cancelled != kept, **{n: list(v) for n, v in seen.items()}}


def lease() -> dict:
    lease = client.lease(30)
    rev = put("l/k", "v", lease=lease)
    _, meta = client.get(k("l/k"))
    iterator, cancel = client.watch(k("l/k"), start_revision=rev + 1)
    refreshed = lease.refresh()
    out = {"id": lease.id, "grant_ttl": lease.ttl, "key_lease": meta.lease_id,
           "refresh_ttl": [r.TTL for r in refreshed], "refresh_id": [r.ID for r in refreshed],
           "remaining_ttl": lease.remaining_ttl, "granted_ttl": lease.granted_ttl,
           "keys": [key.decode() for key in lease.keys], "put_rev": rev}
    lease.revoke()
    out["revoke_events"] = take(iterator, 1)
    cancel()
    out["after_revoke_get"] = client.get(k("l/k"))[0]
    out["after_revoke_ttl"] = client.get_lease_info(lease.id).TTL
    out["after_revoke_refresh_ttl"] = [r.TTL for r in lease.refresh()]
    return out


def lease_expiry() -> dict:
    lease = client.lease(2)
    rev = put("exp/k", "v", lease=lease)
    iterator, cancel = client.watch(k("exp/k"), start_revision=rev + 1)
    start = time.monotonic()
    got = take(iterator, 1)
    out = {"grant_ttl": lease.ttl, "put_rev": rev, "events": got, "seconds": time.monotonic() - start,
           "after_get": client.get(k("exp/k"))[0], "after_ttl": client.get_lease_info(lease.id).TTL}
    cancel()
    return out


result = {}
for section in (kv, watch, watch_prefix, watch_start_revision, watch_callback_cancel, lease, lease_expiry):
    try:
        result[section.__name__] = section()
    except Exception as e:  # noqa: BLE001 - reported to the test, which names the section
        result[section.__name__] = {"error": f"{type(e).__name__}: {e}",
                                    "trace": traceback.format_exc(limit=3)}
print(json.dumps(result))
sys.stdout.flush()
client.close()
