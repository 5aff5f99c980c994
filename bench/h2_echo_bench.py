"""The do-nothing ceiling of pyetcd's own gRPC transport, to set beside shared/bench/echo_server.py.

Usage: python bench/h2_echo_bench.py PORT   (serves every KV method with an empty reply; prints READY)
Then, e.g.:
  printf '\\0\\0\\0\\0\\5\\n\\3foo' > /tmp/range.bin
  h2load -n 20000 -c 50 -m 10 -d /tmp/range.bin -H 'content-type: application/grpc' -H 'te: trailers' \\
      http://127.0.0.1:PORT/etcdserverpb.KV/Range
"""
import asyncio
import sys

from pyetcd.embed import HttpResponse, serve, unary_methods
from pyetcd.proto.etcdserverpb import rpc_pb2

try:
    import uvloop
except ImportError:
    uvloop = None


class _Nothing:
    async def Range(self, request, ctx):
        return rpc_pb2.RangeResponse()

    async def Put(self, request, ctx):
        return rpc_pb2.PutResponse()


async def _health(request):
    return HttpResponse(200, [("Content-Type", "application/json")], b'{"health":"true","reason":""}')


async def _main(port: int) -> None:
    methods = unary_methods(rpc_pb2.DESCRIPTOR.services_by_name["KV"], _Nothing())
    server = await serve("127.0.0.1", port, grpc_methods=methods, http_handler=_health)
    print(f"READY port={server.port} uvloop={uvloop is not None}", flush=True)
    await server.wait_closed()


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(_main(int(sys.argv[1])))
