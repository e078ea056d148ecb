"""Exercises a Skiff node through redis-py, as an application would. Usage: redis_py_check.py PORT PROTOCOL.

Prints one line per check and exits non-zero on the first failure."""
import sys

import redis

port, protocol = int(sys.argv[1]), int(sys.argv[2])
client = redis.Redis(port=port, protocol=protocol) if protocol == 2 else redis.Redis(port=port)
prefix = f"py{protocol}:"


def check(name, actual, expected):
    if actual != expected:
        print(f"FAIL {name}: {actual!r} != {expected!r}")
        sys.exit(1)
    print(f"ok {name}")


check("ping", client.ping(), True)
check("hello protocol", client.connection_pool.get_connection("PING").protocol, protocol)
check("set", client.set(prefix + "a", "1"), True)
check("get", client.get(prefix + "a"), b"1")
check("set nx refused", client.set(prefix + "a", "2", nx=True), None)
check("incrby", client.incrby(prefix + "n", 5), 5)
check("incrbyfloat", client.incrbyfloat(prefix + "n", 0.5), 5.5)
check("mset", client.mset({prefix + "x": "1", prefix + "y": "2"}), True)
check("mget", client.mget([prefix + "x", prefix + "missing", prefix + "y"]), [b"1", None, b"2"])
pipe = client.pipeline(transaction=False)
for i in range(100):
    pipe.set(f"{prefix}p{i}", i)
    pipe.get(f"{prefix}p{i}")
results = pipe.execute()
check("pipeline", results[1::2], [str(i).encode() for i in range(100)])
check("scan_iter", len(set(client.scan_iter(match=prefix + "p*", count=7))), 100)
check("delete", client.delete(prefix + "x", prefix + "y"), 2)
check("exists", client.exists(prefix + "x"), 0)
check("info", client.info("replication")["raft_role"] in ("leader", "follower"), True)
check("ttl", (client.ttl(prefix + "a"), client.pttl(prefix + "missing")), (-1, -2))
check("persist", client.persist(prefix + "a"), False)
check("touch", client.touch(prefix + "a", prefix + "missing"), 1)
check("time", len(client.time()), 2)
client.client_setname(prefix + "app")
mine = [c for c in client.client_list() if c["name"] == prefix + "app"]
check("client_list", (len(mine), mine[0]["cmd"] if mine else None), (1, "client|list"))
stats = client.info("stats")
check("info stats", stats["total_commands_processed"] > 0 and client.info("clients")["connected_clients"] >= 1, True)
pipe = client.pipeline()  # transaction=True, its default: MULTI ... EXEC
pipe.set(prefix + "t", "1").incr(prefix + "t").get(prefix + "t").append(prefix + "t", "x")
check("transaction pipeline", pipe.execute(), [True, 2, b"2", 2])


def double(pipe):
    value = int(pipe.get(prefix + "n2") or 1)
    pipe.multi()
    pipe.set(prefix + "n2", value * 2)


client.transaction(double, prefix + "n2")
check("transaction with watch", (client.transaction(double, prefix + "n2"), client.get(prefix + "n2")), ([True], b"4"))
pipe = client.pipeline()
pipe.watch(prefix + "n2")
client.set(prefix + "n2", "changed")
pipe.multi()
pipe.incr(prefix + "n2")
try:
    pipe.execute()
    check("watch conflict", "ran", "WatchError")
except redis.WatchError:
    check("watch conflict", client.get(prefix + "n2"), b"changed")
try:
    client.expire(prefix + "a", 10)
    check("expire refused", "accepted", "an error")
except redis.ResponseError as error:
    check("expire refused", "not supported" in str(error), True)
print("all checks passed")
