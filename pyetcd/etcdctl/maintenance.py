"""etcdctl alarm list / disarm and defrag."""
from __future__ import annotations

from pyetcd.etcdctl.auth_common import show
from pyetcd.etcdctl.cobra import Command, err, out
from pyetcd.etcdctl.endpoint import ALARM_NAMES, member_endpoints
from pyetcd.etcdctl.runtime import EXIT_ERROR, GROUP_HEADER, Context, Exit, connect_without_args

ACTIVATE_GET, ACTIVATE_DEACTIVATE = 0, 2


def new_alarm_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS

    use, short = GROUPS["alarm"]
    group = Command(use, short, header=GROUP_HEADER)
    group.add(Command("disarm", "Disarms all alarms", run=run_disarm),
              Command("list", "Lists all alarms", run=run_list))
    return group


def new_defrag_command() -> Command:
    defrag = Command("defrag", "Defragments the storage of the etcd members with given endpoints", run=run_defrag)
    defrag.flags.add("cluster", "bool", False, "use all endpoints from the cluster member list")
    defrag.flags.add("data-dir", "string", "", "Optional. If present, defragments a data directory not in use by etcd.")
    return defrag


def _alarms_simple(alarms) -> bytes:
    return b"".join(b"memberID:%d alarm:%s \n" % (a.memberID, ALARM_NAMES.get(a.alarm, "UNKNOWN").encode())
                    for a in alarms)


def _alarms_fields(alarms) -> list[str]:
    lines = []
    for a in alarms:
        lines += [f'"MemberID" : {a.memberID}', f'"AlarmType" : {ALARM_NAMES.get(a.alarm, "UNKNOWN")}', ""]
    return lines


def _alarm_call(ctx: Context, request):
    return ctx.call("Alarm", request, ctx.flags["command-timeout"], service="maintenance")


def _connect(cmd: Command, args: list[str]) -> Context:
    return connect_without_args(cmd, args, f"alarm {cmd.name} command accepts no arguments")


def run_list(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = _connect(cmd, args)
    resp = _alarm_call(ctx, rpc_pb2.AlarmRequest(action=ACTIVATE_GET))
    show(ctx, resp, _alarms_simple(resp.alarms), _alarms_fields(resp.alarms))


def run_disarm(cmd: Command, args: list[str]) -> None:
    """Every alarm listed is deactivated; the answer (as the Go client's) has the alarms and no header."""
    from pyetcd.etcdctl.txn import GoPanic
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = _connect(cmd, args)
    listed = _alarm_call(ctx, rpc_pb2.AlarmRequest(action=ACTIVATE_GET))
    resp = rpc_pb2.AlarmResponse()
    for a in listed.alarms:
        req = rpc_pb2.AlarmRequest(action=ACTIVATE_DEACTIVATE, memberID=a.memberID, alarm=a.alarm)
        resp.alarms.extend(_alarm_call(ctx, req).alarms)
    if ctx.display.fmt == "fields":  # etcdctl's fields printer reads the missing header
        raise GoPanic("runtime error: invalid memory address or nil pointer dereference\n"
                      "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xc92b17]")
    show(ctx, resp, _alarms_simple(resp.alarms))


def run_defrag(cmd: Command, _args: list[str]) -> None:
    """Defragment each endpoint in turn; a failure is reported and the others still run."""
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = Context(cmd)
    if ctx.flags["data-dir"]:
        raise Exit(EXIT_ERROR, "defrag --data-dir is not implemented by pyetcd etcdctl (use etcdutl defrag)")
    ctx.connect()
    failed = False
    for ep in member_endpoints(ctx):
        try:
            ctx.call("Defragment", rpc_pb2.DefragmentRequest(), ctx.flags["command-timeout"],
                     service="maintenance", endpoint=ep)
        except Exit as exc:
            err(f"Failed to defragment etcd member[{ep}] ({exc.message})\n")
            failed = True
            continue
        out(f"Finished defragmenting etcd member[{ep}]\n")
    if failed:
        raise Exit(EXIT_ERROR, None)
