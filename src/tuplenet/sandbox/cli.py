"""`tuplenet sandbox ...`: drive the namespace sandbox of real hosts from a shell.

    python -m tuplenet.sandbox.cli up [--hosts N] [--no-agents] [--workdir D]
    python -m tuplenet.sandbox.cli status [--json]          # exit status 0 only if up and healthy
    python -m tuplenet.sandbox.cli exec TARGET -- CMD...
    python -m tuplenet.sandbox.cli add-vm NAME --host hv1 --ip CIDR [--mac M] [--gw IP]
    python -m tuplenet.sandbox.cli del-vm NAME
    python -m tuplenet.sandbox.cli down

Every command finds the sandbox through its workdir (state.json), so they can run from different shells.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from typing import Any

from .netns import DEFAULT_WORKDIR, NetnsSandbox, SandboxError


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help=f"state and daemon files ({DEFAULT_WORKDIR})")
    common.add_argument("--name-prefix", default="tn", help="prefix of every namespace and link name (tn)")
    ap = argparse.ArgumentParser(prog="tuplenet sandbox", description="Hosts and VMs as network namespaces "
                                 "with userspace OVS, Geneve tunnels and a local etcd.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", parents=[common], help="create the sandbox (safe to repeat)")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--no-agents", action="store_true", help="do not start tuplenet agents")
    up.add_argument("--no-etcd", action="store_true", help="no etcd (implies --no-agents)")
    up.add_argument("--etcd", metavar="HOST:PORT", help="use this root-namespace etcd instead of a new one")
    up.add_argument("--etcd-prefix", default="/tuplenet/", help="agents' key prefix (-p)")
    up.add_argument("--grpc-proxy", action="store_true",
                    help="agents reach etcd through an `etcd grpc-proxy` (the watch fan-out tier)")
    up.add_argument("--agent-cmd", help="agent command line (default: python -m tuplenet.agent.main)")
    up.add_argument("--wait", type=float, default=30.0, metavar="S",
                    help="seconds to wait for agents to register their chassis (30)")
    st = sub.add_parser("status", parents=[common], help="show hosts, VMs and daemons")
    st.add_argument("--json", action="store_true")
    sub.add_parser("down", parents=[common], help="remove everything the sandbox created")
    ex = sub.add_parser("exec", parents=[common], help="run a command in a host, VM or 'ul'")
    ex.add_argument("target")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    av = sub.add_parser("add-vm", parents=[common], help="add a VM namespace on a host's br-int")
    av.add_argument("name")
    av.add_argument("--host", default="hv1")
    av.add_argument("--ip", required=True, help="address/prefix, e.g. 10.10.1.2/24")
    av.add_argument("--mac", help="default f2:01 + the IPv4 bytes")
    av.add_argument("--gw", help="default gateway")
    av.add_argument("--iface-id", help="logical port name (default: NAME)")
    av.add_argument("--ready-wait", type=float, metavar="S",
                    help="seconds to wait for the agent's readiness mark before eth0 comes up "
                         "(default 10 if the host's agent runs; 0: do not wait)")
    dv = sub.add_parser("del-vm", parents=[common], help="remove a VM")
    dv.add_argument("name")
    return ap


def _print_status(st: dict[str, Any]) -> None:
    if not st["exists"]:
        print(f"no sandbox {st['prefix']} in {st['workdir']}")
        return
    state = "healthy" if st["healthy"] else "NOT healthy"
    print(f"sandbox {st['prefix']} in {st['workdir']}: {state}{'' if st['complete'] else ' (up incomplete)'}")
    e = st["etcd"]
    if e.get("endpoint"):
        print(f"etcd   {e['endpoint']} from the root namespace, {e['agent_endpoint']} from hosts; "
              f"{'own' if e['owned'] else 'external'} {'alive' if e['alive'] else 'DOWN'}, "
              f"relay {'alive' if e['relay_alive'] else 'DOWN'}")
    if e.get("grpc_proxy"):
        print(f"grpc-proxy {e['grpc_proxy']} between the relay and etcd, "
              f"{'alive' if e['grpc_proxy_alive'] else 'DOWN'}")
    print(f"underlay {st['underlay']} in netns {st['prefix']}-ul")
    if st["hosts"]:
        print(f"{'host':8} {'netns':12} {'tunnel ip':13} {'ovsdb':6} {'vswitchd':9} agent")
    for name, h in st["hosts"].items():
        agent = f"pid {h['agent_pid']}" if h["agent"] else "-"
        print(f"{name:8} {h['netns']:12} {h['tunnel_ip']:13} {'up' if h['ovsdb_server'] else 'DOWN':6} "
              f"{'up' if h['ovs_vswitchd'] else 'DOWN':9} {agent}")
    if st["vms"]:
        print(f"{'vm':10} {'host':6} {'ip':18} {'mac':18} {'port':15} iface-id")
    for name, v in st["vms"].items():
        print(f"{name:10} {v['host']:6} {v['ip']:18} {v['mac']:18} {v['port']:15} {v['iface_id']}")


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["sandbox"]:  # tolerate being handed the whole `tuplenet sandbox ...` line
        args_in = args_in[1:]
    args = _parser().parse_args(args_in)
    log = (lambda msg: print(msg, flush=True)) if args.cmd in ("up", "down", "add-vm", "del-vm") else None
    try:
        sb = NetnsSandbox(workdir=args.workdir, name_prefix=args.name_prefix, log=log,
                          agent_cmd=shlex.split(args.agent_cmd) if getattr(args, "agent_cmd", None) else None)
        if args.cmd == "up":
            etcd: bool | str = args.etcd or not args.no_etcd
            try:
                agents = not (args.no_agents or args.no_etcd)
                st = sb.up(hosts=args.hosts, etcd=etcd, agents=agents, prefix=args.etcd_prefix,
                           grpc_proxy=args.grpc_proxy)
                if agents:
                    t0 = time.monotonic()
                    sb.wait_agents(timeout=args.wait)
                    print(f"agents     registered and started after {time.monotonic() - t0:.2f}s", flush=True)
            except (SandboxError, TimeoutError, OSError) as exc:
                print(f"error: {exc}\nthe sandbox may be partly built; `down` removes it: "
                      + _hint(args, "down"), file=sys.stderr)
                return 1
            _print_status(st)
            print("next:  " + _hint(args, "add-vm", "vm1 --host hv1 --ip 10.10.1.2/24"))
            print("       " + _hint(args, "exec", "hv1 -- ovs-vsctl show"))
        elif args.cmd == "status":
            st = sb.status()
            if args.json:
                print(json.dumps(st, indent=1, sort_keys=True))
            else:
                _print_status(st)
            return 0 if st["healthy"] and st["complete"] else 1
        elif args.cmd == "down":
            sb.down()
            print(f"sandbox {args.name_prefix} removed")
        elif args.cmd == "add-vm":
            sb.add_vm(args.name, host=args.host, ip=args.ip, mac=args.mac, gateway=args.gw,
                      iface_id=args.iface_id, ready_wait=args.ready_wait)
        elif args.cmd == "del-vm":
            sb.del_vm(args.name)
        elif args.cmd == "exec":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                raise SandboxError("exec needs a command after --")
            full, env = sb.command(args.target, command)
            return subprocess.call(full, env=env)
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except (SandboxError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _hint(args: argparse.Namespace, cmd: str, rest: str = "") -> str:
    """A command line for the user that finds this sandbox again."""
    parts = ["python -m tuplenet.sandbox.cli", cmd]
    if args.workdir != DEFAULT_WORKDIR:
        parts += ["--workdir", args.workdir]
    if args.name_prefix != "tn":
        parts += ["--name-prefix", args.name_prefix]
    return " ".join([*parts, rest]).strip()

if __name__ == "__main__":
    sys.exit(main())
