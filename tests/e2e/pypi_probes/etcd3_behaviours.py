"""python-etcd3's documented behaviours, as one script that runs with the real python-etcd3
(``etcd3`` 0.12, in its own venv) or with pyetcd's compatibility module:
``python etcd3_behaviours.py real|compat HOST PORT PREFIX``. Prints one JSON object of what it
saw; tests/e2e/test_etcd3_compat.py checks that both give the same, on both servers. Only what
does not depend on the server's history is recorded (no revisions)."""
import json
import sys
import threading
import time

if sys.argv[1] == "compat":
    import pyetcd.compat.etcd3 as etcd3
else:
    import etcd3

HOST, PORT, P = sys.argv[2], int(sys.argv[3]), sys.argv[4]
client = etcd3.client(host=HOST, port=PORT, timeout=10)
seen = {}


def record(name, fn):
    try:
        seen[name] = fn()
    except Exception as e:  # noqa: BLE001 - the behaviour is what it raised
        seen[name] = {"raised": type(e).__name__}


def d(b):
    return None if b is None else b.decode()


def kvs(it):
    return [[d(v), d(m.key), m.version] for v, m in it]


# KV
client.put(P + "a", "1")
client.put(P + "b", "2")
client.put(P + "b", "22")
client.put(P + "c", b"3")
record("get", lambda: [d(client.get(P + "b")[0]), client.get(P + "b")[1].version, d(client.get(P + "b")[1].key)])
record("get_missing", lambda: list(client.get(P + "nope")))
record("get_prefix", lambda: kvs(client.get_prefix(P)))
record("get_prefix_desc", lambda: kvs(client.get_prefix(P, sort_order="descend")))
record("get_prefix_by_value", lambda: kvs(client.get_prefix(P, sort_order="ascend", sort_target="value")))
record("keys_only", lambda: kvs(client.get_prefix(P, keys_only=True)))
record("get_range", lambda: kvs(client.get_range(P + "a", P + "c")))
record("get_all_has_ours", lambda: [d(m.key) for _, m in client.get_all() if d(m.key).startswith(P)])
record("put_prev_kv", lambda: d(client.put(P + "a", "1b", prev_kv=True).prev_kv.value))
record("put_if_not_exists", lambda: [client.put_if_not_exists(P + "n", "x"), client.put_if_not_exists(P + "n", "y"),
                                     d(client.get(P + "n")[0])])
record("replace", lambda: [client.replace(P + "n", "x", "z"), client.replace(P + "n", "x", "w"), d(client.get(P + "n")[0])])
record("delete", lambda: [client.delete(P + "n"), client.delete(P + "n")])
record("delete_response", lambda: client.delete(P + "c", prev_kv=True, return_response=True).deleted)
client.put(P + "sub/1", "s1")
client.put(P + "sub/2", "s2")
record("delete_prefix", lambda: client.delete_prefix(P + "sub/").deleted)

# transactions
tx = client.transactions
record("txn_success", lambda: (lambda r: [r[0], [kvs(x) if isinstance(x, list) else type(x).__name__ for x in r[1]]])(
    client.transaction(compare=[tx.value(P + "b") == "22", tx.version(P + "b") > 1],
                       success=[tx.put(P + "t", "yes"), tx.get(P + "b")], failure=[tx.put(P + "t", "no")])))
record("txn_failure", lambda: (lambda r: [r[0], len(r[1])])(
    client.transaction(compare=[tx.value(P + "b") != "22"], success=[], failure=[tx.delete(P + "t"), tx.get(P + "t")])))
record("txn_create_mod", lambda: client.transaction(compare=[tx.create(P + "never") == 0, tx.mod(P + "b") > 0],
                                                    success=[], failure=[])[0])
record("txn_after", lambda: list(client.get(P + "t"))[0])

# leases
lease = client.lease(60)
client.put(P + "leased", "v", lease=lease)
record("lease", lambda: [lease.ttl, lease.granted_ttl, 55 <= lease.remaining_ttl <= 60, [d(k) for k in lease.keys]])
record("lease_refresh", lambda: [r.TTL for r in lease.refresh()])
record("lease_id_put", lambda: client.get(P + "leased")[1].lease_id == lease.id)
record("lease_revoke", lambda: [lease.revoke(), list(client.get(P + "leased"))])
record("refresh_gone", lambda: [r.TTL for r in client.refresh_lease(lease.id)])

# locks
lock = client.lock(P + "lock", ttl=30)
other = client.lock(P + "lock", ttl=30)
record("lock", lambda: [lock.acquire(), lock.is_acquired(), other.is_acquired(), lock.release(), lock.is_acquired(),
                        lock.release()])
if sys.argv[1] == "compat":  # (python-etcd3 0.12 breaks waiting for a held lock with today's tenacity)
    record("lock_contended", lambda: [lock.acquire(), other.acquire(timeout=1), lock.release(),
                                      other.acquire(timeout=5), other.is_acquired(), other.release()])
record("lock_key", lambda: lock.key)


def lock_ctx():
    with client.lock(P + "ctx") as held:
        return held.is_acquired()
record("lock_context", lock_ctx)


# watches
def watch_events():
    it, cancel = client.watch(P + "w")
    threading.Timer(0.3, lambda: (client.put(P + "w", "w1"), client.delete(P + "w"))).start()
    out = []
    for ev in it:
        out.append([type(ev).__name__, d(ev.key), d(ev.value)])
        if len(out) == 2:
            cancel()
    return out
record("watch", watch_events)


def watch_prefix_prev():
    it, cancel = client.watch_prefix(P + "wp/", prev_kv=True)
    threading.Timer(0.3, lambda: (client.put(P + "wp/x", "1"), client.put(P + "wp/x", "2"))).start()
    out = []
    for ev in it:
        out.append([d(ev.key), d(ev.value), d(ev.prev_value)])
        if len(out) == 2:
            cancel()
    return out
record("watch_prefix_prev_kv", watch_prefix_prev)
record("watch_once_timeout", lambda: client.watch_once(P + "quiet", timeout=0.5))


def watch_once():
    threading.Timer(0.3, lambda: client.put(P + "once", "o")).start()
    ev = client.watch_once(P + "once", timeout=10)
    return [type(ev).__name__, d(ev.value)]
record("watch_once", watch_once)


def callback():
    got = []
    done = threading.Event()

    def cb(resp):
        got.extend([d(e.value) for e in resp.events])
        if len(got) >= 2:
            done.set()
    watch_id = client.add_watch_prefix_callback(P + "cb/", cb)
    time.sleep(0.3)
    client.put(P + "cb/1", "c1")
    client.put(P + "cb/2", "c2")
    done.wait(10)
    client.cancel_watch(watch_id)
    return got
record("watch_callback", callback)


def compacted():
    rev = client.put(P + "cmp", "1").header.revision
    client.put(P + "cmp", "2")
    client.compact(rev + 1)
    it, cancel = client.watch(P + "cmp", start_revision=rev)
    try:
        next(it)
    finally:
        cancel()
record("watch_compacted", compacted)

# cluster
record("members", lambda: [[bool(m.id), bool(m.name), len(m.peer_urls), len(m.client_urls)] for m in client.members])
record("status", lambda: (lambda s: [s.version, s.db_size > 0, s.leader is not None, s.raft_index > 0])(client.status()))
record("alarms", lambda: list(client.list_alarms()))
print(json.dumps(seen))
